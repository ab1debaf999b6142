"""Bad input of every kind: one line on stderr naming what is wrong and how to fix it, exit code 2, no
traceback, no hang, and nothing written or submitted."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from flux_batch.cli import main

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
QUICKSTART = str(PIPELINES / "quickstart.yaml")


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``; assert exit 2 with no traceback; return stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.strip(), err
    return err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-in-flight", "-1"], "--max-in-flight: must be a whole number of at least 1, not -1"),
        (["--max-in-flight", "0"], "--max-in-flight: must be a whole number of at least 1, not 0"),
        (["--max-in-flight", "many"], "--max-in-flight: must be a whole number of at least 1, not 'many'"),
        (["--create-rpm", "-1"], "--create-rpm: must be a number above 0, not -1"),
        (["--create-rpm", "0"], "--create-rpm: must be a number above 0, not 0"),
        (["--create-rpm", "inf"], "--create-rpm: must be a number above 0, not inf"),
        (["--other-rpm", "nan"], "--other-rpm: must be a number above 0, not nan"),
        (["--max-cost", "nan"], "--max-cost: must be a number above 0, not nan"),
        (["--max-cost", "-5"], "--max-cost: must be a number above 0, not -5"),
        (["--wait", "100"], "--wait: must be 0 to 60 seconds"),
        (["--wait", "-1"], "--wait: must be 0 to 60 seconds"),
        (["--wait", "1.5"], "--wait: must be 0 to 60 seconds"),
        (["--base-url", "http://[::1/v1"], "--base-url: 'http://[::1/v1' is not a valid URL"),
        (
            ["--base-url", "ftp://example.com/v1"],
            "--base-url: 'ftp://example.com/v1' must start with https://",
        ),
        (["--base-url", "https:///v1"], "--base-url: 'https:///v1' has no host"),
        (["--max-jobs", "0"], "--max-jobs: must be a whole number of at least 1, not 0"),
    ],
)
def test_bad_run_flags_are_one_line_and_exit_2(
    flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    err = refused(capsys, ["run", QUICKSTART, "--out", str(out), *flags])
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_reseed_without_retry_failed_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    err = refused(capsys, ["run", QUICKSTART, "--out", str(out), "--reseed"])
    assert "--reseed only applies to retried jobs: add --retry-failed" in err
    assert not out.exists()


def test_a_bad_flag_of_any_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, ["plan", QUICKSTART, "--max-jobs", "lots"])
    assert err.strip().splitlines() == [
        "flux-batch plan: error: argument --max-jobs: must be a whole number of at least 1, not 'lots'"
        " (see flux-batch plan --help)"
    ]
    err = refused(capsys, ["plan"])
    assert len(err.strip().splitlines()) == 1 and "MANIFEST" in err


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


STAGE = """\
version: 1
name: t
stages:
  - id: a
    model: black-forest-labs/flux-schnell
    prompt: "{x}"
    matrix:
"""


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        ("x: {range: {start: 0, stop: .inf}}", "m.yaml:8:35: stages[0].matrix.x.range.stop: .inf is not a"),
        ("x: {range: {start: 0, stop: .nan}}", "m.yaml:8:35: stages[0].matrix.x.range.stop: .nan is not a"),
        ("x: {range: {start: -.inf, stop: 1}}", "stages[0].matrix.x.range.start: -.inf is not a finite"),
        ("x: {range: {start: 0, stop: 1, step: .nan}}", "stages[0].matrix.x.range.step: .nan is not a"),
        (
            "x: {range: {start: 0, stop: 100000000000}}",
            "m.yaml:8:10: stages[0].matrix.x: the range has 100,000,000,001 values, more than max_jobs",
        ),
        ('x: {file: "a\\0b.txt"}', "m.yaml:8:17: stages[0].matrix.x.file: a NUL character"),
        ("x: {file: /dev/zero}", "/dev/zero is not a regular file"),
        ("x: {file: /proc/self/environ}", "/proc/self/environ is not a regular file"),
    ],
)
def test_bad_axes_are_located_errors(
    axis: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = write(tmp_path, STAGE + "      " + axis + "\n")
    monkeypatch.chdir(tmp_path)
    for command in (["validate"], ["plan"], ["run", "--simulator", "--out", "out"]):
        err = refused(capsys, [*command, "m.yaml"])
        assert expected in err, err
    assert not (tmp_path / "out").exists()
    assert manifest.exists()


@pytest.mark.timeout(20)
def test_a_fifo_named_by_a_file_axis_does_not_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "prompts.txt")
    write(tmp_path, STAGE + "      x: {file: prompts.txt}\n")
    err = refused(capsys, ["validate", str(tmp_path / "m.yaml")])
    assert "stages[0].matrix.x.file: prompts.txt is not a regular file" in err


@pytest.mark.timeout(20)
@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_an_image_file_input_reads_regular_files_only(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    write(
        tmp_path,
        f"""\
        version: 1
        name: t
        stages:
          - id: a
            model: black-forest-labs/flux-kontext-pro
            prompt: make it gold
            input: {{input_image: {{file: {target}}}}}
        """,
    )
    err = refused(capsys, ["validate", str(tmp_path / "m.yaml")])
    assert f"stages[0].input.input_image.file: {target} is not a regular file" in err


def test_a_nul_byte_in_a_manifest_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_bytes(b"version: 1\nname: t\x00\n")
    err = refused(capsys, ["validate", str(tmp_path / "m.yaml")])
    assert err.strip().splitlines() == [
        f"{tmp_path / 'm.yaml'}:2:8: $: the file contains a NUL character (code 0)"
        " (hint: a manifest is plain text: remove it)"
    ]


def test_a_malformed_base_url_in_a_manifest_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "api: {base_url: 'http://[::1/v1'}\n" + STAGE + "      x: [1]\n")
    err = refused(capsys, ["validate", str(tmp_path / "m.yaml")])
    assert "m.yaml:1:17: api.base_url: 'http://[::1/v1' is not a valid URL" in err

"""What ``run`` decides from its flags and the manifest, and what it says: the command line wins over the
manifest's ``api:``; the API host is shown, and a manifest that sends the token elsewhere must be
confirmed; a bad token is refused without being repeated; the last lines tell this run from the folder."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_helpers import fake_api, write_manifest

from flux_batch.cli import main
from flux_batch.manifest import ApiSettings
from flux_batch.runner.client import ApiClient


def write(tmp_path: Path, api: str = "", name: str = "m.yaml") -> Path:
    return write_manifest(tmp_path / name, extra=api)  # four jobs


def flags(**given: object) -> argparse.Namespace:
    defaults: dict[str, object] = dict(
        simulator=False,
        no_simulator=False,
        base_url=None,
        create_rpm=None,
        other_rpm=None,
        max_in_flight=None,
        wait=None,
    )
    return argparse.Namespace(**{**defaults, **given})


# -- the command line wins over the manifest (#10.3) ----------------------------------------------------


def test_base_url_on_the_command_line_beats_simulator_true(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "api: {simulator: true}")
    with fake_api(monkeypatch) as api:
        argv = ["run", str(manifest), "--out", str(tmp_path / "o"), "--base-url", "https://proxy.example/v1"]
        assert main(argv) == 0, capsys.readouterr().err
    assert api.created == 4 and api.hosts == {"proxy.example"}
    assert "API: https://proxy.example/v1 (token from $REPLICATE_API_TOKEN)" in capsys.readouterr().err


def test_no_simulator_beats_simulator_true(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "api: {simulator: true}")
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    assert main(["run", str(manifest), "--out", str(tmp_path / "o"), "--no-simulator"]) == 2
    assert "no API token: set REPLICATE_API_TOKEN" in capsys.readouterr().err
    with fake_api(monkeypatch) as api:
        assert main(["run", str(manifest), "--out", str(tmp_path / "o"), "--no-simulator", "-q"]) == 0
    assert api.created == 4 and api.hosts == {"api.replicate.com"}


def test_simulator_contradicts_base_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(write(tmp_path)), "--simulator", "--base-url", "https://x.example/v1"]
    assert main(argv) == 2
    assert "--simulator and --base-url contradict each other" in capsys.readouterr().err


def test_every_flag_wins_over_the_manifest_and_zero_is_a_value() -> None:
    from flux_batch.runner.prepare import choose_api

    api = ApiSettings(
        base_url="https://proxy.example/v1",
        create_rpm=5,
        other_rpm=7,
        max_in_flight=3,
        wait=30,
        simulator=True,
    )
    given = flags(base_url="https://other.example/v1", create_rpm=50, other_rpm=70, max_in_flight=30, wait=0)
    chosen = choose_api(given, api)
    assert chosen.settings == ApiSettings(
        base_url="https://other.example/v1", create_rpm=50, other_rpm=70, max_in_flight=30, wait=0
    )
    assert chosen.base_url_from == "command line"
    assert choose_api(flags(), api).settings == api
    assert choose_api(flags(no_simulator=True), api).settings.simulator is False
    assert choose_api(flags(simulator=True), ApiSettings()).settings.simulator is True


async def test_wait_0_sends_no_prefer_header() -> None:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        body = {"id": "abc123", "status": "starting", "model": "m/n", "input": {}, "created_at": None}
        return httpx.Response(201, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = ApiClient(http, "https://api.example/v1", "r8_test")
        await client.create("m/n", None, {"prompt": "x"}, wait=0)
        await client.create("m/n", None, {"prompt": "x"}, wait=5)
    assert "prefer" not in seen[0]
    assert seen[1]["prefer"] == "wait=5"


# -- the API host and the token (#9.9) -------------------------------------------------------------------


def test_plan_shows_the_api_host_and_the_token_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(write(tmp_path))]) == 0
    assert "  API: https://api.replicate.com/v1 (token from $REPLICATE_API_TOKEN)" in capsys.readouterr().out
    shared = write(tmp_path, "api: {base_url: 'https://collect.example/v1', token_env: AWS_SECRET}", "s.yaml")
    assert main(["plan", str(shared)]) == 0
    out = capsys.readouterr().out
    assert "API: https://collect.example/v1 (token from $AWS_SECRET); not Replicate's API" in out
    assert main(["plan", "--json", str(shared)]) == 0
    assert json.loads(capsys.readouterr().out)["api"] == {
        "base_url": "https://collect.example/v1",
        "simulator": False,
        "token_env": "AWS_SECRET",
    }


def test_a_manifest_sending_the_token_to_another_host_needs_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path, "api: {base_url: 'https://collect.example/v1', token_env: AWS_SECRET}")
    monkeypatch.setenv("AWS_SECRET", "wJalrXUtnFEMI")
    out = tmp_path / "o"
    with fake_api(monkeypatch) as api:
        assert main(["run", str(manifest), "--out", str(out)]) == 2  # no terminal to ask, no --yes
        err = capsys.readouterr().err
        assert "the manifest sends the API token in $AWS_SECRET to https://collect.example" in err
        assert "run again with --yes" in err and "wJalrXUtnFEMI" not in err
        assert api.requests == [] and not out.exists()

        monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
        assert main(["run", str(manifest), "--out", str(out)]) == 0
        assert api.requests == [] and not out.exists()
        assert "nothing submitted" in capsys.readouterr().err

        assert main(["run", str(manifest), "--out", str(out), "--yes", "-q"]) == 0
        assert api.hosts == {"collect.example"}


def test_the_users_own_base_url_and_loopback_need_no_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = write(tmp_path, "api: {base_url: 'http://127.0.0.1:8787/v1'}", "local.yaml")
    with fake_api(monkeypatch) as api:
        assert main(["run", str(local), "--out", str(tmp_path / "a"), "-q"]) == 0
        own = ["--base-url", "https://p.example/v1"]
        assert main(["run", str(write(tmp_path)), "--out", str(tmp_path / "b"), "-q", *own]) == 0
    assert api.hosts == {"127.0.0.1", "p.example"}


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("r8_abc\nAUTHORIZATION-SMUGGLE", "a line break at character 7"),
        ("r8_abcé123", "a non-ASCII character at character 7"),
        ("r8 abc", "a space or control character at character 3"),
    ],
)
def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it(
    token: str, what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    with fake_api(monkeypatch) as api:
        monkeypatch.setenv("REPLICATE_API_TOKEN", token)
        assert main(["run", str(write(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"the API token in REPLICATE_API_TOKEN has {what}" in err
    assert "abc" not in err and "123" not in err
    assert api.requests == [] and not out.exists()


class _Terminal(io.StringIO):
    """stdin as a terminal that answers ``text``."""

    def isatty(self) -> bool:
        return True


# -- what run says (#10.8) -------------------------------------------------------------------------------


def test_run_has_max_jobs_as_validate_suggests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, "max_jobs: 3")
    assert main(["validate", str(manifest)]) == 2
    assert "or --max-jobs 4" in capsys.readouterr().err
    assert main(["run", str(manifest), "--simulator", "--out", str(tmp_path / "o"), "--max-jobs", "2"]) == 2
    assert "more than 2 jobs" in capsys.readouterr().err
    assert (
        main(["run", str(manifest), "--simulator", "--out", str(tmp_path / "o"), "--max-jobs", "4", "-q"])
        == 0
    )


def test_the_last_lines_tell_this_run_from_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path)
    out = tmp_path / "o"
    assert main(["run", str(manifest), "--simulator", "--out", str(out)]) == 0
    first = capsys.readouterr().err.strip().splitlines()[-2:]
    assert first[0].startswith("flux-batch: finished in ")
    assert first[0].endswith("; this run: 4 succeeded, $0.01 at API prices (simulator: nothing billed)")
    assert first[1] == (
        f"flux-batch: {out}: 4 succeeded of 4 jobs, 4 images; $0.01 at API prices (simulator: nothing "
        "billed) spent there in all (manifest.csv, report.html)"
    )
    write_manifest(manifest, xs="cat, dog, owl, fox, bee, ant")
    assert main(["run", str(manifest), "--simulator", "--out", str(out)]) == 0
    again = capsys.readouterr().err.strip().splitlines()[-2:]
    assert again[0].endswith("; this run: 2 succeeded, $0.01 at API prices (simulator: nothing billed)")
    assert again[1].startswith(f"flux-batch: {out}: 6 succeeded of 6 jobs, 6 images; $0.02 ")


def test_a_rerun_that_finds_failed_jobs_says_how_to_retry_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path)
    out = tmp_path / "o"
    with fake_api(monkeypatch, "content_filter:every=2"):
        assert main(["run", str(manifest), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "2 jobs failed (see `flux-batch status" in err and "--retry-failed to retry them" in err
        assert main(["run", str(manifest), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "2 jobs failed in an earlier run and are left as they are: add --retry-failed" in err


def test_plan_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", xs=", ".join(map(str, range(3000))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flux_batch", "plan", "--jobs", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err  # as if killed by SIGPIPE, like other tools
    assert err == ""

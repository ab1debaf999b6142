"""Simulator settings: durations, fault short forms, YAML profiles and the ``simulate`` command's flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flux_batch.cli import simulate_cmd
from flux_batch.errors import UsageError
from flux_batch.simulator import FaultSpec, SimConfig, load_profile, parse_fault


def test_parse_fault_short_forms() -> None:
    assert parse_fault("ambiguous_create:0.05") == FaultSpec("ambiguous_create", probability=0.05)
    assert parse_fault("html_5xx:every=20:status=502") == FaultSpec("html_5xx", every=20, status=502)
    assert parse_fault("unauthorized:from=100") == FaultSpec("unauthorized", after=100)
    assert parse_fault("reset:10-20,on=get+list") == FaultSpec("reset", requests=(10, 20), on=("get", "list"))
    assert parse_fault("ambiguous_create:every=3:mode=drop").mode == "drop"
    assert parse_fault("slow:0.2:delay=5") == FaultSpec("slow", probability=0.2, delay=5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode", "unknown fault kind"),
        ("slow:every=x", "every must be a number"),
        ("slow:1.5", "probability"),
        ("ambiguous_create:mode=maybe", "mode"),
        ("reset:on=nowhere", "unknown endpoint"),
    ],
)
def test_parse_fault_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(text)


def test_profile_yaml(tmp_path: Path) -> None:
    profile = tmp_path / "chaos.yaml"
    profile.write_text(
        "latency: 2s\ncreate_rpm: 120\nretention: 10m\ntoken: r8_x\nlist_supported: false\nseed: 9\n"
        "faults:\n  - {kind: html_5xx, every: 50, status: 502}\n  - kind: ambiguous_create\n"
        "    probability: 0.1\n    mode: drop\n",
        encoding="utf-8",
    )
    config = load_profile(profile)
    assert config == SimConfig(
        latency=2.0,
        create_rpm=120,
        retention=600.0,
        token="r8_x",
        list_supported=False,
        seed=9,
        faults=(
            FaultSpec("html_5xx", every=50, status=502),
            FaultSpec("ambiguous_create", probability=0.1, mode="drop"),
        ),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latencyy: 3\n", "unknown key 'latencyy'"),
        ("- 1\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_profiles(tmp_path: Path, text: str, message: str) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_profile(profile)
    with pytest.raises(UsageError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")


def test_config_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        SimConfig(burst=0)
    with pytest.raises(UsageError):
        SimConfig(token="")
    with pytest.raises(UsageError, match="rate_limit_body"):
        SimConfig(rate_limit_body="fancy")
    with pytest.raises(UsageError, match="proxy_next"):
        SimConfig(proxy_next="elsewhere")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    simulate_cmd.register(parser.add_subparsers())
    return parser.parse_args(["simulate", *argv])


def test_flags_override_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("latency: 9\nburst: 3\nfaults: [{kind: reset, every: 4}]\n", encoding="utf-8")
    flags = "--latency 1.5 --create-rpm 0 --other-rpm 60 --retention 1m --token t --no-retry-after-header "
    flags += "--low-credit --seed 4 --fault content_filter:0.5 --no-list --files-base-url http://files:1 "
    flags += "--rate-limit-body bare --proxy-next proxy"
    args = parse(["--profile", str(profile), *flags.split()])
    config = simulate_cmd.config_from_args(args)
    assert config == SimConfig(
        latency=1.5,
        create_rpm=0,
        other_rpm=60,
        burst=3,
        retention=60.0,
        token="t",
        retry_after_header=False,
        low_credit=True,
        seed=4,
        faults=(FaultSpec("reset", every=4), FaultSpec("content_filter", probability=0.5)),
        list_supported=False,
        files_base_url="http://files:1",
        rate_limit_body="bare",
        proxy_next="proxy",
    )
    assert simulate_cmd.config_from_args(parse([])) == SimConfig()


def test_ca_file_needs_tls() -> None:
    with pytest.raises(UsageError, match="add --tls"):
        simulate_cmd.run(parse(["--ca-file", "ca.pem", "--port", "0"]))

"""`modelmon run` options: flags with environment twins."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from modelmon import runner
from modelmon.api.policy import (
    DEFAULT_MAX_BYTES,
    DEFAULT_REFERENCE_CACHE_BYTES,
    Egress,
    Policy,
)
from modelmon.api.v1alpha1 import parse_duration
from modelmon.cli import main, parse_args, run_policy

TWINS = ("NAMESPACE", "METRICS_PORT", "HEALTH_PORT", "LOG_FORMAT", "LOG_LEVEL", "WORKERS",
         "EGRESS_ALLOW", "EGRESS_DENY", "ALLOW_LOCAL_PATH", "MAX_SOURCE_BYTES",
         "MAX_CHECK_MEMORY", "REPLICATION", "LEASE_NAMESPACE", "ID", "LEASE_DURATION",
         "REFERENCE_CACHE_BYTES")


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(["run", *argv])


@pytest.fixture(autouse=True)
def _no_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TWINS:
        monkeypatch.delenv(f"MODELMON_{name}", raising=False)


def test_defaults() -> None:
    args = parse()
    assert args.namespace == [] and args.log_level == "info"
    assert args.metrics_port == 8000 and args.health_port == 8080
    assert args.workers == 2 and args.log_format == "json"  # stderr is not a terminal here


def test_defaults_and_their_help_come_from_the_runner_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = parse()
    assert args.rules_resync == runner.Options.rules_resync_seconds
    assert args.log_level == runner.Options.log_level.lower()
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    options = runner.Options
    for quoted in (f"(default {options.metrics_port}) [MODELMON_METRICS_PORT]",
                   f"(default {options.health_port}) [MODELMON_HEALTH_PORT]",
                   f"(default {options.workers}) [MODELMON_WORKERS]",
                   f"default: {options.log_level.lower()} [MODELMON_LOG_LEVEL]"):
        assert quoted in said
    resync = said.split(" [MODELMON_RULES_RESYNC]")[0].rsplit("(default ", 1)[1].rstrip(")")
    assert parse_duration(resync).total_seconds() == options.rules_resync_seconds


def test_environment_twins_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_NAMESPACE", "a,b")
    monkeypatch.setenv("MODELMON_METRICS_PORT", "9191")
    monkeypatch.setenv("MODELMON_HEALTH_PORT", "8181")
    monkeypatch.setenv("MODELMON_LOG_FORMAT", "text")
    monkeypatch.setenv("MODELMON_WORKERS", "4")
    args = parse()
    assert args.namespace == ["a", "b"] and args.metrics_port == 9191
    assert args.health_port == 8181 and args.log_format == "text" and args.workers == 4
    args = parse("--metrics-port", "7000", "--workers", "1", "--log-format", "json",
                 "--namespace", "c")
    assert args.metrics_port == 7000 and args.workers == 1 and args.log_format == "json"
    assert args.namespace == ["c"]  # the flag replaces the variable, it does not add to it


@pytest.mark.parametrize(("name", "value"), [
    ("WORKERS", "abc"), ("WORKERS", "0"), ("METRICS_PORT", "70000"), ("HEALTH_PORT", "x"),
    ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "loud"),
])
def test_bad_environment_values_are_usage_errors_of_run_only(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        name: str, value: str) -> None:
    monkeypatch.setenv(f"MODELMON_{name}", value)
    with pytest.raises(SystemExit) as info:
        parse()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"MODELMON_{name}: '{value}'" in err and "Traceback" not in err
    # Other commands do not read these variables.
    assert parse_args(["crd"]).command == "crd"


def test_flag_wins_over_a_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_WORKERS", "abc")
    assert parse("--workers", "3").workers == 3


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--metrics-port", "70000"],
                                  ["--log-format", "xml"]])
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_egress_lists_from_flags_and_their_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse()
    assert args.egress_allow == () and args.egress_deny == ()
    monkeypatch.setenv("MODELMON_EGRESS_ALLOW", "10.0.0.0/8, *.SVC.cluster.local")
    monkeypatch.setenv("MODELMON_EGRESS_DENY", "10.9.0.0/16")
    args = parse()
    assert args.egress_allow == ("10.0.0.0/8", "*.svc.cluster.local")
    assert args.egress_deny == ("10.9.0.0/16",)
    args = parse("--egress-allow", "127.0.0.1", "--egress-allow", "fd00::/8,db.example",
                 "--egress-deny", "db.example")
    assert args.egress_allow == ("127.0.0.1/32", "fd00::/8", "db.example")  # replaces the twin
    assert args.egress_deny == ("db.example",)
    monkeypatch.setenv("MODELMON_EGRESS_ALLOW", " ")
    assert parse().egress_allow == ()  # an empty variable: no list


@pytest.mark.parametrize(("argv", "says"), [
    (["--egress-allow", "10.0.0.1/8"], "argument --egress-allow: '10.0.0.1/8' has host bits"),
    (["--egress-deny", "not a host"], "argument --egress-deny: 'not a host' is neither"),
    (["--egress-allow", "http://prom:9090"], "argument --egress-allow: 'http://prom:9090' is a "
                                              "URL"),
])
def test_bad_egress_entries_are_usage_errors(argv: list[str], says: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2 and says in capsys.readouterr().err


def test_a_bad_egress_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MODELMON_EGRESS_DENY", "10.0.0.0/8,,300.0.0.0/8")
    with pytest.raises(SystemExit) as info:
        parse()
    assert info.value.code == 2
    assert "MODELMON_EGRESS_DENY: '300.0.0.0/8' is not a network" in capsys.readouterr().err


def test_run_hands_the_egress_policy_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[Any] = []

    def run(opts: Any) -> int:
        got.append(opts)
        return 0

    monkeypatch.setattr(runner, "run", run)
    assert main(["run", "--egress-allow", "10.0.0.0/8", "--egress-deny", "10.1.0.0/16"]) == 0
    (opts,) = got
    assert opts.policy.egress == Egress(allow=("10.0.0.0/8",), deny=("10.1.0.0/16",))
    assert opts.policy.local_paths == Policy.operator().local_paths
    got.clear()
    assert main(["run"]) == 0
    assert got[0].policy.egress == Egress()  # enforced: the families refused by default


def test_the_default_policy_reads_no_local_file_and_has_a_byte_budget() -> None:
    policy = run_policy(parse())
    assert policy.local_paths == () and policy.max_bytes == DEFAULT_MAX_BYTES == 64 * 2**20
    assert policy.egress == Policy.operator().egress
    assert policy.use_label == Policy.operator().use_label


def test_local_paths_and_byte_budget_from_flags_and_twins(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setenv("MODELMON_ALLOW_LOCAL_PATH", f"{tmp_path / 'link'},/srv/b/../data")
    monkeypatch.setenv("MODELMON_MAX_SOURCE_BYTES", "200Mi")
    policy = run_policy(parse())
    assert policy.local_paths == ((tmp_path / "real").resolve(), Path("/srv/data"))
    assert policy.max_bytes == 200 * 2**20
    policy = run_policy(parse("--allow-local-path", "/a", "--allow-local-path", "/b/",
                              "--max-source-bytes", "1000"))
    assert policy.local_paths == (Path("/a"), Path("/b")) and policy.max_bytes == 1000


def test_check_memory_from_flag_twin_or_the_containers_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert run_policy(parse("--max-check-memory", "300Mi")).max_memory == 300 * 2**20
    monkeypatch.setenv("MODELMON_MAX_CHECK_MEMORY", "64Mi")
    assert run_policy(parse()).max_memory == 64 * 2**20
    monkeypatch.setenv("MODELMON_MAX_CHECK_MEMORY", "")
    limit = tmp_path / "memory.max"
    limit.write_text("1073741824\n")
    monkeypatch.setattr("modelmon.api.policy.CGROUP_MEMORY_FILES", (limit,))
    assert run_policy(parse()).max_memory == 2**30 // 4
    limit.write_text("max\n")
    assert run_policy(parse()).max_memory is None


def test_reference_cache_bytes_from_flag_twin_or_the_containers_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    got: list[Any] = []

    def run(opts: Any) -> int:
        got.append(opts)
        return 0

    monkeypatch.setattr(runner, "run", run)
    limit = tmp_path / "memory.max"
    limit.write_text("1073741824\n")
    monkeypatch.setattr("modelmon.api.policy.CGROUP_MEMORY_FILES", (limit,))
    assert main(["run"]) == 0
    assert got[-1].reference_cache_bytes == 2**30 // 4
    limit.write_text("max\n")  # no limit: a fixed default
    assert main(["run"]) == 0
    assert got[-1].reference_cache_bytes == DEFAULT_REFERENCE_CACHE_BYTES == 512 * 2**20
    monkeypatch.setenv("MODELMON_REFERENCE_CACHE_BYTES", "64Mi")
    assert main(["run"]) == 0
    assert got[-1].reference_cache_bytes == 64 * 2**20
    assert main(["run", "--reference-cache-bytes", "1Gi"]) == 0
    assert got[-1].reference_cache_bytes == 2**30
    monkeypatch.setenv("MODELMON_REFERENCE_CACHE_BYTES", "lots")
    with pytest.raises(SystemExit) as info:
        parse()
    assert info.value.code == 2
    assert "MODELMON_REFERENCE_CACHE_BYTES: 'lots' is not a byte count" in \
        capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["--allow-local-path", "data"], "not an absolute path"),
    (["--max-check-memory", "lots"], "not a byte count"),
    (["--reference-cache-bytes", "0"], "not a positive number of bytes"),
    (["--max-source-bytes", "1.5Gi"], "not a byte count"),
    (["--max-source-bytes", "0"], "not a positive number of bytes"),
])
def test_bad_policy_flags_are_usage_errors(argv: list[str], said: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and said in err


def test_a_relative_allowed_path_in_the_twin_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MODELMON_ALLOW_LOCAL_PATH", "/ok,relative/data")
    with pytest.raises(SystemExit):
        parse()
    assert "MODELMON_ALLOW_LOCAL_PATH: 'relative/data' is not an absolute path" in \
        capsys.readouterr().err


def test_replication_is_off_unless_asked_and_its_flags_have_twins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[Any] = []

    def run(opts: Any) -> int:
        got.append(opts)
        return 0

    monkeypatch.setattr(runner, "run", run)
    assert main(["run"]) == 0
    assert not got[0].replication and got[0].identity is None
    assert got[0].lease_duration_seconds == runner.Options.lease_duration_seconds == 20
    assert main(["run", "--replication", "--lease-namespace", "ops", "--id", "pod-1",
                 "--lease-duration", "30s"]) == 0
    assert (got[1].replication, got[1].lease_namespace, got[1].identity,
            got[1].lease_duration_seconds) == (True, "ops", "pod-1", 30)
    monkeypatch.setenv("MODELMON_REPLICATION", "true")
    monkeypatch.setenv("MODELMON_LEASE_NAMESPACE", "ops2")
    monkeypatch.setenv("MODELMON_ID", "pod-2")
    monkeypatch.setenv("MODELMON_LEASE_DURATION", "15s")
    assert main(["run", "--id", "pod-3"]) == 0
    assert (got[2].replication, got[2].lease_namespace, got[2].identity,
            got[2].lease_duration_seconds) == (True, "ops2", "pod-3", 15)


@pytest.mark.parametrize(("name", "value", "said"), [
    ("REPLICATION", "maybe", "is not true or false"),
    ("LEASE_DURATION", "3s", "at least 4s"),
    ("LEASE_DURATION", "10.5s", "whole number of seconds"),
])
def test_bad_replication_variables_are_usage_errors(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
        value: str, said: str) -> None:
    monkeypatch.setenv(f"MODELMON_{name}", value)
    with pytest.raises(SystemExit) as info:
        parse()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"MODELMON_{name}" in err and said in err

"""`modelmon run` options: flags with environment twins."""

from __future__ import annotations

import argparse

import pytest

from modelmon.cli import parser


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["run", *argv])


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACE", "METRICS_PORT", "HEALTH_PORT", "LOG_FORMAT", "WORKERS"):
        monkeypatch.delenv(f"MODELMON_{name}", raising=False)
    args = parse()
    assert args.namespace == [] and args.metrics_port == 9090 and args.health_port == 8080
    assert args.workers == 2 and args.log_format == "json"  # stderr is not a terminal here


def test_environment_twins_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_NAMESPACE", "a,b")
    monkeypatch.setenv("MODELMON_METRICS_PORT", "9191")
    monkeypatch.setenv("MODELMON_HEALTH_PORT", "8181")
    monkeypatch.setenv("MODELMON_LOG_FORMAT", "text")
    monkeypatch.setenv("MODELMON_WORKERS", "4")
    args = parse()
    assert args.namespace == ["a", "b"] and args.metrics_port == 9191
    assert args.health_port == 8181 and args.log_format == "text" and args.workers == 4
    args = parse("--metrics-port", "7000", "--workers", "1", "--log-format", "json")
    assert args.metrics_port == 7000 and args.workers == 1 and args.log_format == "json"


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--metrics-port", "70000"],
                                  ["--log-format", "xml"]])
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err

"""`modelmon run --report-port` and `--report-base-url`, and their environment twins."""

from __future__ import annotations

import pytest

from modelmon import runner
from modelmon.cli import main, parse_args


@pytest.fixture(autouse=True)
def _no_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REPORT_PORT", "REPORT_BASE_URL"):
        monkeypatch.delenv(f"MODELMON_{name}", raising=False)


def test_the_report_is_off_by_default() -> None:
    args = parse_args(["run"])
    assert args.report_port == 0 == runner.Options.report_port
    assert args.report_base_url == "" and runner.Options.report_base_url is None


def test_flags_and_their_environment_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_REPORT_PORT", "8090")
    monkeypatch.setenv("MODELMON_REPORT_BASE_URL", "https://modelmon.example.com/")
    args = parse_args(["run"])
    assert args.report_port == 8090
    assert args.report_base_url == "https://modelmon.example.com"
    args = parse_args(["run", "--report-port", "off",
                       "--report-base-url", "http://127.0.0.1:8090/x"])
    assert args.report_port == 0 and args.report_base_url == "http://127.0.0.1:8090/x"
    monkeypatch.setenv("MODELMON_REPORT_PORT", "")
    assert parse_args(["run"]).report_port == 0


@pytest.mark.parametrize(("env", "value", "said"), [
    ("REPORT_PORT", "70000", "is not a TCP port"),
    ("REPORT_PORT", "http", "is not a positive integer"),
    ("REPORT_BASE_URL", "modelmon.example.com", "is not an http(s) URL"),
    ("REPORT_BASE_URL", "https://x.example/?a=1", "without query or fragment"),
])
def test_a_bad_twin_is_a_usage_error_naming_it(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               env: str, value: str, said: str) -> None:
    monkeypatch.setenv(f"MODELMON_{env}", value)
    with pytest.raises(SystemExit) as exited:
        parse_args(["run"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"MODELMON_{env}" in err and said in err


def test_help_names_the_twins_and_who_can_see_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "[MODELMON_REPORT_PORT]" in said and "[MODELMON_REPORT_BASE_URL]" in said
    assert "anyone who can reach it" in said and "default: off" in said


def test_a_taken_report_port_is_one_error_line_and_exit_1() -> None:
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "modelmon", "run", "--report-port", str(port),
             "--log-format", "text", "--kubeconfig", "/nonexistent/kubeconfig"],
            capture_output=True, text=True, timeout=60, check=False, cwd=root,
            env={**os.environ, "PYTHONPATH": str(root / "operator")})
    assert done.returncode == 1, done.stderr  # as a taken metrics or health port
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"the report port {port} is already in use" in lines[0]
    assert "--report-port" in lines[0] and "MODELMON_REPORT_PORT" in lines[0]
    assert "Traceback" not in done.stderr

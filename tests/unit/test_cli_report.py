"""`modelmon report`: the check's flags, its exit codes, and an HTML file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from modelmon.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "breast-cancer" / "monitor.yaml"


def test_writes_the_report_and_exits_like_check(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code = main(["report", str(EXAMPLE), "-o", str(out)])
    _, err = capsys.readouterr()
    assert code == main(["check", str(EXAMPLE)]) == 1  # critical findings, --fail-on critical
    capsys.readouterr()
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "breast-cancer" in text and "mean_area" in text and "clinic" in text
    assert f"wrote {out}" in err


def test_same_flags_as_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mon = yaml.safe_load(EXAMPLE.read_text())
    del mon["spec"]["drift"]["features"]  # only warnings remain
    mon["spec"]["performance"]["metrics"] = [{"name": "accuracy", "min": 0.9}]
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp_path / name)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    assert main(["report", str(path), "-o", str(tmp_path / "a.html")]) == 0
    assert main(["report", str(path), "-o", str(tmp_path / "b.html"), "--fail-on", "warning",
                 "--at", "2026-01-31T12:00:00Z", "--secret", "unused/key=value"]) == 1
    assert "2026-01-31 12:00:00 UTC" in (tmp_path / "b.html").read_text()


def test_standard_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    main(["report", str(EXAMPLE)])
    out, _ = capsys.readouterr()
    assert out.startswith("<!DOCTYPE html>")


def test_no_verdict_exits_2_and_writes_nothing(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"  # the data files are not beside it
    path.write_text(EXAMPLE.read_text())
    out = tmp_path / "report.html"
    assert main(["report", str(path), "-o", str(out)]) == 2
    _, err = capsys.readouterr()
    assert "spec.reference.source" in err and not out.exists()


def test_unwritable_output_names_the_flag(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "report.html"
    assert main(["report", str(EXAMPLE), "-o", str(target)]) == 2
    _, err = capsys.readouterr()
    assert f"-o {target}: cannot write the report" in err

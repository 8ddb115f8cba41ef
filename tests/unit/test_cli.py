"""The modelmon command: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from corpus import bad_cases
from modelmon.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "breast-cancer" / "monitor.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_example_table_shows_drift_performance_quality_findings(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(EXAMPLE))
    assert code == 1  # the example has critical findings and --fail-on defaults to critical
    assert "monitor breast-cancer: Degraded" in out
    for text in ("mean_radius", "ks", "DRIFT", "performance:", "accuracy", "data quality:",
                 "[critical] drift.feature.mean_area", "dataQuality.missingFraction.mean_texture"):
        assert text in out


def test_example_json_is_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(EXAMPLE), "-o", "json")
    status = json.loads(out)
    assert code == 1
    assert status["phase"] == "Degraded"
    drifted = set(status["drift"]["drifted"])
    assert {"mean_radius", "mean_perimeter", "mean_area", "clinic"} <= drifted
    assert not drifted & {"mean_smoothness", "mean_compactness", "mean_symmetry"}
    assert status["performance"]["accuracy"] < 0.9
    feature = status["drift"]["features"][0]
    assert set(feature) >= {"name", "kind", "method", "statistic", "pValue", "threshold",
                            "drifted"}
    psi = next(f for f in status["drift"]["features"] if f["method"] == "psi")
    assert psi["pValue"] is None
    assert status["drift"]["prediction"]["name"] == "prediction"
    assert {c["type"] for c in status["conditions"]} == {
        "Ready", "Reconciling", "Stalled", "SourceAvailable", "DataDrift",
        "PerformanceDegraded", "DataQualityDegraded"}
    assert set(status["lastCheck"]) == {"time", "durationSeconds", "referenceRows",
                                        "currentRows"}


def test_yaml_output_and_fail_on(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mon = yaml.safe_load(EXAMPLE.read_text())
    # Without the critical overrides only warnings remain: exit 0 at critical, 1 at warning.
    del mon["spec"]["drift"]["features"]
    mon["spec"]["performance"]["metrics"] = [{"name": "accuracy", "min": 0.9}]
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp_path / name)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    code, out, _ = run(capsys, "check", str(path), "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["phase"] == "Degraded"
    code, _, _ = run(capsys, "check", str(path), "--fail-on", "warning")
    assert code == 1


def test_missing_data_file_exits_2_naming_file_and_field(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mon = yaml.safe_load(EXAMPLE.read_text())
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    code, out, err = run(capsys, "check", str(path))
    assert code == 2 and out == ""
    assert str(path) in err and "spec.reference.source.url" in err and "not found" in err


def test_invalid_monitor_exits_2_naming_file_document_field(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = bad_cases()[:3]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([c.doc for c in cases]))
    for cmd in ("check", "validate"):
        code, _, err = run(capsys, cmd, str(path))
        assert code == 2
        for i, c in enumerate(cases):
            assert f"{path} (document {i + 1}), bad-{c.name}: {c.model_field}:" in err, err


def test_validate_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(EXAMPLE), str(ROOT / "tests/data/good_monitor.yaml"))
    assert code == 0 and out.count("is valid") == 2


@pytest.mark.parametrize("content", ["a: [unclosed", "- just\n- a list\n", ""])
def test_validate_rejects_non_monitors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       content: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(content)
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and str(path) in err


@pytest.mark.parametrize(("kind", "api_version", "why"), [
    ("ModelMoniter", "modelmon.io/v1alpha1", "did you mean ModelMonitor"),
    ("modelmonitor", "v1", "did you mean ModelMonitor"),
    ("Monitor", "modelmon.io/v1alpha1", "not a kind of modelmon.io"),
    (None, "modelmon.io/v1alpha1", "kind: required field is missing"),
])
def test_mistaken_kind_is_reported_by_document(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str | None,
        api_version: str, why: str) -> None:
    good = yaml.safe_load(EXAMPLE.read_text())
    wrong = {**good, "apiVersion": api_version, "kind": kind}
    if kind is None:
        del wrong["kind"]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "data"},
                  "data": {"a.csv": "a\n1\n"}}
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump_all([good, config_map, wrong]))
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2
    assert f"{path} (document 3): kind: " in err and why in err, err
    assert "document 2" not in err  # other kinds are skipped


def test_crd_command_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    doc: dict[str, Any] = yaml.safe_load(out)
    assert code == 0 and doc["kind"] == "CustomResourceDefinition"


def test_console_script_and_module_entry_points() -> None:
    exe = shutil.which("modelmon")
    cmds = [[sys.executable, "-m", "modelmon", "--version"]]
    if exe:
        cmds.append([exe, "--version"])
    # Started together: each spends its time importing modelmon.
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(ROOT / "operator"), "PATH": "/usr/bin:/bin"})
             for cmd in cmds]
    for cmd, proc in zip(cmds, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.startswith("modelmon "), (cmd, out, err)


def test_empty_current_window_exits_2_with_insufficient_data(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mon = yaml.safe_load(EXAMPLE.read_text())
    del mon["spec"]["current"]["minRows"]  # the default minimum applies
    shutil.copy(EXAMPLE.parent / "reference.csv", tmp_path / "reference.csv")
    header = (EXAMPLE.parent / "current.csv").read_text().splitlines()[0]
    (tmp_path / "current.csv").write_text(header + "\n")
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    code, out, err = run(capsys, "check", str(path))
    assert code == 2
    assert "InsufficientData: spec.current.source: the current window has 0 rows" in err
    assert "Healthy" not in out + err


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """One copy of the version: pyproject.toml, read back from the installed metadata."""
    import tomllib

    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                             .read_text())["project"]["version"]
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"modelmon {declared}"


def test_table_lists_the_bounds_not_checked(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    mon = yaml.safe_load(EXAMPLE.read_text())
    shutil.copy(EXAMPLE.parent / "reference.csv", tmp_path / "reference.csv")
    lines = (EXAMPLE.parent / "current.csv").read_text().splitlines()
    target = lines[0].split(",").index("target")
    # Every label of the window the same: rocAuc is undefined, accuracy still judged.
    one_class = [",".join("1" if i == target else v for i, v in enumerate(line.split(",")))
                 for line in lines[1:]]
    (tmp_path / "current.csv").write_text("\n".join([lines[0], *one_class]) + "\n")
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    _, out, _ = run(capsys, "check", str(path))
    section = out[out.index("\nnot checked:"):out.index("\nfindings")]
    assert section.splitlines()[2:] == [
        "  performance.rocAuc (spec.performance.metrics[2]): rocAuc is undefined when the "
        "window has only one class"]
    assert "[warning] performance.accuracy" in out
    # Without labels at all, every performance bound is listed, with why.
    (tmp_path / "current.csv").write_text("\n".join(
        ",".join(v for i, v in enumerate(line.split(",")) if i != target)
        for line in lines) + "\n")
    _, out, _ = run(capsys, "check", str(path))
    assert "\nlabels: missing since " in out
    listed = out[out.index("\nnot checked:"):out.index("\nfindings")].splitlines()[2:]
    assert [line.split(" (")[0].strip() for line in listed] == [
        "performance.accuracy", "performance.precision", "performance.rocAuc"]
    assert all("no label column 'target'" in line for line in listed)

"""What `modelmon` explains: column summaries beside the statistic (status and table), the
drift table's order, JSON errors on exit 2, validate over folders and kustomize
directories, durations in days and weeks, and what `--version` leaves unimported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from corpus import good_monitor, merge_patch
from modelmon.api.v1alpha1 import ModelMonitor, ModelMonitorStatus, parse_duration
from modelmon.cli import main, render_table

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "breast-cancer" / "monitor.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def example_status() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "modelmon", "check", str(EXAMPLE), "-o",
                           "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def test_status_has_both_sides_of_every_column(example_status: dict[str, Any]) -> None:
    features = {f["name"]: f for f in example_status["drift"]["features"]}
    frame = pd.read_csv(EXAMPLE.parent / "reference.csv")
    radius = features["mean_radius"]
    assert radius["reference"]["mean"] == pytest.approx(frame["mean_radius"].mean())
    assert radius["reference"]["median"] == pytest.approx(frame["mean_radius"].median())
    assert radius["reference"]["count"] == frame["mean_radius"].notna().sum()
    assert radius["current"]["median"] > radius["reference"]["median"]  # larger cells
    assert set(radius["current"]) == {"count", "mean", "std", "min", "p05", "p25", "median",
                                      "p75", "p95", "max"}
    clinic = features["clinic"]
    shares = frame["clinic"].value_counts(normalize=True)
    assert {c["name"]: c["share"] for c in clinic["reference"]["top"]} == pytest.approx(
        shares.to_dict())
    assert "newCategories" not in clinic["reference"]
    assert clinic["current"]["newCategories"] == ["west"]
    assert clinic["current"]["newCategoryCount"] == 1
    # The status the operator would write parses back into the model.
    parsed = ModelMonitorStatus.model_validate(example_status)
    assert parsed.drift is not None and parsed.drift.features[0].reference is not None


def test_table_is_sorted_by_drift_with_summaries(capsys: pytest.CaptureFixture[str],
                                                 example_status: dict[str, Any]) -> None:
    status = ModelMonitorStatus.model_validate(example_status)
    out = render_table("breast-cancer", status)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("column "))
    assert "effect" in lines[header] and "reference" in lines[header]
    rows = lines[header + 1:lines.index("", header)]
    verdicts = ["DRIFT" in r.split() for r in rows]
    assert verdicts == sorted(verdicts, reverse=True)  # drifted first
    assert rows[0].startswith("mean_area")  # the one critical drift finding
    drifted_tests = [r for r in rows if "DRIFT" in r.split() and " ks " in r]
    effects = [float(r.split()[5]) for r in drifted_tests]
    assert effects == sorted(effects, reverse=True)
    clinic = next(r for r in rows if r.startswith("clinic"))
    assert "north 52%" in clinic and "new: west (29%)" in clinic
    radius = next(r for r in rows if r.startswith("mean_radius"))
    assert "median 13.5" in radius and "median 15.1" in radius


def test_json_error_object_on_exit_2(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    bad = merge_patch(good_monitor(), {"spec": {"drift": {"method": "kss"}}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    code, out, err = run(capsys, "check", str(path), "-o", "json")
    assert code == 2 and "spec.drift.method" in err
    error = json.loads(out)["error"]
    assert error["reason"] == "InvalidSpec" and error["field"] == "spec.drift.method"
    assert "spec.drift.method" in error["message"] and error["file"] == str(path)
    # Data the check cannot use: the Ready condition's reason, the field it names.
    mon = yaml.safe_load(EXAMPLE.read_text())
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mon))
    code, out, _ = run(capsys, "check", str(path), "-o", "json")
    error = json.loads(out)["error"]
    assert code == 2 and error["reason"] == "SourceUnavailable"
    assert error["field"] == "spec.reference.source.url" and error["monitor"] == "breast-cancer"
    code, out, _ = run(capsys, "check", str(path))  # the table output stays quiet
    assert code == 2 and out == ""


def _kustomize_tree(tmp_path: Path) -> Path:
    base, overlay, other = (tmp_path / "base", tmp_path / "overlay", tmp_path / "other")
    for folder in (base, overlay, other):
        folder.mkdir()
    monitor = yaml.safe_load(EXAMPLE.read_text())
    (base / "monitor.yaml").write_text(yaml.safe_dump(monitor))
    (base / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\n"
                                         "metadata: {name: ml-demo}\n")
    (base / "unlisted.yaml").write_text("kind: ModelMonitor\nmetadata: {name: broken}\n")
    (base / "kustomization.yaml").write_text(
        "resources: [monitor.yaml, namespace.yaml]\n"
        "configMapGenerator: [{name: data, files: [reference.csv]}]\n")
    (overlay / "kustomization.yaml").write_text("resources: [../base]\n"
                                                "patches: [{path: interval.yaml}]\n")
    (overlay / "interval.yaml").write_text("kind: ModelMonitor\nmetadata: {name: x}\n"
                                           "spec: {schedule: {interval: 1h}}\n")
    second = merge_patch(monitor, {"metadata": {"name": "second"}})
    (other / "monitors.yml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, second]))
    (other / "notes.yaml").write_text("just: config\n")
    return tmp_path


def test_validate_reads_kustomize_directories_and_folders(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _kustomize_tree(tmp_path)
    code, out, err = run(capsys, "validate", str(root / "overlay"))
    assert code == 0, err
    assert "ModelMonitor breast-cancer is valid" in out
    assert "interval.yaml" not in out and "unlisted" not in out  # patches, unlisted files
    assert "namespace.yaml: no ModelMonitor; skipped Namespace" in out
    assert f"{root / 'overlay'}: read 2 YAML files, 1 ModelMonitor" in out
    code, named, _ = run(capsys, "validate", str(root / "overlay" / "kustomization.yaml"))
    assert code == 0 and "ModelMonitor breast-cancer is valid" in named
    code, out, err = run(capsys, "validate", str(root / "other"))
    assert code == 0, err
    assert "monitors.yml: ModelMonitor second is valid" in out
    assert "monitors.yml: skipped ConfigMap" in out and "notes.yaml: no ModelMonitor" in out


def test_validate_folder_reports_broken_monitors_and_empty_folders(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _kustomize_tree(tmp_path)
    (root / "base" / "kustomization.yaml").unlink()  # now a plain folder: unlisted is read
    code, _, err = run(capsys, "validate", str(root / "base"))
    assert code == 2 and "unlisted.yaml (document 1), broken: spec:" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "validate", str(empty))
    assert code == 2 and "no ModelMonitor document found" in err


def test_days_and_weeks(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_duration("1w2d3h").total_seconds() == (9 * 24 + 3) * 3600
    doc = merge_patch(good_monitor(), {"spec": {"schedule": {"interval": "1d"},
                                                "current": {"window": "2w"}}})
    assert ModelMonitor.model_validate(doc).spec.current.window == "2w"
    for bad in ("10x", "1.5d", "1 day"):
        with pytest.raises(ValueError, match=r"units: ms, s, m, h .* d \(days\) and w"):
            parse_duration(bad)
    with pytest.raises(SystemExit):
        main(["run", "--rules-resync", "1y"])
    assert "units: ms, s, m, h" in capsys.readouterr().err


def test_bad_interval_names_the_units(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    doc = merge_patch(good_monitor(), {"spec": {"schedule": {"interval": "10 minutes"}}})
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and "spec.schedule.interval: '10 minutes' is not a duration; units:" in err


def test_version_imports_no_heavy_module() -> None:
    probe = ("import sys\nfrom modelmon.cli import main\ntry:\n    main(['--version'])\n"
             "except SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert "modelmon" in loaded
    heavy = {"pandas", "numpy", "scipy", "sklearn", "pydantic", "kopf", "kubernetes",
             "pyarrow", "yaml"}
    assert not loaded & heavy, loaded & heavy


def test_check_of_the_example_imports_only_what_it_uses() -> None:
    """A binary check with KS and chi-square needs neither scikit-learn (the binary metrics
    are numpy) nor scipy.stats and scipy.optimize (their p-values come from scipy.special
    here): the three cost more to import than the check takes to run."""
    probe = ("import contextlib, io, sys\nfrom modelmon.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             f"    code = main(['check', {str(EXAMPLE)!r}])\n"
             "print(code, ' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    code, *loaded = done.stdout.split()
    assert code == "1" and "pandas" in loaded and "modelmon.check" in loaded
    assert not {"sklearn", "scipy.stats", "scipy.optimize", "kopf"} & set(loaded)

"""status.summary: what `kubectl get mm` shows, display-ready, from real checks.

The CRD's printer columns read these fields (tests/unit/api/test_api.py checks the paths);
tests/integration/test_crd.py reads them back through the API server's table.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from modelmon.api.v1alpha1 import ModelMonitorStatus
from modelmon.check import run_check
from modelmon.evaluation import summary
from modelmon.monitor_files import load_monitors

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast-cancer"


def check(tmp_path: Path, previous: ModelMonitorStatus | None = None,
          **spec: Any) -> ModelMonitorStatus:
    doc = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    for key, value in spec.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return run_check(load_monitors(path)[0].spec, base_dir=tmp_path, previous=previous,
                     generation=1)


def test_a_degraded_check_counts_drift_and_names_the_worst_finding(tmp_path: Path) -> None:
    status = check(tmp_path)
    assert status.phase == "Degraded" and status.drift is not None
    got = status.summary
    assert got is not None
    assert got.drifted == f"{len(status.drift.drifted)}/{len(status.drift.features)}"
    assert got.drifted == "5/9"
    assert got.findings == len(status.findings) > 0
    critical = [f.name for f in status.findings if f.severity == "critical"]
    assert critical and got.worst == f"critical: {critical[0]}"
    # Degraded by performance findings (drift too): the condition that makes it Degraded.
    assert got.reason == "PerformanceDegraded"
    for type_ in ("PerformanceDegraded", "DataDrift"):
        condition = status.condition(type_)
        assert condition is not None and condition.status == "True"


def test_a_healthy_check_has_no_reason_and_no_worst(tmp_path: Path) -> None:
    status = check(tmp_path, current={"source": {"url": "reference.csv"}, "minRows": 50})
    assert status.phase == "Healthy"
    assert status.summary is not None
    assert (status.summary.drifted, status.summary.findings) == ("0/9", 0)
    assert status.summary.worst is None and status.summary.reason is None


def test_a_drifting_check_says_data_drift(tmp_path: Path) -> None:
    status = check(tmp_path, performance=None, dataQuality=None)
    assert status.phase == "Drifting"
    assert status.summary is not None and status.summary.reason == "DataDrift"
    assert status.summary.worst is not None
    assert status.summary.worst.startswith("critical: drift.")


def test_a_failing_check_gives_ready_s_reason(tmp_path: Path) -> None:
    before = check(tmp_path)
    status = check(tmp_path, previous=before, current={"source": {"url": "missing.csv"}})
    assert status.phase == "Failing"
    assert status.summary is not None and status.summary.reason == "SourceUnavailable"
    # The figures kept from before are still what the columns count.
    assert status.summary.drifted == "5/9"


def test_too_few_rows_gives_insufficient_data(tmp_path: Path) -> None:
    status = check(tmp_path, current={"source": {"url": "current.csv"}, "minRows": 10_000})
    assert status.phase == "Pending"
    assert status.summary is not None and status.summary.reason == "InsufficientData"
    assert status.summary.drifted == "-"  # no drift figures yet


def test_the_summary_is_in_the_json_status_and_holds_no_float(tmp_path: Path) -> None:
    body = check(tmp_path).model_dump(by_alias=True, mode="json")["summary"]
    assert set(body) == {"drifted", "findings", "worst", "reason"}
    assert not any(isinstance(value, float) for value in body.values())


def test_summary_is_recomputed_not_carried(tmp_path: Path) -> None:
    status = check(tmp_path)
    emptied = status.model_copy(update={"findings": []})
    assert summary(emptied).findings == 0 and summary(emptied).worst is None

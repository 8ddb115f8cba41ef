"""The Grafana dashboard: valid PromQL (promtool), only metrics the operator exports.

tests/integration/test_install.py compares the same names with a running operator's
/metrics; here they are compared with the operator's registry after a real check.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

import grafana
from modelmon.api.v1alpha1.spec import EstimatedPerformanceSpec
from modelmon.check import run_check
from modelmon.health import Health
from modelmon.monitor_files import load_monitors
from modelmon.outputs.metrics import Metrics
from modelmon.runner import OperatorGauges
from modelmon.sources import ReferenceCache
from modelmon.worker import Fleet
from toolcheck import require

EXAMPLE = grafana.REPO_ROOT / "examples" / "breast-cancer" / "monitor.yaml"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return grafana.load()


def exported_names() -> set[str]:
    """Sample names the operator's registry serves after one check of the example, with
    an estimated metric listed too (the example's spec lists none)."""
    metrics = Metrics()
    monitor = load_monitors(EXAMPLE)[0]
    performance = monitor.spec.performance.model_copy(update={
        "estimated": EstimatedPerformanceSpec.model_validate(
            {"metrics": [{"name": "rocAuc", "min": 0.5}]})})
    spec = monitor.spec.model_copy(update={"performance": performance})
    status = run_check(spec, base_dir=EXAMPLE.parent)
    assert status.estimated_performance, status.estimation_reason
    metrics.observe("ml-demo", "breast-cancer", model=monitor.spec.model.name, status=status,
                    seconds=0.1, last_success=1.0, error="SourceUnavailable")

    class NoMonitors:
        monitors: dict[Any, Any] = {}  # noqa: RUF012 - a stand-in for Fleet
        owned = 0
        membership = None
        references: ReferenceCache[Any] = ReferenceCache()

    metrics.registry.register(OperatorGauges(Health(), cast(Fleet, NoMonitors())))
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = require("promtool")
    defined = grafana.variables(dashboard)
    queries = grafana.queries(dashboard)
    assert len(queries) >= 20
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana.promql(q.expr, defined)}
             for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: promtool parses, it does not just read YAML."""
    promtool = require("promtool")
    path = tmp_path / "bad.yaml"
    expr = grafana.promql('sum by (monitor (modelmon_monitors{namespace=~"$namespace"})',
                          {"namespace"})
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "bad", "expr": expr}]}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0


def test_queries_name_only_metrics_the_operator_exports(dashboard: dict[str, Any]) -> None:
    exported = exported_names()
    used: dict[str, set[str]] = {}
    for q in grafana.queries(dashboard):
        names = grafana.metric_names(q.expr)
        assert names, f"{q.where}: no metric in {q.expr}"
        for name in names:
            used.setdefault(name, set()).add(q.where)
    unknown = {n: sorted(w) for n, w in used.items() if n not in exported}
    assert not unknown, f"metrics the operator does not export: {unknown}"


def test_metric_names_reads_selectors_not_labels() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, monitor) (rate('
            'modelmon_check_duration_seconds_bucket{monitor=~"a|b", feature="sum"}[5m])))'
            ' / on (monitor) group_left max(up) > 0.5')
    assert grafana.metric_names(expr) == {"modelmon_check_duration_seconds_bucket", "up"}


def test_undefined_variables_are_refused(dashboard: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match=r"\$nope"):
        grafana.promql('modelmon_monitors{namespace=~"$nope"}', grafana.variables(dashboard))


def test_it_shows_drift_per_feature_performance_quality_and_check_health(
        dashboard: dict[str, Any]) -> None:
    exprs = " ".join(q.expr for q in grafana.queries(dashboard))
    for needed in ("modelmon_drift_statistic", "modelmon_drift_p_value",
                   "modelmon_drift_detected", "modelmon_dataset_drift_share",
                   "modelmon_performance_metric", "modelmon_data_quality",
                   "modelmon_monitor_phase", "modelmon_last_check_timestamp_seconds",
                   "modelmon_check_errors_total", "modelmon_check_duration_seconds_bucket",
                   "modelmon_findings"):
        assert needed in exprs, needed
    # Drift per feature: a query per feature (grouped by it) and a feature variable.
    assert any("by (monitor, feature, method)" in q.expr for q in grafana.queries(dashboard))
    assert "feature" in grafana.variables(dashboard)
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Check health", "Drift", "Performance", "Data quality"]
    # Every check in the data-quality figures has a panel.
    for check in ("missingFraction", "outlierFraction", "outOfRangeFraction", "newCategories"):
        assert check in exprs, check


def test_panels_are_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in grafana.panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    for p in grafana.panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert p.get("description"), f"panel {p['title']!r} has no description"
    # Panels do not overlap on Grafana's 24-column grid.
    cells: dict[tuple[int, int], str] = {}
    for p in grafana.panels(dashboard):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]

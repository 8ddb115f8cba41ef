"""The bounds table is the one list of bounds: derived from it, every bound has exactly one
alert in the generated rule and one exported series that carries its figure, and names the
spec field it came from. Nothing here lists bounds by hand."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelmon.api.v1alpha1 import (
    ColumnQuality,
    DataQualityStatus,
    DriftStatus,
    FeatureDriftResult,
    LastCheck,
    ModelMonitorSpec,
    ModelMonitorStatus,
    TypeChange,
)
from modelmon.evaluation import Bound, Figures, judge, table
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.rules import prometheus_rule
from modelmon.stats.dataset import ColumnDrift
from modelmon.stats.drift import DriftResult
from modelmon.stats.estimation import Confidence, Estimate

NS, MON = "ml", "credit"
SPEC = ModelMonitorSpec.model_validate({
    "model": {"name": "credit-risk", "task": "binaryClassification"},
    "reference": {"source": {"url": "r.csv"}},
    "current": {"source": {"url": "c.csv"}},
    "columns": {"prediction": "score", "predictionProbability": "p", "target": "defaulted"},
    "drift": {"severity": "warning", "datasetDriftShare": 0.4,
              "features": {"income": {"severity": "critical"},
                           "age": {"method": "ks", "threshold": 0.01}}},
    "performance": {"metrics": [{"name": "accuracy", "min": 0.8, "max": 0.99},
                                {"name": "rocAuc", "min": 0.7, "severity": "critical"}],
                    "maxLabelDelay": "6h", "labelDelaySeverity": "critical",
                    "estimated": {"metrics": [
                        {"name": "f1", "min": 0.6, "max": 0.99},
                        {"name": "rocAuc", "min": 0.75, "severity": "critical"},
                        {"name": "precision", "max": 0.9}]}},
    "confidence": {"meanConfidence": {"min": 0.7, "severity": "critical"},
                   "lowConfidenceShare": {"below": 0.6, "max": 0.2}},
    "dataQuality": {"missingFraction": {"max": 0.05}, "outlierFraction": {"max": 0.1},
                    "outOfRangeFraction": {"max": 0.1},
                    "newCategories": {"max": 0, "severity": "critical"}},
    "operational": {"source": {"prometheus": {"url": "http://prometheus.example:9090",
                                              "queries": [
                                                  {"name": "latencyP95Seconds", "query": "q",
                                                   "max": 0.5},
                                                  {"name": "errorRate", "query": "q",
                                                   "min": 0, "max": 0.01},
                                                  {"name": "qps", "query": "q"}]}}},
})
ROWS = table(SPEC)


def test_every_bound_of_the_spec_is_a_row() -> None:
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names))
    assert {r.family for r in ROWS} == {"drift", "performance", "estimatedPerformance",
                                        "confidence", "dataQuality", "operational", "check"}
    # Spec bounds become rows: one per metric, per bounded query, per quality bound, per
    # feature with a severity of its own; an unbounded query is no row.
    assert "operational.qps" not in names
    assert {"performance.accuracy", "performance.rocAuc", "performance.labelsMissing",
            "operational.errorRate", "drift.feature.income", "confidence.meanConfidence",
            "confidence.lowConfidenceShare", "estimatedPerformance.f1",
            "estimatedPerformance.rocAuc", "estimatedPerformance.precision"} <= set(names)
    assert "drift.feature.age" not in names  # no severity of its own: counts in the share


def _field(spec: dict[str, Any], path: str) -> object:
    """The value at a field path such as ``spec.a.b[0].c`` of the spec's YAML form."""
    node: Any = {"spec": spec}
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_row_names_a_field_of_the_spec(row: Bound) -> None:
    _field(SPEC.model_dump(by_alias=True, mode="json"), row.field)


def _rule_alerts() -> list[dict[str, Any]]:
    rule = prometheus_rule(NS, MON, SPEC)
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_each_row_has_exactly_one_alert_and_each_alert_one_row() -> None:
    alerts = _rule_alerts()
    assert len(alerts) == len(ROWS)
    claimed: set[int] = set()
    for row in ROWS:
        own = {label: value for label, value in row.match if label in row.per}
        mine = [i for i, a in enumerate(alerts) if a["alert"] == row.alert
                and all(a["labels"].get(k) == v for k, v in own.items())
                and row.series in a["expr"] and a["labels"]["severity"] == row.severity]
        # Rows sharing an alert name tell theirs apart by the labels they select.
        mine = [i for i in mine if all(f'{k}="{v}"' in alerts[i]["expr"]
                                       for k, v in row.match)]
        assert len(mine) == 1, (row.name, [alerts[i]["alert"] for i in mine])
        claimed.add(mine[0])
    assert claimed == set(range(len(alerts)))


def _column(name: str, role: str, statistic: float, p_value: float | None) -> ColumnDrift:
    return ColumnDrift(name, role, "numeric",  # type: ignore[arg-type]
                       DriftResult("ks" if p_value is not None else "wasserstein",
                                   statistic, p_value))


NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _statuses_over_every_bound() -> list[ModelMonitorStatus]:
    """Checks whose figures together cross every bound of the table, judged by evaluation:
    one with labels, whose metrics cross their bounds, and one a day after labels stopped
    arriving (no metric then, but the label delay crossed)."""
    quality = DataQualityStatus(
        columns=[ColumnQuality(name="income", missing_fraction=0.5, outlier_fraction=0.5,
                               out_of_range_fraction=0.5, new_categories=2)],
        missing_columns=["zip"],
        type_changes=[TypeChange(name="age", reference="numeric", current="categorical")])
    figures = Figures(
        reference_rows=100, current_rows=100,
        columns=[_column("income", "feature", 0.9, 0.0), _column("age", "feature", 0.9, 0.0),
                 _column("score", "prediction", 0.9, 0.0),
                 _column("defaulted", "target", 0.9, 0.0)],
        quality=quality, performance={"accuracy": 0.5, "rocAuc": 0.5}, not_computed={},
        no_labels=None, operational={"latencyP95Seconds": 0.9, "errorRate": 0.5, "qps": 10.0},
        confidence=Confidence(mean_confidence=0.55, low_confidence_share=0.6, below=0.6,
                              class_shares={"positive": 0.5, "negative": 0.5}, rows=100),
        # Whole bands past the bounds: below each min, above precision's max.
        estimated={"f1": Estimate(0.4, 0.3, 0.5), "rocAuc": Estimate(0.6, 0.55, 0.65),
                   "precision": Estimate(0.97, 0.95, 0.99)})
    labelled = judge(SPEC, ROWS, figures, previous=ModelMonitorStatus(), now=NOW,
                     generation=1, duration_seconds=0.1)
    unlabelled = replace(figures, performance={}, no_labels="no labels")
    first = judge(SPEC, ROWS, unlabelled, previous=labelled, now=NOW, generation=1,
                  duration_seconds=0.1)
    later = judge(SPEC, ROWS, unlabelled, previous=first, now=NOW + timedelta(days=1),
                  generation=1, duration_seconds=0.1)
    return [labelled, later]


def _found(status: ModelMonitorStatus, row: Bound) -> bool:
    return any(f.name == row.name or f.name.startswith(row.name + ".")
               for f in status.findings)


def test_judging_figures_past_every_bound_finds_each_row() -> None:
    statuses = _statuses_over_every_bound()
    for row in ROWS:
        if row.family == "check":  # the health rows judge the operator's own series
            continue
        assert any(_found(status, row) for status in statuses), row.name


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_row_has_one_exported_series_carrying_its_figure(row: Bound) -> None:
    statuses = _statuses_over_every_bound()
    judged = next((s for s in statuses if _found(s, row)), statuses[0])
    status = judged.model_copy(update={"phase": "Failing"})
    metrics = Metrics()
    metrics.observe(NS, MON, model=SPEC.model.name, status=status, seconds=0.1,
                    last_success=1.0, error=None)
    families = {f.name: f for f in metrics.registry.collect()}
    assert row.series in families, row.series
    samples = [s for s in families[row.series].samples
               if s.labels["monitor"] == MON
               and all(s.labels.get(k) == v for k, v in row.match)]
    assert samples, (row.name, row.series, row.match)
    # The labels the alert keeps tell the samples apart: one series per column or feature.
    keys = [tuple(s.labels[k] for k in row.per) for s in samples]
    assert len(keys) == len(set(keys))
    if row.family != "check" and not row.age:
        # The exported figure crosses the row's limit, as the finding says it did.
        assert any(row.crossed(s.value) for s in samples), (row.name, keys)


def test_drift_rows_bound_the_verdict_evaluation_exports() -> None:
    """Column drift is judged against each column's threshold; the rows bound the verdict."""
    status = _statuses_over_every_bound()[0]
    assert status.drift is not None
    by_name = {f.name: f for f in status.drift.features}
    assert by_name["age"].threshold == 0.01 and by_name["income"].threshold == 0.05
    assert all(isinstance(f, FeatureDriftResult) and f.drifted for f in by_name.values())
    assert isinstance(status.drift, DriftStatus) and status.drift.dataset_drift
    assert status.last_check == LastCheck(time=NOW,
                                          duration_seconds=0.1, reference_rows=100,
                                          current_rows=100)


def test_the_readme_names_every_condition_type() -> None:
    """A condition kubectl shows must be one the README explains."""
    from pathlib import Path

    from modelmon.evaluation.conditions import CONDITION_TYPES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = readme.split("Conditions: ", 1)[1].split("lastTransitionTime", 1)[0]
    assert [t for t in CONDITION_TYPES if f"`{t}`" not in listed] == []

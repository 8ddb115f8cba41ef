"""The exporter's series: names, exact label sets, and removal with the monitor."""

from __future__ import annotations

from datetime import UTC, datetime

from modelmon.api.v1alpha1 import (
    ColumnQuality,
    DataQualityStatus,
    DriftStatus,
    FeatureDriftResult,
    Finding,
    LabelsStatus,
    LastCheck,
    ModelMonitorStatus,
    NotChecked,
)
from modelmon.outputs.metrics import Metrics

BASE = {"namespace", "monitor", "model"}
EXPECTED = {
    "modelmon_drift_statistic": BASE | {"feature", "method", "role"},
    "modelmon_drift_p_value": BASE | {"feature", "method", "role"},
    "modelmon_drift_detected": BASE | {"feature", "method", "role"},
    "modelmon_dataset_drift_share": BASE,
    "modelmon_performance_metric": BASE | {"metric"},
    "modelmon_labels_missing_seconds": BASE,
    "modelmon_bound_not_checked": BASE | {"bound", "field"},
    "modelmon_data_quality": BASE | {"column", "check"},
    "modelmon_last_check_timestamp_seconds": BASE,
    "modelmon_monitor_phase": BASE | {"phase"},
    "modelmon_findings": BASE | {"severity"},
    "modelmon_check_duration_seconds_bucket": BASE | {"le"},
    "modelmon_check_duration_seconds_count": BASE,
    "modelmon_check_duration_seconds_sum": BASE,
    "modelmon_check_errors_total": BASE | {"reason"},
}


def status() -> ModelMonitorStatus:
    col = FeatureDriftResult(name="age", kind="numeric", method="ks", statistic=0.3,
                             p_value=0.01, threshold=0.05, drifted=True)
    return ModelMonitorStatus(
        phase="Drifting",
        last_check=LastCheck(time=datetime(2026, 12, 1, tzinfo=UTC), duration_seconds=0.1,
                             reference_rows=10, current_rows=10),
        drift=DriftStatus(share=1.0, dataset_drift=True, drifted=["age"], features=[col],
                          prediction=col.model_copy(update={"name": "p"})),
        performance={"accuracy": 0.8},
        data_quality=DataQualityStatus(columns=[ColumnQuality(name="age",
                                                              missing_fraction=0.0)],
                                       missing_columns=["zip"]),
        findings=[Finding(name="drift.dataset", severity="warning", value=1.0, bound=0.5,
                          message="m")],
        not_checked=[NotChecked(bound="performance.rocAuc", field="spec.performance.metrics[1]",
                                reason="rocAuc is undefined when the window has only one class")],
        labels=LabelsStatus())


def series(metrics: Metrics, monitor: str = "m") -> dict[str, set[frozenset[str]]]:
    out: dict[str, set[frozenset[str]]] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.labels.get("monitor") == monitor and not s.name.endswith("_created"):
                out.setdefault(s.name, set()).add(frozenset(s.labels))
    return out


def test_every_series_has_exactly_its_documented_labels() -> None:
    metrics = Metrics()
    metrics.observe("ns", "m", model="credit", status=status(), seconds=0.2,
                    last_success=1.0, error="SourceUnavailable")
    got = series(metrics)
    assert set(got) == set(EXPECTED)
    for name, label_sets in got.items():
        assert label_sets == {frozenset(EXPECTED[name])}, name


def test_a_missing_column_is_a_series_of_its_own() -> None:
    metrics = Metrics()
    metrics.observe("ns", "m", model="credit", status=status(), seconds=0.2,
                    last_success=1.0, error=None)
    quality = {(s.labels["column"], s.labels["check"]): s.value
               for f in metrics.registry.collect() for s in f.samples
               if s.name == "modelmon_data_quality"}
    assert quality[("zip", "missingColumns")] == 1.0
    assert quality[("age", "missingFraction")] == 0.0


def test_forget_drops_every_series_of_the_monitor_only() -> None:
    metrics = Metrics()
    for name in ("m", "other"):
        metrics.observe("ns", name, model="credit", status=status(), seconds=0.2,
                        last_success=1.0, error="InvalidData")
    metrics.forget("ns", "m")
    assert series(metrics) == {}
    assert set(series(metrics, "other")) == set(EXPECTED)


def test_a_renamed_model_leaves_no_series_behind() -> None:
    metrics = Metrics()
    metrics.observe("ns", "m", model="old", status=status(), seconds=0.2, last_success=1.0,
                    error="InvalidData")
    metrics.observe("ns", "m", model="new", status=status(), seconds=0.2, last_success=1.0,
                    error=None)
    models = {s.labels["model"] for f in metrics.registry.collect() for s in f.samples
              if s.labels.get("monitor") == "m"}
    assert models == {"new"}


def test_restore_exports_the_stored_status_without_counting_a_check() -> None:
    metrics = Metrics()
    metrics.restore("ns", "m", model="credit", status=status(), last_success=123.0)
    got = series(metrics)
    assert "modelmon_last_check_timestamp_seconds" in got
    assert "modelmon_check_duration_seconds_count" not in got
    last = next(s.value for f in metrics.registry.collect() for s in f.samples
                if s.name == "modelmon_last_check_timestamp_seconds")
    assert last == 123.0


def test_unchecked_bounds_and_seconds_without_labels_are_exported() -> None:
    metrics = Metrics()
    since = datetime(2026, 12, 1, tzinfo=UTC)
    missing = status().model_copy(update={
        "labels": LabelsStatus(missing_since=since, missing_seconds=5400.0, reason="none"),
        "not_checked": [NotChecked(bound=f"performance.{m}", field=f"spec.performance.metrics[{i}]",
                                   reason="no labels")
                        for i, m in enumerate(["accuracy", "rocAuc"])]})
    metrics.observe("ns", "m", model="x", status=missing, seconds=0.1, last_success=1.0,
                    error=None)
    values = {(s.name, s.labels.get("bound")): s.value
              for family in metrics.registry.collect() for s in family.samples}
    assert values[("modelmon_labels_missing_seconds", None)] == 5400.0
    assert values[("modelmon_bound_not_checked", "performance.accuracy")] == 1.0
    assert values[("modelmon_bound_not_checked", "performance.rocAuc")] == 1.0
    # Labels back and every bound checked: zero seconds, and no unchecked series left.
    metrics.observe("ns", "m", model="x", status=missing.model_copy(
        update={"labels": LabelsStatus(), "not_checked": []}), seconds=0.1,
        last_success=2.0, error=None)
    names = {(s.name, s.value) for family in metrics.registry.collect()
             for s in family.samples if s.name.startswith(("modelmon_labels", "modelmon_bound"))}
    assert names == {("modelmon_labels_missing_seconds", 0.0)}

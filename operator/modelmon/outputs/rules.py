"""The PrometheusRule generated for a monitor: alerts on the metrics the operator exports.

Last stop on the data line (``outputs``). Thresholds come from the spec and are written into
the PromQL, so a threshold change in git changes the rule; routing labels come from
``alerting.labels``. ``modelmon rules`` prints the same object offline for GitOps repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelmon.api.names import monitor_label, rule_name
from modelmon.api.v1alpha1 import (
    API_VERSION,
    KIND,
    ModelMonitorSpec,
    Severity,
    parse_duration,
)

RULE_API_VERSION = "monitoring.coreos.com/v1"
RULE_KIND = "PrometheusRule"
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelmon"}
#: A monitor is stale when it has had no successful check for this many intervals.
STALE_INTERVALS = 3
#: The staleness expression looks back at least this far, so that a scrape gap alone never
#: makes it true.
STALE_MIN_SECONDS = 60

DQ_CHECKS = (  # spec field -> metric `check` label, comparison
    ("missing_fraction", "missingFraction"),
    ("outlier_fraction", "outlierFraction"),
    ("out_of_range_fraction", "outOfRangeFraction"),
    ("new_categories", "newCategories"),
)


def _q(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(x: float) -> str:
    return repr(float(x))


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    extra_labels: tuple[tuple[str, str], ...] = ()


def _bounded(alert: str, metric: str, sel: str, label: str, name: str, low: float | None,
             high: float | None, severity: Severity, who: str) -> Alert:
    """An alert on one labelled series leaving [low, high]."""
    value = f"max by (namespace, monitor, {label}) ({metric}{{{sel},{label}={_q(name)}}})"
    parts = [f"{value} {op} {_num(b)}" for op, b in (("<", low), (">", high)) if b is not None]
    bounds = " and ".join(f"{w} {b:g}" for w, b in (("at least", low), ("at most", high))
                          if b is not None)
    return Alert(alert, " or ".join(parts), severity, f"{name} of {who} is out of bounds",
                 f"{name} of {who} is {{{{ $value | printf \"%.4g\" }}}}; it should be "
                 f"{bounds}.", ((label, name),))


def alerts(namespace: str, monitor: str, spec: ModelMonitorSpec) -> list[Alert]:
    """The alerts of one monitor, thresholds taken from its spec."""
    sel = f"namespace={_q(namespace)},monitor={_q(monitor)}"
    who = f"{namespace}/{monitor} ({spec.model.name})"
    drift_sev = spec.drift.severity
    share = spec.drift.dataset_drift_share
    out = [
        Alert("ModelDataDrift",
              f"max by (namespace, monitor) (modelmon_dataset_drift_share{{{sel}}}) "
              f">= {_num(share)}",
              drift_sev, f"Data drift in {who}",
              f"{{{{ $value | humanizePercentage }}}} of the features of {who} drifted "
              f"(alert at {share:.0%})."),
        Alert("ModelPredictionDrift",
              f"max by (namespace, monitor, feature) "
              f"(modelmon_drift_detected{{{sel},role=\"prediction\"}}) == 1",
              drift_sev, f"Prediction drift in {who}",
              f"The predictions of {who} ({{{{ $labels.feature }}}}) drifted from the "
              "reference."),
        Alert("ModelTargetDrift",
              f"max by (namespace, monitor, feature) "
              f"(modelmon_drift_detected{{{sel},role=\"target\"}}) == 1",
              drift_sev, f"Target drift in {who}",
              f"The ground truth of {who} ({{{{ $labels.feature }}}}) drifted from the "
              "reference."),
    ]
    # Features whose spec gives a severity of their own alert by themselves, as their
    # findings do.
    for feature, override in sorted(spec.drift.features.items()):
        if override.severity is None:
            continue
        out.append(Alert(
            "ModelFeatureDrift",
            f"max by (namespace, monitor, feature) (modelmon_drift_detected"
            f"{{{sel},role=\"feature\",feature={_q(feature)}}}) == 1",
            override.severity, f"Feature {feature} of {who} drifted",
            f"Feature {feature} of {who} drifted from the reference.",
            (("feature", feature),)))
    for m in spec.performance.metrics:
        out.append(_bounded("ModelPerformanceDegraded", "modelmon_performance_metric",
                            sel, "metric", m.name, m.min, m.max, m.severity, who))
    queries = spec.operational.source.prometheus.queries if (
        spec.operational is not None and spec.operational.source.prometheus is not None) else []
    for q in queries:
        if q.min is not None or q.max is not None:
            out.append(_bounded("ModelOperationalDegraded", "modelmon_operational_metric",
                                sel, "name", q.name, q.min, q.max, q.severity, who))
    for attr, check in DQ_CHECKS:
        bound = getattr(spec.data_quality, attr)
        if bound is None:
            continue
        out.append(Alert(
            "ModelDataQualityDegraded",
            f"max by (namespace, monitor, column, check) "
            f"(modelmon_data_quality{{{sel},check={_q(check)}}}) > {_num(bound.max)}",
            bound.severity, f"Data quality ({check}) of {who} is out of bounds",
            f"Column {{{{ $labels.column }}}} of {who} has {check} "
            f"{{{{ $value | printf \"%.4g\" }}}} (max {bound.max:g}).",
            (("check", check),)))
    schema_checks: tuple[tuple[str, Severity, str], ...] = (
        ("missingColumns", "critical", "is missing from"),
        ("typeChanges", "warning", "changed kind in"))
    for check, severity, what in schema_checks:
        out.append(Alert(
            "ModelDataQualityDegraded",
            f"max by (namespace, monitor, column, check) "
            f"(modelmon_data_quality{{{sel},check={_q(check)}}}) > 0",
            severity, f"Data quality ({check}) of {who} is out of bounds",
            f"Column {{{{ $labels.column }}}} {what} the current window of {who}.",
            (("check", check),)))
    stale = int(parse_duration(spec.schedule.interval).total_seconds() * STALE_INTERVALS)
    # The alert waits `for` after its expression turns true, so the expression turns true
    # `for` earlier: the alert then fires when the last success is three intervals old (or
    # `for` plus a minute, if that is longer), not three intervals plus `for`.
    pending = int(parse_duration(spec.alerting.prometheus_rule.for_).total_seconds())
    early = max(stale - pending, STALE_MIN_SECONDS)
    last = f"modelmon_last_check_timestamp_seconds{{{sel}}}"
    out += [
        # No series for as long (the operator is down, or the monitor never succeeded) is
        # stale too.
        Alert("ModelMonitorStale",
              f"(time() - max by (namespace, monitor) ({last}) > {early}) "
              f"or absent_over_time({last}[{early}s])",
              "warning", f"Monitor {who} has no recent successful check",
              f"No check of {who} succeeded in the last {STALE_INTERVALS} intervals "
              f"({stale}s); is the operator running and the data reachable?"),
        Alert("ModelMonitorCheckFailing",
              f"max by (namespace, monitor) "
              f"(modelmon_monitor_phase{{{sel},phase=\"Failing\"}}) == 1",
              "warning", f"Checks of {who} are failing",
              f"The checks of {who} fail; `kubectl describe modelmonitor -n {namespace} "
              f"{monitor}` shows the reason."),
    ]
    return out


def prometheus_rule(namespace: str, monitor: str, spec: ModelMonitorSpec,
                    uid: str | None = None) -> dict[str, Any]:
    """The PrometheusRule object; with ``uid`` it is owned by the monitor."""
    pr = spec.alerting.prometheus_rule
    routing = dict(sorted(spec.alerting.labels.items()))
    rules = []
    for a in alerts(namespace, monitor, spec):
        labels = {"severity": a.severity, "namespace": namespace, "monitor": monitor,
                  "model": spec.model.name, **dict(a.extra_labels), **routing}
        annotations = {"summary": a.summary, "description": a.description}
        if pr.runbook_url:
            annotations["runbook_url"] = pr.runbook_url
        rules.append({"alert": a.name, "expr": a.expr, "for": pr.for_,
                      "labels": labels, "annotations": annotations})
    metadata: dict[str, Any] = {
        "name": rule_name(monitor),
        "namespace": namespace,
        "labels": {**dict(sorted(pr.labels.items())), **MANAGED_BY,
                   "modelmon.io/monitor": monitor_label(monitor)},
    }
    if uid is not None:
        metadata["ownerReferences"] = [{
            "apiVersion": API_VERSION, "kind": KIND, "name": monitor, "uid": uid,
            "controller": True, "blockOwnerDeletion": False,
        }]
    return {
        "apiVersion": RULE_API_VERSION,
        "kind": RULE_KIND,
        "metadata": metadata,
        "spec": {"groups": [{"name": f"modelmon.{namespace}.{monitor}", "rules": rules}]},
    }

"""The PrometheusRule generated for a monitor: alerts on the metrics the operator exports.

Last stop on the data line (``outputs``). Each alert renders one row of evaluation's
bounds table (``evaluation.bounds``), limits written into the PromQL, so a threshold change
in git changes the rule; routing labels come from ``alerting.labels``. ``modelmon rules``
prints the same object offline for GitOps repositories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelmon.api.names import monitor_label, report_url, rule_name
from modelmon.api.v1alpha1 import (
    API_VERSION,
    KIND,
    ModelMonitorSpec,
    Severity,
    prometheus_duration,
)
from modelmon.evaluation.bounds import Bound, table

RULE_API_VERSION = "monitoring.coreos.com/v1"
RULE_KIND = "PrometheusRule"
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelmon"}
_PLACEHOLDER = re.compile(r"\{(who|namespace|monitor)\}")


def _quoted(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float) -> str:
    """A bound in PromQL: integers as written, other numbers as floats."""
    return str(value) if isinstance(value, int) else repr(float(value))


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    extra_labels: tuple[tuple[str, str], ...] = ()


def _expr(row: Bound, selector: str) -> str:
    """The PromQL that is true while the row's figure crosses one of its limits."""
    def series_of(extra: tuple[tuple[str, str], ...] = ()) -> str:
        matchers = "".join(f",{label}={_quoted(value)}" for label, value in
                           (*row.match, *extra))
        return f"{row.series}{{{selector}{matchers}}}"

    def value(extra: tuple[tuple[str, str], ...] = ()) -> str:
        kept = ", ".join(("namespace", "monitor", *row.per))
        return f"max by ({kept}) ({series_of(extra)})"

    if row.age:  # no series for as long (operator down, never a success) counts too
        (limit,) = row.limits
        return (f"(time() - {value()} {limit.comparison} {_num(limit.value)}) "
                f"or absent_over_time({series_of()}[{_num(limit.value)}s])")
    # A side may compare its own series (an estimate's min the band's upper end).
    return " or ".join(f"{value(lim.labels)} {lim.comparison} {_num(lim.value)}"
                       for lim in row.limits)


def alert(row: Bound, namespace: str, monitor: str, model: str) -> Alert:
    """The alert of one row of the bounds table."""
    said = {"who": f"{namespace}/{monitor} ({model})", "namespace": namespace,
            "monitor": monitor}

    def text(template: str) -> str:
        return _PLACEHOLDER.sub(lambda found: said[found.group(1)], template)

    selector = f"namespace={_quoted(namespace)},monitor={_quoted(monitor)}"
    return Alert(row.alert, _expr(row, selector), row.severity, text(row.summary),
                 text(row.description),
                 tuple((label, value) for label, value in row.match if label in row.per))


def alerts(namespace: str, monitor: str, spec: ModelMonitorSpec) -> list[Alert]:
    """The alerts of one monitor: one per row of its bounds table."""
    return [alert(row, namespace, monitor, spec.model.name) for row in table(spec)]


def prometheus_rule(namespace: str, monitor: str, spec: ModelMonitorSpec,
                    uid: str | None = None, report_base_url: str | None = None
                    ) -> dict[str, Any]:
    """The PrometheusRule object; with ``uid`` it is owned by the monitor. With
    ``report_base_url`` (``modelmon run --report-base-url``) every alert's ``report_url``
    annotation links to the monitor's live report."""
    settings = spec.alerting.prometheus_rule
    routing = dict(sorted(spec.alerting.labels.items()))
    report = report_url(report_base_url, namespace, monitor)
    rules = []
    for one in alerts(namespace, monitor, spec):
        labels = {"severity": one.severity, "namespace": namespace, "monitor": monitor,
                  "model": spec.model.name, **dict(one.extra_labels), **routing}
        annotations = {"summary": one.summary, "description": one.description}
        if settings.runbook_url:
            annotations["runbook_url"] = settings.runbook_url
        if report:
            annotations["report_url"] = report
        rules.append({"alert": one.name, "expr": one.expr,
                      "for": prometheus_duration(settings.for_),
                      "labels": labels, "annotations": annotations})
    metadata: dict[str, Any] = {
        "name": rule_name(monitor),
        "namespace": namespace,
        "labels": {**dict(sorted(settings.labels.items())), **MANAGED_BY,
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

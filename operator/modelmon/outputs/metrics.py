"""Prometheus metrics of every monitor, served on /metrics.

Last stop on the data line (``outputs``). Gauges are read at scrape time from the latest
status of each monitor (a custom collector), so a deleted monitor's series disappear the
moment it is forgotten and label sets stay bounded by the monitors' columns. The duration
histogram and error counter are ordinary prometheus-client metrics whose children are
removed with the monitor.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelmon import __version__
from modelmon.api.v1alpha1 import ESTIMATED_METRICS, MAX_CLASSES, ModelMonitorStatus, Phase

_ESTIMATED_NAMES = frozenset(n for names in ESTIMATED_METRICS.values() for n in names)
PHASES: tuple[Phase, ...] = ("Pending", "Healthy", "Drifting", "Degraded", "Failing")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BASE = ("namespace", "monitor", "model")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the exporter knows of one monitor."""

    model: str
    status: ModelMonitorStatus
    last_success: float | None
    """Unix time of the last successful check."""


class MonitorCollector(Collector):
    """Yields the gauges of every known monitor at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[str, str], Snapshot] = {}

    def set(self, namespace: str, monitor: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots[(namespace, monitor)] = snapshot

    def forget(self, namespace: str, monitor: str) -> None:
        with self._lock:
            self._snapshots.pop((namespace, monitor), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            items = sorted(self._snapshots.items())
        feat = [*BASE, "feature", "method", "role"]
        stat = GaugeMetricFamily("modelmon_drift_statistic",
                                 "Drift statistic or distance of a column in the last check",
                                 labels=feat)
        pval = GaugeMetricFamily("modelmon_drift_p_value",
                                 "p-value of a column's drift test in the last check",
                                 labels=feat)
        effect = GaugeMetricFamily("modelmon_drift_effect_size",
                                   "Effect size of a column's drift test in the last check "
                                   "(numeric: KS distance; categorical: Cramer's V)",
                                   labels=feat)
        detected = GaugeMetricFamily("modelmon_drift_detected",
                                     "1 when a column drifted in the last check", labels=feat)
        share = GaugeMetricFamily("modelmon_dataset_drift_share",
                                  "Share of features that drifted in the last check",
                                  labels=list(BASE))
        perf = GaugeMetricFamily("modelmon_performance_metric",
                                 "Performance metric in the last check",
                                 labels=[*BASE, "metric"])
        estimated = GaugeMetricFamily(
            "modelmon_estimated_performance_metric",
            "Performance estimated without labels in the last check: the estimate "
            "(bound=value) and the ends of its sampling band (bound=lower, bound=upper)",
            labels=[*BASE, "metric", "bound"])
        confidence = GaugeMetricFamily(
            "modelmon_confidence",
            "Confidence figure of a classifier in the last check (meanConfidence: mean top "
            "class probability; lowConfidenceShare: share of rows below the cutoff)",
            labels=[*BASE, "figure"])
        class_share = GaugeMetricFamily(
            "modelmon_confidence_class_share",
            "Share of rows predicted as each class (top probability) in the last check",
            labels=[*BASE, "class"])
        operational = GaugeMetricFamily("modelmon_operational_metric",
                                        "Operational figure from Prometheus in the last check",
                                        labels=[*BASE, "name"])
        quality = GaugeMetricFamily("modelmon_data_quality",
                                    "Data-quality figure of a column in the last check",
                                    labels=[*BASE, "column", "check"])
        labels_missing = GaugeMetricFamily(
            "modelmon_labels_missing_seconds",
            "Seconds the current window had been without labels at the last check (0 while "
            "labels arrive)", labels=list(BASE))
        not_checked = GaugeMetricFamily(
            "modelmon_bound_not_checked",
            "1 for each bound the last check could not judge (its figure is missing)",
            labels=[*BASE, "bound", "field"])
        last = GaugeMetricFamily("modelmon_last_check_timestamp_seconds",
                                 "Unix time of the last successful check", labels=list(BASE))
        phase = GaugeMetricFamily("modelmon_monitor_phase",
                                  "1 for the monitor's current phase, 0 for the others",
                                  labels=[*BASE, "phase"])
        findings = GaugeMetricFamily("modelmon_findings",
                                     "Findings of the last check by severity",
                                     labels=[*BASE, "severity"])
        for (namespace, name), snap in items:
            base = [namespace, name, snap.model]
            status = snap.status
            for one in PHASES:
                phase.add_metric([*base, one], 1.0 if status.phase == one else 0.0)
            if snap.last_success is not None:
                last.add_metric(base, snap.last_success)
            for sev in ("warning", "critical"):
                findings.add_metric([*base, sev],
                                    float(sum(f.severity == sev for f in status.findings)))
            if status.drift is not None:
                share.add_metric(base, status.drift.share)
                cols = [("feature", f) for f in status.drift.features]
                cols += [(role, f) for role, f in (("prediction", status.drift.prediction),
                                                    ("target", status.drift.target)) if f]
                for role, column in cols:
                    labels = [*base, column.name, column.method, role]
                    if column.statistic is not None:
                        stat.add_metric(labels, column.statistic)
                    if column.p_value is not None:
                        pval.add_metric(labels, column.p_value)
                    if column.effect_size is not None:
                        effect.add_metric(labels, column.effect_size)
                    detected.add_metric(labels, 1.0 if column.drifted else 0.0)
            for metric, number in status.performance.items():
                perf.add_metric([*base, metric], number)
            # Only the estimator's metric names become labels, also for statuses read
            # back from the cluster.
            for metric, estimate in status.estimated_performance.items():
                if metric not in _ESTIMATED_NAMES:
                    continue
                ends: tuple[tuple[str, float | None], ...] = (
                    ("value", estimate.value), ("lower", estimate.lower),
                    ("upper", estimate.upper))
                for end, amount in ends:
                    if amount is not None:
                        estimated.add_metric([*base, metric, end], amount)
            if status.labels is not None:
                labels_missing.add_metric(base, status.labels.missing_seconds)
            for unchecked in status.not_checked:
                not_checked.add_metric([*base, unchecked.bound, unchecked.field], 1.0)
            for figure, number in status.operational.items():
                operational.add_metric([*base, figure], number)
            if status.confidence is not None:
                for figure, value in (
                        ("meanConfidence", status.confidence.mean_confidence),
                        ("lowConfidenceShare", status.confidence.low_confidence_share)):
                    if value is not None:
                        confidence.add_metric([*base, figure], value)
                # Class labels come from the spec (columns.classProbabilities: at most
                # MAX_CLASSES, no control characters) or are positive/negative, never
                # from the data; the cap holds for statuses read back from the cluster.
                for label, share_of in list(status.confidence.class_shares.items())[
                        :MAX_CLASSES]:
                    class_share.add_metric([*base, label], share_of)
            if status.data_quality is not None:
                for figured in status.data_quality.columns:
                    figures: tuple[tuple[str, float | int | None], ...] = (
                        ("missingFraction", figured.missing_fraction),
                        ("outlierFraction", figured.outlier_fraction),
                        ("outOfRangeFraction", figured.out_of_range_fraction),
                        ("newCategories", figured.new_categories))
                    for check, value in figures:
                        if value is not None:
                            quality.add_metric([*base, figured.name, check], float(value))
                # Columns the window lacks, or whose kind changed: 1 while that lasts.
                for absent in status.data_quality.missing_columns:
                    quality.add_metric([*base, absent, "missingColumns"], 1.0)
                for change in status.data_quality.type_changes:
                    quality.add_metric([*base, change.name, "typeChanges"], 1.0)
        yield from (stat, pval, effect, detected, share, perf, estimated, labels_missing,
                    not_checked, confidence, class_share, operational, quality, last, phase,
                    findings)


class Metrics:
    """The operator's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.monitors = MonitorCollector()
        self.registry.register(self.monitors)
        self.duration = Histogram(
            "modelmon_check_duration_seconds", "Wall time of a check",
            list(BASE), buckets=DURATION_BUCKETS, registry=self.registry)
        self.errors = Counter(
            "modelmon_check_errors", "Checks that failed, by reason",
            [*BASE, "reason"], registry=self.registry)
        self.lateness = Histogram(
            "modelmon_schedule_lateness_seconds",
            "How long after its due time a scheduled check started computing (all monitors)",
            buckets=LATENESS_BUCKETS, registry=self.registry)
        self.loop_lag = Histogram(
            "modelmon_event_loop_heartbeat_delay_seconds",
            "How late each once-a-second heartbeat of the operator's event loop ran",
            buckets=LAG_BUCKETS, registry=self.registry)
        self.requests = Counter(
            "modelmon_kube_requests",
            "Requests the workers sent to the Kubernetes API (kopf's watches not included), "
            "by HTTP method", ["method"], registry=self.registry)
        self.lease_renew_failures = Counter(
            "modelmon_lease_renew_failures",
            "Rounds in which this replica could not renew its membership Lease (or list "
            "the others'); with replication only", registry=self.registry)
        self.handovers = Counter(
            "modelmon_handovers",
            "Monitors this replica took over from another or released to one "
            "(direction: taken, released); with replication only", ["direction"],
            registry=self.registry)
        self.build = Info(
            "modelmon_build", "The running modelmon: its version and Python's (always 1)",
            registry=self.registry)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self._models: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], set[str]] = {}

    def restore(self, namespace: str, monitor: str, *, model: str,
                status: ModelMonitorStatus, last_success: float | None) -> None:
        """Export a monitor's stored status before its first check under this process, so
        that a restarted operator neither drops its series (false stale alerts, drift
        alerts resolving and firing again) nor counts a check that did not run."""
        self.monitors.set(namespace, monitor, Snapshot(model, status, last_success))

    def observe(self, namespace: str, monitor: str, *, model: str,
                status: ModelMonitorStatus, seconds: float, last_success: float | None,
                error: str | None) -> None:
        """Record one check."""
        key = (namespace, monitor)
        if self._models.get(key, model) != model:  # renamed model: drop the old children
            self._drop_children(namespace, monitor)
        self._models[key] = model
        self.monitors.set(namespace, monitor, Snapshot(model, status, last_success))
        self.duration.labels(namespace, monitor, model).observe(seconds)
        if error is not None:
            self._reasons.setdefault(key, set()).add(error)
            self.errors.labels(namespace, monitor, model, error).inc()

    def _drop_children(self, namespace: str, monitor: str) -> None:
        model = self._models.pop((namespace, monitor), None)
        reasons = self._reasons.pop((namespace, monitor), set())
        if model is None:
            return
        with contextlib.suppress(KeyError):
            self.duration.remove(namespace, monitor, model)
        for reason in reasons:
            with contextlib.suppress(KeyError):
                self.errors.remove(namespace, monitor, model, reason)

    def forget(self, namespace: str, monitor: str) -> None:
        """Drop every series of a deleted monitor."""
        self.monitors.forget(namespace, monitor)
        self._drop_children(namespace, monitor)

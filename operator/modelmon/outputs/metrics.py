"""Prometheus metrics of every monitor, served on /metrics.

Last stop on the data line (``outputs``). Gauges are read at scrape time from the latest
status of each monitor (a custom collector), so a deleted monitor's series disappear the
moment it is forgotten and label sets stay bounded by the monitors' columns. The duration
histogram and error counter are ordinary prometheus-client metrics whose children are
removed with the monitor.
"""

from __future__ import annotations

import contextlib
import gzip
import platform
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modelmon import __version__
from modelmon.api.v1alpha1 import ESTIMATED_METRICS, MAX_CLASSES, ModelMonitorStatus, Phase

_ESTIMATED_NAMES = frozenset(n for names in ESTIMATED_METRICS.values() for n in names)
PHASES: tuple[Phase, ...] = ("Pending", "Healthy", "Drifting", "Degraded", "Failing")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BASE = ("namespace", "monitor", "model")
EOF = b"# EOF\n"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the exporter knows of one monitor."""

    model: str
    status: ModelMonitorStatus
    last_success: float | None
    """Unix time of the last successful check."""


#: The per-monitor gauge families: name, help, labels after ``BASE``.
FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("modelmon_drift_statistic", "Drift statistic or distance of a column in the last check",
     ("feature", "method", "role")),
    ("modelmon_drift_p_value", "p-value of a column's drift test in the last check",
     ("feature", "method", "role")),
    ("modelmon_drift_effect_size", "Effect size of a column's drift test in the last check "
     "(numeric: KS distance; categorical: Cramer's V)", ("feature", "method", "role")),
    ("modelmon_drift_detected", "1 when a column drifted in the last check",
     ("feature", "method", "role")),
    ("modelmon_dataset_drift_share", "Share of features that drifted in the last check", ()),
    ("modelmon_performance_metric", "Performance metric in the last check", ("metric",)),
    ("modelmon_estimated_performance_metric",
     "Performance estimated without labels in the last check: the estimate "
     "(bound=value) and the ends of its sampling band (bound=lower, bound=upper)",
     ("metric", "bound")),
    ("modelmon_labels_missing_seconds",
     "Seconds the current window had been without labels at the last check (0 while "
     "labels arrive)", ()),
    ("modelmon_bound_not_checked",
     "1 for each bound the last check could not judge (its figure is missing)",
     ("bound", "field")),
    ("modelmon_confidence",
     "Confidence figure of a classifier in the last check (meanConfidence: mean top "
     "class probability; lowConfidenceShare: share of rows below the cutoff)", ("figure",)),
    ("modelmon_confidence_class_share",
     "Share of rows predicted as each class (top probability) in the last check",
     ("class",)),
    ("modelmon_operational_metric", "Operational figure from Prometheus in the last check",
     ("name",)),
    ("modelmon_data_quality", "Data-quality figure of a column in the last check",
     ("column", "check")),
    ("modelmon_last_check_timestamp_seconds", "Unix time of the last successful check", ()),
    ("modelmon_monitor_phase", "1 for the monitor's current phase, 0 for the others",
     ("phase",)),
    ("modelmon_findings", "Findings of the last check by severity", ("severity",)),
)
(STAT, PVAL, EFFECT, DETECTED, SHARE, PERF, ESTIMATED, LABELS_MISSING, NOT_CHECKED,
 CONFIDENCE, CLASS_SHARE, OPERATIONAL, QUALITY, LAST, PHASE, FINDINGS) = range(len(FAMILIES))

Series = tuple[int, tuple[str, ...], float]
"""One sample of a monitor: the family's index in ``FAMILIES``, its labels after ``BASE``,
its value."""

Prefixes = dict[tuple[int, tuple[str, ...]], str]
#: A sample's value as prometheus_client writes it (Go's float formatting).
_number: Callable[[float], str] = floatToGoString


def monitor_series(snap: Snapshot) -> Iterator[Series]:
    """Every gauge sample of one monitor, family by family in no particular order."""
    status = snap.status
    for one in PHASES:
        yield PHASE, (one,), 1.0 if status.phase == one else 0.0
    if snap.last_success is not None:
        yield LAST, (), snap.last_success
    for sev in ("warning", "critical"):
        yield FINDINGS, (sev,), float(sum(f.severity == sev for f in status.findings))
    if status.drift is not None:
        yield SHARE, (), status.drift.share
        cols = [("feature", f) for f in status.drift.features]
        cols += [(role, f) for role, f in (("prediction", status.drift.prediction),
                                            ("target", status.drift.target)) if f]
        for role, column in cols:
            labels = (column.name, column.method, role)
            if column.statistic is not None:
                yield STAT, labels, column.statistic
            if column.p_value is not None:
                yield PVAL, labels, column.p_value
            if column.effect_size is not None:
                yield EFFECT, labels, column.effect_size
            yield DETECTED, labels, 1.0 if column.drifted else 0.0
    for metric, number in status.performance.items():
        yield PERF, (metric,), number
    # Only the estimator's metric names become labels, also for statuses read back from the
    # cluster.
    for metric, estimate in status.estimated_performance.items():
        if metric not in _ESTIMATED_NAMES:
            continue
        ends: tuple[tuple[str, float | None], ...] = (
            ("value", estimate.value), ("lower", estimate.lower), ("upper", estimate.upper))
        for end, amount in ends:
            if amount is not None:
                yield ESTIMATED, (metric, end), amount
    if status.labels is not None:
        yield LABELS_MISSING, (), status.labels.missing_seconds
    for unchecked in status.not_checked:
        yield NOT_CHECKED, (unchecked.bound, unchecked.field), 1.0
    for figure, number in status.operational.items():
        yield OPERATIONAL, (figure,), number
    if status.confidence is not None:
        for figure, value in (
                ("meanConfidence", status.confidence.mean_confidence),
                ("lowConfidenceShare", status.confidence.low_confidence_share)):
            if value is not None:
                yield CONFIDENCE, (figure,), value
        # Class labels come from the spec (columns.classProbabilities: at most MAX_CLASSES,
        # no control characters) or are positive/negative, never from the data; the cap
        # holds for statuses read back from the cluster.
        for label, share_of in list(status.confidence.class_shares.items())[:MAX_CLASSES]:
            yield CLASS_SHARE, (label,), share_of
    if status.data_quality is not None:
        for figured in status.data_quality.columns:
            figures: tuple[tuple[str, float | int | None], ...] = (
                ("missingFraction", figured.missing_fraction),
                ("outlierFraction", figured.outlier_fraction),
                ("outOfRangeFraction", figured.out_of_range_fraction),
                ("newCategories", figured.new_categories))
            for check, value in figures:
                if value is not None:
                    yield QUALITY, (figured.name, check), float(value)
        # Columns the window lacks, or whose kind changed: 1 while that lasts.
        for absent in status.data_quality.missing_columns:
            yield QUALITY, (absent, "missingColumns"), 1.0
        for change in status.data_quality.type_changes:
            yield QUALITY, (change.name, "typeChanges"), 1.0


def _label_value(value: str) -> str:
    """A label value as the exposition formats escape it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _prefix(index: int, values: tuple[str, ...]) -> str:
    """A sample line up to its value: the family's name and its labels sorted by name, as
    prometheus_client writes them."""
    name, _help, extra = FAMILIES[index]
    pairs = sorted(zip((*BASE, *extra), values, strict=True))
    inner = ",".join(f'{label}="{_label_value(value)}"' for label, value in pairs)
    return f"{name}{{{inner}}} "


class MonitorCollector(Collector):
    """Yields the gauges of every known monitor at scrape time.

    ``collect`` builds prometheus_client's families (any registry can read them); /metrics
    uses ``render`` instead, the same samples as text, each monitor's lines kept until its
    next snapshot: a scrape formats only the monitors checked since the one before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[str, str], Snapshot] = {}
        self._rendered: dict[tuple[str, str], tuple[Snapshot, tuple[str, ...]]] = {}
        self._prefixes: dict[tuple[str, str], tuple[tuple[str, ...], Prefixes]] = {}
        """Each monitor's sample lines up to the value, by family and labels (the same from
        one check to the next), with the base labels they were made for."""

    def set(self, namespace: str, monitor: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots[(namespace, monitor)] = snapshot

    def forget(self, namespace: str, monitor: str) -> None:
        with self._lock:
            self._snapshots.pop((namespace, monitor), None)
            self._rendered.pop((namespace, monitor), None)
            self._prefixes.pop((namespace, monitor), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            items = sorted(self._snapshots.items())
        families = [GaugeMetricFamily(name, documentation, labels=[*BASE, *extra])
                    for name, documentation, extra in FAMILIES]
        for (namespace, name), snap in items:
            base = [namespace, name, snap.model]
            for index, labels, value in monitor_series(snap):
                families[index].add_metric([*base, *labels], value)
        yield from families

    def _lines(self, key: tuple[str, str], snap: Snapshot) -> tuple[str, ...]:
        """The monitor's sample lines, one string per family (cached per snapshot)."""
        cached = self._rendered.get(key)
        if cached is not None and cached[0] is snap:
            return cached[1]
        per: list[list[str]] = [[] for _ in FAMILIES]
        base = (key[0], key[1], snap.model)
        made_for, known = self._prefixes.get(key, (base, {}))
        if made_for != base:  # the model was renamed
            known = {}
        prefixes: Prefixes = {}
        for index, labels, value in monitor_series(snap):
            found = known.get((index, labels))
            if found is None:
                found = _prefix(index, (*base, *labels))
            prefixes[(index, labels)] = found
            per[index].append(f"{found}{_number(value)}\n")
        lines = tuple("".join(one) for one in per)
        with self._lock:
            if self._snapshots.get(key) is snap:
                self._rendered[key] = (snap, lines)
                self._prefixes[key] = (base, prefixes)
        return lines

    def render(self, openmetrics: bool = False) -> str:
        """The families as exposition text (Prometheus text 0.0.4, or OpenMetrics: the same
        gauge lines, with its escaping of help texts)."""
        with self._lock:
            items = sorted(self._snapshots.items())
        rendered = [self._lines(key, snap) for key, snap in items]
        out: list[str] = []
        for index, (name, documentation, _extra) in enumerate(FAMILIES):
            text = documentation.replace("\\", r"\\").replace("\n", r"\n")
            if openmetrics:
                text = text.replace('"', r'\"')
            out.append(f"# HELP {name} {text}\n# TYPE {name} gauge\n")
            out.extend(lines[index] for lines in rendered)
        return "".join(out)


class Metrics:
    """The operator's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        """Every metric (prometheus_client's view of them all)."""
        self.monitors = MonitorCollector()
        self.registry.register(self.monitors)
        self.served = CollectorRegistry()
        """Every metric but the monitors' gauges, which /metrics renders itself
        (``exposition``)."""
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
        for metric in (self.duration, self.errors, self.lateness, self.loop_lag,
                       self.requests, self.lease_renew_failures, self.handovers, self.build):
            self.served.register(metric)
        self._models: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], set[str]] = {}

    def register(self, collector: Collector) -> None:
        """Export one more collector (the operator's own gauges)."""
        self.registry.register(collector)
        self.served.register(collector)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The /metrics body and its content type for an ``Accept`` header: what
        prometheus_client writes for the registry, the monitors' gauges from their cached
        lines (``MonitorCollector.render``)."""
        encoder, content_type = choose_encoder(accept or "")
        openmetrics = content_type.startswith("application/openmetrics-text")
        body = encoder(self.served)
        gauges = self.monitors.render(openmetrics).encode()
        if openmetrics and body.endswith(EOF):
            return body[:-len(EOF)] + gauges + EOF, content_type
        return body + gauges, content_type

    def app(self) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
        """The /metrics WSGI app: ``exposition`` for a GET, prometheus_client's own app for
        anything else (OPTIONS, ``name[]`` filters)."""
        fallback = make_wsgi_app(self.registry)

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            if (environ.get("REQUEST_METHOD") != "GET" or "name[]" in parse_qs(
                    environ.get("QUERY_STRING", "")) or environ.get("PATH_INFO") == "/favicon.ico"):
                return fallback(environ, start_response)  # type: ignore[no-any-return]
            output, content_type = self.exposition(environ.get("HTTP_ACCEPT"))
            headers = [("Content-Type", content_type)]
            if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
                output = gzip.compress(output, compresslevel=6)  # 9: 5x the CPU, ~same size
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", headers)
            return [output]

        return serve

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


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape."""


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def start_metrics_server(metrics: Metrics, port: int, addr: str) -> None:
    """Serve /metrics (``Metrics.app``) from a daemon thread; OSError when the port cannot
    be bound."""
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (_Threading,), {"address_family": family})
    server: WSGIServer = make_server(addr, port, metrics.app(), server_class, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="modelmon-metrics",
                     daemon=True).start()

"""``modelmon run``: the operator process.

Wires the pieces together: logging, the /metrics and /healthz + /readyz servers, the fleet
of workers, and kopf watching ModelMonitors in the chosen namespaces.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelmon import __version__
from modelmon.api.logs import fields, record_fields
from modelmon.api.policy import Policy, default_reference_cache_bytes
from modelmon.health import Health, health_server
from modelmon.outputs.kube import Reachability
from modelmon.outputs.report.live import LiveReports
from modelmon.worker import RULES_RESYNC_SECONDS, Fleet

if TYPE_CHECKING:
    from modelmon.membership import Membership
    from modelmon.outputs.kube import Kube
    from modelmon.outputs.metrics import Metrics

log = logging.getLogger("modelmon")

#: Where /metrics is served by default: not 9090, Prometheus's own port (an operator run
#: beside a local Prometheus, or a sidecar of one, would collide with it); the exporter
#: range 9100-9999 is allocated to other exporters.
METRICS_PORT = 8000

@dataclass(frozen=True)
class Options:
    namespaces: list[str] = field(default_factory=list)
    metrics_port: int = METRICS_PORT
    health_port: int = 8080
    log_format: str = "json"
    log_level: str = "INFO"
    workers: int = 2
    kubeconfig: str | None = None
    bind: str = "0.0.0.0"
    rules_resync_seconds: float = RULES_RESYNC_SECONDS
    policy: Policy = field(default_factory=Policy.operator)
    """The administrator's bounds on every monitor (local paths, egress, budgets)."""
    report_port: int = 0
    """Port of the live report (/monitors); 0: off."""
    report_base_url: str | None = None
    """Where users reach the live report; notifications and rules link to it."""
    replication: bool = False
    """Share the monitors with the other replicas through membership Leases."""
    lease_namespace: str | None = None
    """Where the Leases live; None: the pod's namespace, else ``default``."""
    identity: str | None = None
    """This replica's id; None: the pod's name, else host name and process id."""
    lease_duration_seconds: float = 20.0
    """The Leases' duration; renewed every third of it, checks stop a quarter before."""
    reference_cache_bytes: int = field(default_factory=default_reference_cache_bytes)
    """Bytes of fitted references kept between checks; default: a quarter of the
    container's memory limit, else 512 MiB."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and kopf's object context."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)
        if isinstance(k8s, dict):
            out["object"] = {k: k8s.get(k) for k in ("namespace", "name") if k8s.get(k)}
        for key, value in record_fields(record).items():
            out.setdefault(key, value)  # never over the line's own keys
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


class KopfConnectionRetries(logging.Filter):
    """kopf logs every failed attempt of its own requests (the watch's) as an error; when
    the API server cannot be reached that is one line per attempt for the whole outage.
    Those attempts feed ``reachability`` instead, which logs the outage once. The last
    attempt's "escalating" line goes the same way: kopf's watch absorbs connection errors
    and reconnects. An HTTP 429 that kopf will retry (the API server's "storage is
    (re)initializing" right after a CRD is installed, or its rate limit) is the server asking
    for a retry, not an error: dropped too, unless kopf gives up on it. kopf's other failures
    (an HTTP 403 or 5xx) are still logged."""

    NO_ANSWER = re.compile(r"Request attempt \S+ failed; (will retry|escalating): "
                           r".* -> (\w+)\(")
    KINDS = frozenset({"ClientConnectorError", "ClientConnectionError", "ClientOSError",
                       "ServerDisconnectedError", "ServerTimeoutError", "TimeoutError",
                       "ClientConnectorCertificateError"})

    def __init__(self, reachability: Reachability) -> None:
        super().__init__()
        self.reachability = reachability

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kopf"):
            return True
        found = self.NO_ANSWER.search(record.getMessage())
        if found is None:
            return True
        outcome, kind = found.groups()
        if kind == "APITooManyRequestsError":
            return outcome != "will retry"
        if kind not in self.KINDS:
            return True
        self.reachability.failed(ConnectionError(f"kopf's watch: {kind}"))
        return False


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kopf and the API client are chatty at INFO about every watch reconnect.
    logging.getLogger("kopf").setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("urllib3").setLevel(logging.WARNING)


class OperatorGauges(Collector):
    """Event-loop lag (from the heartbeat), the number of monitors this replica checks, what
    its reference cache holds and, with replication, the live members it sees."""

    def __init__(self, health: Health, fleet: Fleet) -> None:
        self.health = health
        self.fleet = fleet

    def collect(self) -> Any:
        lag_gauge = GaugeMetricFamily("modelmon_event_loop_lag_seconds",
                                      "How late the operator's event loop ran its last heartbeat")
        lag_gauge.add_metric([], self.health.lag)
        yield lag_gauge
        monitors_gauge = GaugeMetricFamily(
            "modelmon_monitors", "ModelMonitors this replica checks (with replication, its "
            "share; without, every one it watches)")
        monitors_gauge.add_metric([], float(self.fleet.owned))
        yield monitors_gauge
        cache = self.fleet.references
        held = GaugeMetricFamily("modelmon_reference_cache_bytes",
                                 "Estimated bytes of the fitted references kept between checks "
                                 "(at most --reference-cache-bytes)")
        held.add_metric([], float(cache.bytes))
        yield held
        entries = GaugeMetricFamily("modelmon_reference_cache_entries",
                                    "Fitted references kept between checks")
        entries.add_metric([], float(len(cache)))
        yield entries
        membership = self.fleet.membership
        if membership is not None:
            members = GaugeMetricFamily("modelmon_replica_members",
                                        "Live replicas this one sees (itself included)")
            members.add_metric([], float(len(membership.members)))
            yield members


def listen(what: str, flag: str, env: str, port: int, start: Callable[[], object]) -> None:
    """Start a server; a port that is taken (or refused) is one error line and exit 1,
    not a traceback."""
    try:
        start()
    except OSError as exc:
        problem = ("is already in use" if exc.errno == errno.EADDRINUSE
                   else f"cannot be opened: {exc.strerror or exc}")
        log.error("the %s port %d %s; choose another with %s or %s", what, port, problem,
                  flag, env, extra=fields("startup", server=what, port=port,
                                          reason="PortUnavailable"))
        logging.shutdown()
        raise SystemExit(1) from None


def start_reports(opts: Options) -> LiveReports | None:
    """The live report's store and server when ``--report-port`` is set; a port that
    cannot be bound is one error line and exit 1 (``listen``)."""
    if opts.report_base_url and not opts.report_port:
        log.warning("--report-base-url is set but the report server is off "
                    "(--report-port): the links it puts in notifications and alerts lead "
                    "nowhere unless another operator serves them")
    if not opts.report_port:
        return None
    from modelmon.outputs.report.live import LiveReports
    from modelmon.outputs.report.server import ReportServer

    reports = LiveReports()
    listen("report", "--report-port", "MODELMON_REPORT_PORT", opts.report_port,
           ReportServer(reports, opts.bind, opts.report_port).start)
    log.info("live report on :%d/monitors", opts.report_port)
    return reports


def membership(opts: Options, kube: Kube, metrics: Metrics) -> Membership | None:
    """The replica's membership when ``--replication`` is on."""
    if not opts.replication:
        return None
    from modelmon.membership import Membership, default_identity, default_namespace, group_of

    member = Membership(kube, identity=opts.identity or default_identity(),
                        namespace=opts.lease_namespace or default_namespace(),
                        group=group_of(opts.namespaces),
                        duration=max(1, round(opts.lease_duration_seconds)),
                        on_renew_failure=metrics.lease_renew_failures.inc)
    log.info("replication on: replica %s, Lease %s/%s (group %s, %d s, renewed every "
             "%.0f s)", member.identity, member.namespace, member.name, member.group,
             member.duration, member.renew_seconds,
             extra=fields("startup", replica=member.identity, lease_namespace=member.namespace,
                          lease=member.name, group=member.group))
    return member


def run(opts: Options) -> NoReturn:
    """Run the operator until SIGINT/SIGTERM."""
    from modelmon import handlers  # noqa: F401 - registers the handlers
    from modelmon.handlers.lifecycle import watch
    from modelmon.outputs.kube import Kube, load_config
    from modelmon.outputs.metrics import Metrics, start_metrics_server

    setup_logging(opts.log_format, opts.log_level)
    reports = start_reports(opts)
    metrics = Metrics()
    kube = Kube(load_config(opts.kubeconfig),
                on_request=lambda method: metrics.requests.labels(method).inc())
    fleet = Fleet(kube, metrics, workers=opts.workers,
                  rules_resync_seconds=opts.rules_resync_seconds, policy=opts.policy,
                  reports=reports, report_base_url=opts.report_base_url,
                  membership=membership(opts, kube, metrics),
                  reference_cache_bytes=opts.reference_cache_bytes)
    health = Health(on_lag=metrics.loop_lag.observe)
    metrics.register(OperatorGauges(health, fleet))
    ready = threading.Event()
    listen("metrics", "--metrics-port", "MODELMON_METRICS_PORT", opts.metrics_port,
           lambda: start_metrics_server(metrics, opts.metrics_port, opts.bind))
    listen("health", "--health-port", "MODELMON_HEALTH_PORT", opts.health_port,
           lambda: health_server(opts.bind, opts.health_port, health, ready,
                                 lambda: kube.reachability.reachable))
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfConnectionRetries(kube.reachability))
    scope = ", ".join(opts.namespaces) or "all namespaces"
    log.info("modelmon operator %s starting: watching %s; metrics on :%d, health on :%d, "
             "%d check workers", __version__, scope, opts.metrics_port, opts.health_port,
             opts.workers, extra=fields("startup", version=__version__,
                                        namespaces=list(opts.namespaces),
                                        metrics_port=opts.metrics_port,
                                        health_port=opts.health_port,
                                        workers=opts.workers))
    watch(fleet, health, opts.kubeconfig, list(opts.namespaces), ready)
    log.info("modelmon operator stopped")
    logging.shutdown()
    # A check blocked in a slow source must not hold the exit: the interpreter would join
    # its pool thread at exit. Everything worth keeping is already in the API server.
    os._exit(0)

"""The operator at scale: many ModelMonitors on one operator process, real control plane.

``python benchmarks/scale.py`` (also run by ``make bench``) starts a local control plane with
``hack/cluster.sh`` (or uses ``--kubeconfig``), installs the CRDs, starts ``modelmon run`` as
a separate process watching all namespaces, creates ``--monitors`` copies of the
breast-cancer example (a small local CSV source) at ``--interval``, waits until every monitor
has been checked once and for one more interval, then measures for ``--minutes``:

- checks per minute, from the operator's ``modelmon_check_duration_seconds`` counts;
- schedule lateness p50 and p99, from ``modelmon_schedule_lateness_seconds`` (the delta of
  its buckets over the window, interpolated within a bucket as PromQL's
  ``histogram_quantile`` does; the bucket's upper bound is reported as well);
- the operator's RSS (``/proc``, sampled every second, and its high-water mark), CPU;
- event-loop lag (``modelmon_event_loop_lag_seconds``, sampled every second);
- API requests per check (``modelmon_kube_requests_total``, every request the workers send)
  and status patches per check as the API server counts them
  (``apiserver_request_total`` for PATCH on ``modelmonitors/status``).

``--replicas 3`` (``make bench-replicas``) starts three ``modelmon run --replication``
processes instead, which share the monitors through their Leases, and measures the same
steady window for each (lateness over all of them, RSS, CPU and checks per replica, the
split against an even share); then it kills one with SIGKILL and times the takeover: until a
survivor has checked each monitor the killed replica checked last (the bound is the lease
duration plus an interval), how late those checks were against the due time it left, and
every monitor checked twice within an interval, from the replicas' JSON logs.

It prints one JSON object; ``benchmarks/run.py`` puts it into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLUSTER_SH = REPO / "hack" / "cluster.sh"
EXAMPLE = REPO / "examples" / "breast-cancer"
MIB = 1024 * 1024
GROUP, VERSION, PLURAL = "modelmon.io", "v1alpha1", "modelmonitors"

#: The goals of issue 8, part 4.
GOAL_P99_LATENESS = 10.0
GOAL_RSS_MIB = 1024.0
GOAL_PATCHES_PER_CHECK = 1.0
#: Requests the operator can have in flight (its API thread pool): a check whose patch was
#: sent before the window closed may be counted after it.
IN_FLIGHT = 4


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


# The cluster ---------------------------------------------------------------------------

@contextmanager
def cluster(kubeconfig: Path | None, gogc: int | None = None) -> Iterator[Path]:
    """A kubeconfig: the given one, or a control plane of our own for the run (its Go
    processes with ``GOGC=gogc`` when given)."""
    if kubeconfig is not None:
        yield kubeconfig
        return
    state = Path(tempfile.mkdtemp(prefix="modelmon-cluster-scale-"))
    env = {**os.environ, "MODELMON_CLUSTER_DIR": str(state)}
    if gogc is not None:
        env["GOGC"] = str(gogc)
    log(f"starting a control plane in {state}")
    out = subprocess.run([str(CLUSTER_SH), "up"], env=env, stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    try:
        yield state / "admin.kubeconfig"
    finally:
        if "export KUBECONFIG" in out:
            subprocess.run([str(CLUSTER_SH), "down"], env=env, check=False,
                           stdout=subprocess.DEVNULL)


def kubectl(kubeconfig: Path, *args: str) -> str:
    binary = subprocess.run([str(CLUSTER_SH), "bin", "kubectl"], stdout=subprocess.PIPE,
                            text=True, check=True).stdout.strip()
    return subprocess.run([binary, "--kubeconfig", str(kubeconfig), *args],
                          stdout=subprocess.PIPE, text=True, check=True).stdout


def install_crds(kubeconfig: Path) -> None:
    rule_crd = subprocess.run([str(CLUSTER_SH), "prometheusrule-crd"], stdout=subprocess.PIPE,
                              text=True, check=True).stdout.strip()
    for path in [*sorted((REPO / "crds").glob("*.yaml")), Path(rule_crd)]:
        kubectl(kubeconfig, "apply", "--server-side", "-f", str(path))
    for crd in ("modelmonitors.modelmon.io", "prometheusrules.monitoring.coreos.com"):
        kubectl(kubeconfig, "wait", "--for=condition=Established", f"crd/{crd}",
                "--timeout=60s")


# The monitors --------------------------------------------------------------------------

def monitor(name: str, data: Path, interval: str) -> dict[str, Any]:
    """The breast-cancer example, its CSVs at absolute paths, every ``interval``."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    doc["metadata"] = {"name": name, "labels": {"modelmon.io/benchmark": "scale"}}
    spec = doc["spec"]
    spec["schedule"] = {"interval": interval}
    spec["reference"]["source"]["url"] = str(data / "reference.csv")
    spec["current"]["source"]["url"] = str(data / "current.csv")
    spec["alerting"] = {"labels": {"team": "bench"}}
    return doc


def create_monitors(kubeconfig: Path, namespaces: list[str], count: int, data: Path,
                    interval: str) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    custom = client.CustomObjectsApi(api)

    def create(i: int) -> None:
        ns = namespaces[i % len(namespaces)]
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                               monitor(f"model-{i:05d}", data, interval))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(count)))


# The operator ---------------------------------------------------------------------------

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    def metrics_text(self, timeout: float = 10) -> str:
        return http_text(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout)

    def metrics(self) -> Samples:
        return parse(self.metrics_text())

    def proc_status(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields

    def cpu_seconds(self) -> float:
        parts = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def operator(kubeconfig: Path, workdir: Path, workers: int, namespaces: Sequence[str],
             extra: Sequence[str] = (), name: str = "operator") -> Iterator[Operator]:
    """``modelmon run`` in its own process; all namespaces when ``namespaces`` is empty;
    ``extra``: more of its options (a replica's)."""
    metrics_port, health_port = free_port(), free_port()
    log_path = workdir / f"{name}.log"
    cmd = [sys.executable, "-m", "modelmon", "run", "--kubeconfig", str(kubeconfig),
           "--metrics-port", str(metrics_port), "--health-port", str(health_port),
           "--workers", str(workers), "--log-format", "json",
           "--allow-local-path", str((workdir / "data").resolve())]  # the monitors' CSVs
    for ns in namespaces:
        cmd += ["--namespace", ns]
    cmd += extra
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    with log_path.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    op = Operator(proc, metrics_port, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {proc.returncode}; see {log_path}")
            try:
                if http_text(f"http://127.0.0.1:{health_port}/readyz").strip() == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator was not ready in 60 s; see {log_path}")
            time.sleep(0.2)
        yield op
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Figures --------------------------------------------------------------------------------

def parse(text: str) -> Samples:
    """Every sample of a /metrics page by sample name."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, [])
               if all(lab.get(k) == want for k, want in labels.items()))


def per_monitor_checks(samples: Samples, namespaces: Sequence[str]
                       ) -> dict[tuple[str, str], float]:
    return {(lab["namespace"], lab["monitor"]): v
            for lab, v in samples.get("modelmon_check_duration_seconds_count", [])
            if lab["namespace"] in namespaces}


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram, in order."""
    out = [(float(lab["le"]), v) for lab, v in samples.get(f"{name}_bucket", [])]
    return sorted(out)


def quantile(q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
             ) -> tuple[float, float]:
    """The q-quantile of the observations between two scrapes of a histogram, linearly
    interpolated within its bucket (as PromQL's ``histogram_quantile``), and that bucket's
    upper bound."""
    old = dict(before)
    delta = [(le, count - old.get(le, 0.0)) for le, count in after]
    n = delta[-1][1]
    if n <= 0:
        return math.nan, math.nan
    rank = q * n
    lower, below = 0.0, 0.0
    for le, cum in delta:
        if cum >= rank:
            if math.isinf(le):
                return lower, le
            inside = cum - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0), le
        lower, below = le, cum
    return math.nan, math.nan


def apiserver_status_patches(kubeconfig: Path) -> float:
    text = kubectl(kubeconfig, "get", "--raw", "/metrics")
    found = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            lab = s.labels
            if (s.name == "apiserver_request_total" and lab.get("verb") == "PATCH"
                    and lab.get("group") == GROUP and lab.get("resource") == PLURAL
                    and lab.get("subresource") == "status"):
                found += s.value
    return found


def worst_bucket(before: list[tuple[float, float]], after: list[tuple[float, float]]
                 ) -> float:
    """The upper bound of the bucket that holds the largest observation between two scrapes
    of a cumulative histogram: the first bound whose count grew by as much as the total
    (``inf`` when that observation is above every bound)."""
    return quantile(1.0, before, after)[1]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# The run --------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict[str, Any]:
    from modelmon.api.v1alpha1 import parse_duration

    interval_s = parse_duration(args.interval).total_seconds()
    workdir = Path(tempfile.mkdtemp(prefix="modelmon-scale-"))
    data = workdir / "data"
    data.mkdir()
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, data / name)
    namespaces = [f"{args.prefix}-{i}" for i in range(args.namespaces)]
    result: dict[str, Any] = {"monitors": args.monitors, "interval_seconds": interval_s,
                              "namespaces": args.namespaces, "workers": args.workers,
                              "minutes": args.minutes, "scope": args.scope}
    with cluster(args.kubeconfig, args.control_plane_gogc) as kubeconfig:
        install_crds(kubeconfig)
        for ns in namespaces:
            kubectl(kubeconfig, "create", "namespace", ns)
        try:
            watched = namespaces if args.scope == "namespaces" else []
            with operator(kubeconfig, workdir, args.workers, watched) as op:
                idle_rss = op.proc_status()["VmRSS"] / 1024
                started = time.monotonic()
                create_monitors(kubeconfig, namespaces, args.monitors, data, args.interval)
                result["create_seconds"] = time.monotonic() - started
                log(f"created {args.monitors} monitors in {result['create_seconds']:.1f} s")
                while True:
                    checked = per_monitor_checks(op.metrics(), namespaces)
                    if sum(1 for v in checked.values() if v >= 1) >= args.monitors:
                        break
                    if time.monotonic() - started > max(600.0, 3 * interval_s):
                        raise TimeoutError(f"only {len(checked)} of {args.monitors} monitors "
                                           "were checked")
                    time.sleep(1)
                result["first_round_seconds"] = time.monotonic() - started
                log(f"every monitor checked once after {result['first_round_seconds']:.1f} s;"
                    f" warming up for {interval_s:.0f} s")
                time.sleep(interval_s)
                result.update(measure(op, kubeconfig, args.minutes * 60, namespaces,
                                      args.scrape_seconds))
                result["idle_rss_mib"] = idle_rss
                exit_code = op.proc.poll()
                result["operator_alive"] = exit_code is None
        finally:
            for ns in namespaces:
                kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false",
                        "--ignore-not-found")
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def snapshot(op: Operator, kubeconfig: Path
             ) -> tuple[Samples, tuple[float, float], float, int]:
    """The operator's metrics, with the API server's count of status patches read just
    before and just after them: a scrape of a thousand monitors' series takes seconds,
    and the operator's counters are read somewhere inside it. Also the scrape's wall time
    and size."""
    before = apiserver_status_patches(kubeconfig)
    started = time.monotonic()
    text = op.metrics_text()
    scrape = time.monotonic() - started
    return parse(text), (before, apiserver_status_patches(kubeconfig)), scrape, len(
        text.encode())


def measure(op: Operator, kubeconfig: Path, seconds: float, namespaces: Sequence[str],
            scrape_every: float) -> dict[str, Any]:
    """RSS from /proc every second; /metrics every ``scrape_every`` seconds, as Prometheus
    would scrape it (scraping a thousand monitors' series every second would itself load
    the operator); the figures from the deltas between the two ends of the window."""
    before, patches_before, scrape, size = snapshot(op, kubeconfig)
    cpu_before = op.cpu_seconds()
    t0 = time.monotonic()
    rss: list[float] = []
    scrapes = [scrape]
    next_scrape = t0 + scrape_every
    while time.monotonic() - t0 < seconds:
        rss.append(op.proc_status()["VmRSS"] / 1024)
        if time.monotonic() >= next_scrape:
            started = time.monotonic()
            op.metrics_text()
            scrapes.append(time.monotonic() - started)
            next_scrape += scrape_every
        time.sleep(1)
    elapsed = time.monotonic() - t0
    cpu = op.cpu_seconds() - cpu_before
    after, patches_after, scrape, _ = snapshot(op, kubeconfig)
    scrapes.append(scrape)
    checks_before = per_monitor_checks(before, namespaces)
    checks_after = per_monitor_checks(after, namespaces)
    per_monitor = [checks_after.get(k, 0.0) - checks_before.get(k, 0.0) for k in checks_after]
    checks = sum(per_monitor)
    requests = {lab["method"]: v - total(before, "modelmon_kube_requests_total", **lab)
                for lab, v in after.get("modelmon_kube_requests_total", [])}
    late = (buckets(before, "modelmon_schedule_lateness_seconds"),
            buckets(after, "modelmon_schedule_lateness_seconds"))
    p50, p50_le = quantile(0.50, *late)
    p99, p99_le = quantile(0.99, *late)
    lag = (buckets(before, "modelmon_event_loop_heartbeat_delay_seconds"),
           buckets(after, "modelmon_event_loop_heartbeat_delay_seconds"))
    lag50, _ = quantile(0.50, *lag)
    lag99, lag99_le = quantile(0.99, *lag)
    lag_max = worst_bucket(*lag)
    duration = (total(after, "modelmon_check_duration_seconds_sum")
                - total(before, "modelmon_check_duration_seconds_sum"))
    patch_requests = requests.get("PATCH", 0.0)
    return {
        "window_seconds": elapsed,
        "checks": checks,
        "checks_per_minute": checks / elapsed * 60,
        "checks_per_monitor_min": min(per_monitor) if per_monitor else 0.0,
        "checks_per_monitor_max": max(per_monitor) if per_monitor else 0.0,
        "errors": total(after, "modelmon_check_errors_total")
        - total(before, "modelmon_check_errors_total"),
        "mean_check_seconds": duration / checks if checks else math.nan,
        "lateness_p50_seconds": p50, "lateness_p50_bucket": p50_le,
        "lateness_p99_seconds": p99, "lateness_p99_bucket": p99_le,
        "rss_mib_p50": percentile(rss, 0.5), "rss_mib_max": max(rss, default=math.nan),
        "rss_hwm_mib": op.proc_status()["VmHWM"] / 1024,
        "cpu_cores": cpu / elapsed,
        "loop_lag_p50_seconds": lag50, "loop_lag_p99_seconds": lag99,
        "loop_lag_p99_bucket": lag99_le, "loop_lag_max_bucket": lag_max,
        "requests_by_method": requests,
        "requests_per_check": sum(requests.values()) / checks if checks else math.nan,
        "patch_requests_per_check": patch_requests / checks if checks else math.nan,
        # The API server's count over the operator's window lies between what it counted
        # from the end of the first scrape to the start of the last, and from the start of
        # the first to the end of the last; status_patches reads both before the scrapes.
        "status_patches": patches_after[0] - patches_before[0],
        "status_patches_low": patches_after[0] - patches_before[1],
        "status_patches_high": patches_after[1] - patches_before[0],
        "status_patches_per_check":
            (patches_after[0] - patches_before[0]) / checks if checks else math.nan,
        "scrape_seconds_max": max(scrapes), "scrape_bytes": size,
        "scrape_series": sum(len(v) for v in after.values()),
        "scrape_every_seconds": scrape_every,
    }


def goals(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(goal, target, measured, passed) for the report."""
    expected = r["monitors"] * 60.0 / r["interval_seconds"]
    due = math.floor(r["window_seconds"] / r["interval_seconds"])
    return [
        ("every check on schedule: checks of each monitor in the window",
         f">= {due} (one per {r['interval_seconds']:.0f} s interval in "
         f"{r['window_seconds']:.0f} s; {expected:.0f} per minute in all)",
         f"{r['checks_per_monitor_min']:.0f} to {r['checks_per_monitor_max']:.0f}; "
         f"{r['checks_per_minute']:.0f} per minute",
         r["checks_per_monitor_min"] >= due),
        ("schedule lateness p99", f"< {GOAL_P99_LATENESS:.0f} s",
         f"{r['lateness_p99_seconds']:.3f} s (bucket <= {r['lateness_p99_bucket']:g} s); "
         f"p50 {r['lateness_p50_seconds']:.3f} s",
         r["lateness_p99_bucket"] <= GOAL_P99_LATENESS),
        ("operator RSS (high-water mark, whole run)", f"< {GOAL_RSS_MIB:.0f} MiB",
         f"{r['rss_hwm_mib']:.0f} MiB (median in the window {r['rss_mib_p50']:.0f} MiB)",
         r["rss_hwm_mib"] < GOAL_RSS_MIB),
        ("status patches per check", f"<= {GOAL_PATCHES_PER_CHECK:.0f}",
         f"{r['patch_requests_per_check']:.4f} PATCH requests per check sent by the operator "
         f"({r['checks']:.0f} checks); the API server counted "
         + _server_count(r) + " in the same window",
         r["patch_requests_per_check"] * r["checks"]
         <= GOAL_PATCHES_PER_CHECK * r["checks"] + IN_FLIGHT),
    ]


def _server_count(r: dict[str, Any]) -> str:
    """The API server's count of status patches in the window, as a range when the run
    bracketed the operator's scrapes with two reads."""
    if "status_patches_low" not in r:
        return f"{r['status_patches']:.0f} status patches"
    return (f"{r['status_patches_low']:.0f} to {r['status_patches_high']:.0f} status patches "
            "(read before and after each end's scrape)")


def section(r: dict[str, Any]) -> list[str]:
    """The report's markdown section for one scale run."""
    methods = ", ".join(f"{m} {v:.0f}" for m, v in sorted(r["requests_by_method"].items()))
    return [
        "## Operator at scale",
        "",
        f"`python benchmarks/scale.py`: {r['monitors']} ModelMonitors (the breast-cancer "
        f"example, a local CSV source) in {r['namespaces']} namespaces at a "
        f"{r['interval_seconds']:.0f} s interval, one `modelmon run` process with "
        f"{r['workers']} check threads watching "
        + ("all namespaces" if r.get("scope", "cluster") == "cluster" else "its namespaces")
        + ", against the local control plane of `hack/cluster.sh` on the same machine. "
        f"Created in {r['create_seconds']:.1f} s; every monitor had its first check "
        f"{r['first_round_seconds']:.1f} s after creation began; then one interval of "
        f"warm-up and a {r['window_seconds'] / 60:.1f}-minute window:",
        "",
        "| goal | target | measured | result |",
        "|---|---|---|---|",
        *(f"| {g} | {t} | {m} | {'PASS' if ok else 'FAIL'} |" for g, t, m, ok in goals(r)),
        "",
        "| figure | value |",
        "|---|---:|",
        f"| checks per minute | {r['checks_per_minute']:.0f} |",
        f"| failed checks | {r['errors']:.0f} |",
        "| mean check wall time (queueing for a check thread, source, statistics, status "
        f"patch) | {r['mean_check_seconds'] * 1000:.0f} ms |",
        f"| schedule lateness p50 / p99 | {r['lateness_p50_seconds']:.3f} s / "
        f"{r['lateness_p99_seconds']:.3f} s |",
        f"| operator RSS: idle before the monitors / median in the window / high-water mark |"
        f" {r['idle_rss_mib']:.0f} / {r['rss_mib_p50']:.0f} / {r['rss_hwm_mib']:.0f} MiB |",
        f"| operator CPU | {r['cpu_cores']:.2f} cores |",
        f"| event-loop heartbeat delay p50 / p99 (worst bucket reached) | "
        f"{r['loop_lag_p50_seconds'] * 1000:.1f} / {r['loop_lag_p99_seconds'] * 1000:.1f} ms "
        + (f"(<= {r['loop_lag_max_bucket'] * 1000:g} ms) |"
           if math.isfinite(r["loop_lag_max_bucket"]) else
           "(above every bucket) |" if r["loop_lag_max_bucket"] == math.inf else "(none) |"),
        f"| API requests per check (by method in the window: {methods}) | "
        f"{r['requests_per_check']:.4f} |",
        "| status patches counted by the API server, per check | "
        + (f"{r['status_patches_per_check']:.4f} |" if "status_patches_low" not in r else
           f"{r['status_patches_low'] / r['checks']:.4f} to "
           f"{r['status_patches_high'] / r['checks']:.4f} |"),
        f"| one /metrics scrape: series, size, slowest of the window's scrapes (every "
        f"{r['scrape_every_seconds']:.0f} s) | {r['scrape_series']:,} series, "
        f"{r['scrape_bytes'] / 1024 / 1024:.1f} MiB, {r['scrape_seconds_max']:.2f} s |",
        "",
        "Lateness is the time from a check's due time to the moment its statistics start "
        "(waiting for a free check thread included); heartbeat delay is how late the event "
        "loop ran its once-a-second heartbeat. Both are quantiles interpolated within the "
        "buckets of the operator's histograms (`modelmon_schedule_lateness_seconds`, "
        "`modelmon_event_loop_heartbeat_delay_seconds`) over the window, as PromQL's "
        "`histogram_quantile` does. Requests are counted by the operator's API client "
        "(`modelmon_kube_requests_total`); kopf's watch is one long-lived request and not "
        "counted. The API server's count of status patches (`apiserver_request_total`) is "
        "read just before and just after the operator's metrics at both ends of the "
        "window: the operator's counters are read somewhere inside a scrape that took up to "
        f"{r['scrape_seconds_max']:.1f} s, so the server's count over the same window lies "
        "between the two readings' differences.",
        "",
    ]


# Several replicas -------------------------------------------------------------------------

#: Seconds two checks of one monitor may start less than an interval apart before they
#: count as one monitor checked twice in an interval (the log's times are to the
#: millisecond; one replica's cadence never starts a check early).
TWICE_SLACK = 1.0
#: The replica the run kills (SIGKILL) after the steady window.
VICTIM = 1
#: Seconds a replica may take to serve the /metrics scrapes the figures come from (a
#: thousand monitors' series take seconds on a loaded machine).
SCRAPE_TIMEOUT = 180.0


@dataclass
class Check:
    """One published check, from a replica's JSON log: when it began (its ``started``
    field, the time its status records as ``lastCheck.time``, which the next check's due
    time counts from) and when its status was written (the line's time)."""

    monitor: str
    replica: str
    began: float
    written: float


@dataclass
class Logs:
    """The replicas' JSON logs, read as they grow: every published check; the checks a
    replica computed but did not write because another had written the status since
    (``dropped``: computed twice); and those it dropped unwritten because the monitor
    moved to another replica while they ran (``moved``: fenced, not written twice)."""

    paths: dict[str, Path]
    checks: list[Check] = field(default_factory=list)
    dropped: list[tuple[str, float]] = field(default_factory=list)
    moved: list[tuple[str, float]] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    def read(self) -> None:
        for rid, path in self.paths.items():
            with path.open("rb") as f:
                f.seek(self.offsets.get(rid, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
            self.offsets[rid] = self.offsets.get(rid, 0) + end
            for raw in data[:end].splitlines():
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict) or "monitor" not in record:
                    continue
                event = record.get("event")
                if event not in ("check", "handover"):
                    continue
                when = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=UTC).timestamp()
                if event == "check":
                    began = (datetime.fromisoformat(record["started"]).timestamp()
                             if record.get("started") else
                             when - float(record.get("duration_seconds") or 0.0))
                    self.checks.append(Check(record["monitor"], rid, began, when))
                elif record.get("action") == "dropped":
                    (self.dropped if record.get("reason") == "StatusChanged"
                     else self.moved).append((record["monitor"], when))

    def checked(self) -> set[str]:
        return {c.monitor for c in self.checks}

    def by_monitor(self) -> dict[str, list[Check]]:
        out: dict[str, list[Check]] = {}
        for c in sorted(self.checks, key=lambda c: c.began):
            out.setdefault(c.monitor, []).append(c)
        return out


def twice(logs: Logs, interval_s: float, start: float, end: float) -> list[tuple[str, float]]:
    """Monitors checked by two replicas in an interval: a check beginning less than an
    interval (less ``TWICE_SLACK``) after the one before it by another replica, between
    ``start`` and ``end``; (monitor, gap) of each. One replica's own checks follow its
    fixed cadence (the next is due an interval after the last began), so pairs of one
    replica are not counted."""
    found = []
    for name, checks in logs.by_monitor().items():
        for earlier, later in itertools.pairwise(checks):
            gap = later.began - earlier.began
            if (start <= later.began < end and gap < interval_s - TWICE_SLACK
                    and later.replica != earlier.replica):
                found.append((name, gap))
    return found


#: The families the replicas' figures read: the rest of a /metrics page (a thousand
#: monitors' statistics) is dropped before parsing, which on a loaded machine would take
#: the benchmark minutes of the CPU the replicas need.
REPLICA_FAMILIES = ("modelmon_check_duration_seconds", "modelmon_check_errors",
                    "modelmon_schedule_lateness_seconds", "modelmon_kube_requests",
                    "modelmon_monitors", "modelmon_replica_members",
                    "modelmon_lease_renew_failures", "modelmon_handovers")


def replica_samples(text: str) -> Samples:
    """The samples of ``REPLICA_FAMILIES`` in a /metrics page."""
    def wanted(line: str) -> bool:
        name = (line.split(" ", 3)[2] if line.startswith("# ") else line).split("{", 1)[0]
        name = name.split(" ", 1)[0]
        return any(name == f or name.startswith(f + "_") for f in REPLICA_FAMILIES)
    return parse("\n".join(line for line in text.splitlines() if wanted(line)) + "\n")


def unlabelled(samples: Samples, name: str) -> float:
    return next((v for lab, v in samples.get(name, []) if not lab), math.nan)


def replica_figures(before: Samples, after: Samples) -> dict[str, Any]:
    """One replica's counters over a window: checks, failures, lateness buckets."""
    checks = (total(after, "modelmon_check_duration_seconds_count")
              - total(before, "modelmon_check_duration_seconds_count"))
    return {
        "checks": checks,
        "errors": total(after, "modelmon_check_errors_total")
        - total(before, "modelmon_check_errors_total"),
        "check_seconds": total(after, "modelmon_check_duration_seconds_sum")
        - total(before, "modelmon_check_duration_seconds_sum"),
        "lateness": [buckets(before, "modelmon_schedule_lateness_seconds"),
                     buckets(after, "modelmon_schedule_lateness_seconds")],
        "patches": total(after, "modelmon_kube_requests_total", method="PATCH")
        - total(before, "modelmon_kube_requests_total", method="PATCH"),
        "monitors": unlabelled(after, "modelmon_monitors"),
        "members": unlabelled(after, "modelmon_replica_members"),
        "renew_failures": unlabelled(after, "modelmon_lease_renew_failures_total"),
        "handovers_taken": total(after, "modelmon_handovers_total", direction="taken"),
        "handovers_released": total(after, "modelmon_handovers_total", direction="released"),
    }


def summed(histograms: Sequence[Sequence[list[tuple[float, float]]]]
           ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The before and after buckets of several replicas' histograms, added up."""
    def add(which: int) -> list[tuple[float, float]]:
        out: dict[float, float] = {}
        for h in histograms:
            for le, count in h[which]:
                out[le] = out.get(le, 0.0) + count
        return sorted(out.items())
    return add(0), add(1)


def lateness_of(histograms: Sequence[Sequence[list[tuple[float, float]]]]) -> dict[str, float]:
    before, after = summed(histograms)
    p50, p50_le = quantile(0.50, before, after)
    p99, p99_le = quantile(0.99, before, after)
    return {"p50": p50, "p50_bucket": p50_le, "p99": p99, "p99_bucket": p99_le,
            "max_bucket": worst_bucket(before, after)}


def pid_cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_cpu(kubeconfig: Path) -> float | None:
    """CPU seconds of the API server and etcd so far, when ``hack/cluster.sh`` started them
    for this run (their pid files beside the kubeconfig); else None."""
    spent = 0.0
    for name in ("kube-apiserver", "etcd"):
        try:
            spent += pid_cpu_seconds(int((kubeconfig.parent / f"{name}.pid").read_text()))
        except (OSError, ValueError):
            return None
    return spent


def machine_cpu() -> tuple[float, float]:
    """(busy, all) jiffies of every CPU of the machine so far (/proc/stat): every process's,
    this run's and anyone else's."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return float(sum(fields) - idle), float(sum(fields))


def check_cost(data: Path, interval: str, repeats: int = 30) -> dict[str, float]:
    """CPU seconds of one check of the benchmark's monitor in this process (``run_check``:
    sources and statistics, no API), and of it the tied-KS p-values (``ks_tied_pvalue``):
    what the replicas' CPU per check is made of, before API calls, watch events, metrics
    and logs."""
    from modelmon.check import parse_spec, run_check
    from modelmon.sources import ReferenceCache
    from modelmon.stats.drift import ks

    spec = parse_spec(monitor("cost", data, interval)["spec"])
    cache: ReferenceCache[Any] = ReferenceCache()
    run_check(spec, cache=cache, cache_key="cost")  # the reference is fitted once
    tied = [0.0]
    # One column at a time (``ks_tied_pvalue``) or a check's columns together (``settle``).
    names = ("ks_tied_pvalue", "ks_tied_pvalues")
    originals = {name: getattr(ks, name) for name in names}

    def timer(original: Any) -> Any:
        def timed(*args: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args)
            finally:
                tied[0] += time.process_time() - started
        return timed

    for name in names:
        setattr(ks, name, timer(originals[name]))
    try:
        started = time.process_time()
        for _ in range(repeats):
            run_check(spec, cache=cache, cache_key="cost")
        spent = time.process_time() - started
    finally:
        for name in names:
            setattr(ks, name, originals[name])
    return {"check_cpu_seconds": spent / repeats, "ks_tied_cpu_seconds": tied[0] / repeats}


def wait_members(ops: dict[str, Operator], count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        seen = {rid: unlabelled(op.metrics(), "modelmon_replica_members")
                for rid, op in ops.items()}
        if all(v == count for v in seen.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replicas did not see each other in {seconds:.0f} s: "
                               f"members {seen}")
        time.sleep(1)


def run_replicas(args: argparse.Namespace) -> dict[str, Any]:
    """``--replicas N``: N ``modelmon run --replication`` processes share the monitors; a
    steady window, then one replica killed and the survivors' takeover."""
    from modelmon.api.v1alpha1 import parse_duration
    from peers import machine

    interval_s = parse_duration(args.interval).total_seconds()
    lease_s = float(args.lease_duration)
    workdir = Path(tempfile.mkdtemp(prefix="modelmon-scale-"))
    data = workdir / "data"
    data.mkdir()
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, data / name)
    namespaces = [f"{args.prefix}-{i}" for i in range(args.namespaces)]
    lease_ns = f"{args.prefix}-leases"
    ids = [f"r{i}" for i in range(args.replicas)]
    victim = ids[VICTIM]
    result: dict[str, Any] = {"mode": "replicas", "replicas": args.replicas,
                              "monitors": args.monitors, "interval_seconds": interval_s,
                              "lease_duration_seconds": lease_s,
                              "namespaces": args.namespaces, "workers": args.workers,
                              "minutes": args.minutes, "scope": args.scope, "victim": victim,
                              "control_plane_gogc": args.control_plane_gogc,
                              "load_before": os.getloadavg()[0], "machine": machine()}
    result.update(check_cost(data, args.interval))
    with cluster(args.kubeconfig, args.control_plane_gogc) as kubeconfig, \
            ExitStack() as stack:
        install_crds(kubeconfig)
        for ns in [*namespaces, lease_ns]:
            kubectl(kubeconfig, "create", "namespace", ns)

        def delete_namespaces() -> None:
            for ns in [*namespaces, lease_ns]:
                kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false",
                        "--ignore-not-found")

        stack.callback(delete_namespaces)
        watched = namespaces if args.scope == "namespaces" else []
        ops = {rid: stack.enter_context(operator(
            kubeconfig, workdir, args.workers, watched, name=rid,
            extra=["--replication", "--lease-namespace", lease_ns, "--id", rid,
                   "--lease-duration", f"{lease_s:.0f}s"])) for rid in ids}
        logs = Logs({rid: op.log_path for rid, op in ops.items()})
        wait_members(ops, args.replicas, 3 * lease_s + 30)
        result["idle_rss_mib"] = {rid: op.proc_status()["VmRSS"] / 1024
                                  for rid, op in ops.items()}
        started = time.monotonic()
        create_monitors(kubeconfig, namespaces, args.monitors, data, args.interval)
        result["create_seconds"] = time.monotonic() - started
        log(f"created {args.monitors} monitors in {result['create_seconds']:.1f} s")
        while True:
            logs.read()
            done = len(logs.checked())
            if done >= args.monitors:
                break
            if time.monotonic() - started > max(600.0, 3 * interval_s + lease_s):
                # Too slow to check each once: measure anyway, the goals will say so.
                log(f"only {done} of {args.monitors} monitors were checked; measuring anyway")
                break
            time.sleep(1)
        result["first_round_seconds"] = time.monotonic() - started
        result["first_round_checked"] = done
        log(f"{done} monitors checked once after {result['first_round_seconds']:.1f} s;"
            f" warming up for {interval_s:.0f} s")
        time.sleep(interval_s)
        result.update(steady(ops, kubeconfig, logs, args.minutes * 60, interval_s,
                             args.scrape_seconds))
        result.update(takeover(ops, victim, logs, interval_s, lease_s))
        logs.read()
        result["twice"] = len(twice(logs, interval_s, -math.inf, math.inf))
        result["dropped_writes"] = len(logs.dropped)
        result["dropped_moved"] = len(logs.moved)
        result["alive"] = {rid: op.proc.poll() is None for rid, op in ops.items()
                           if rid != victim}
        result["load_after"] = os.getloadavg()[0]
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def steady(ops: dict[str, Operator], kubeconfig: Path, logs: Logs, seconds: float,
           interval_s: float, scrape_every: float) -> dict[str, Any]:
    """Every replica over the same window: RSS from /proc every second, /metrics every
    ``scrape_every`` seconds (as Prometheus would), the figures from the two ends."""
    patches_before = apiserver_status_patches(kubeconfig)
    before = {rid: replica_samples(op.metrics_text(SCRAPE_TIMEOUT)) for rid, op in ops.items()}
    cpu_before = {rid: op.cpu_seconds() for rid, op in ops.items()}
    plane_before, machine_before = control_plane_cpu(kubeconfig), machine_cpu()
    t0, wall0 = time.monotonic(), time.time()
    rss: dict[str, list[float]] = {rid: [] for rid in ops}
    failed_scrapes = 0
    next_scrape = t0 + scrape_every
    while time.monotonic() - t0 < seconds:
        for rid, op in ops.items():
            rss[rid].append(op.proc_status()["VmRSS"] / 1024)
        if time.monotonic() >= next_scrape:
            for op in ops.values():
                try:
                    op.metrics_text()
                except OSError:  # as Prometheus would, count it and go on
                    failed_scrapes += 1
            next_scrape += scrape_every
        time.sleep(1)
    elapsed, wall1 = time.monotonic() - t0, time.time()
    cpu = {rid: op.cpu_seconds() - cpu_before[rid] for rid, op in ops.items()}
    plane_after, machine_after = control_plane_cpu(kubeconfig), machine_cpu()
    after = {rid: replica_samples(op.metrics_text(SCRAPE_TIMEOUT)) for rid, op in ops.items()}
    patches_after = apiserver_status_patches(kubeconfig)
    logs.read()
    per = {rid: {**replica_figures(before[rid], after[rid]),
                 "rss_mib_p50": percentile(rss[rid], 0.5),
                 "rss_mib_max": max(rss[rid], default=math.nan),
                 "rss_hwm_mib": op.proc_status()["VmHWM"] / 1024,
                 "cpu_cores": cpu[rid] / elapsed}
           for rid, op in ops.items()}
    late = lateness_of([p.pop("lateness") for p in per.values()])
    in_window = [c for c in logs.checks if wall0 <= c.began < wall1]
    counts: dict[str, int] = {}
    for c in in_window:
        counts[c.monitor] = counts.get(c.monitor, 0) + 1
    checks = sum(p["checks"] for p in per.values())
    even = checks / len(per)
    return {
        "window_seconds": elapsed, "window_start": wall0, "window_end": wall1,
        "per_replica": per,
        "checks": checks, "checks_per_minute": checks / elapsed * 60,
        "checks_per_monitor_min": min(counts.values(), default=0),
        "checks_per_monitor_max": max(counts.values(), default=0),
        "monitors_checked_in_window": len(counts),
        "split_spread": max(abs(p["checks"] - even) / even for p in per.values())
        if even else math.nan,
        "errors": sum(p["errors"] for p in per.values()),
        "mean_check_seconds": sum(p["check_seconds"] for p in per.values()) / checks
        if checks else math.nan,
        "lateness_p50_seconds": late["p50"], "lateness_p50_bucket": late["p50_bucket"],
        "lateness_p99_seconds": late["p99"], "lateness_p99_bucket": late["p99_bucket"],
        "lateness_max_bucket": late["max_bucket"],
        "twice_steady": len(twice(logs, interval_s, wall0, wall1)),
        "status_patches": patches_after - patches_before,
        "patch_requests": sum(p["patches"] for p in per.values()),
        "scrape_every_seconds": scrape_every, "failed_scrapes": failed_scrapes,
        "control_plane_cpu_cores": (plane_after - plane_before) / elapsed
        if plane_after is not None and plane_before is not None else None,
        "machine_cpu_busy": (machine_after[0] - machine_before[0])
        / (machine_after[1] - machine_before[1]),
    }


def takeover(ops: dict[str, Operator], victim: str, logs: Logs, interval_s: float,
             lease_s: float) -> dict[str, Any]:
    """SIGKILL ``victim``; the time until every monitor it checked last has been checked
    by a survivor (bound: a lease duration and an interval), and how late those checks
    were against the due time the victim left (its last check and an interval); then one
    more interval, to see the survivors' next checks."""
    logs.read()
    last: dict[str, Check] = {}
    for c in logs.checks:
        if c.monitor not in last or c.began > last[c.monitor].began:
            last[c.monitor] = c
    orphans = {name for name, c in last.items() if c.replica == victim}
    survivors = {rid: op for rid, op in ops.items() if rid != victim}
    before = {rid: replica_samples(op.metrics_text(SCRAPE_TIMEOUT))
              for rid, op in survivors.items()}
    victim_hwm = ops[victim].proc_status()["VmHWM"] / 1024
    killed = time.time()
    ops[victim].proc.kill()
    ops[victim].proc.wait()
    log(f"killed {victim}, which had checked {len(orphans)} monitors last")
    bound = lease_s + interval_s
    deadline = killed + bound + 2 * interval_s
    first: dict[str, Check] = {}
    while True:
        logs.read()
        for c in logs.checks:
            if (c.monitor in orphans and c.replica != victim and c.written > killed
                    and (c.monitor not in first or c.written < first[c.monitor].written)):
                first[c.monitor] = c
        if len(first) == len(orphans) or time.time() > deadline:
            break
        time.sleep(1)
    done = time.time()
    log(f"{len(first)} of {len(orphans)} taken over in {done - killed:.1f} s; watching one "
        "more interval")
    time.sleep(interval_s + 5)
    logs.read()
    after = {rid: replica_samples(op.metrics_text(SCRAPE_TIMEOUT)) for rid, op in survivors.items()}
    end = time.time()
    per = {rid: replica_figures(before[rid], after[rid]) for rid in survivors}
    late = lateness_of([p.pop("lateness") for p in per.values()])
    waited = [c.written - killed for c in first.values()]
    # From the logs: a replica's per-monitor counters go with the monitors it releases.
    phase = [c for c in logs.checks if c.replica != victim and killed <= c.written < end]
    # Due: an interval after the victim's last check began; how late the survivor began.
    overdue = [max(0.0, first[n].began - (last[n].began + interval_s)) for n in first]
    return {
        "killed_at": killed, "victim_rss_hwm_mib": victim_hwm,
        "orphans": len(orphans), "orphans_taken": len(first),
        "takeover_bound_seconds": bound,
        "takeover_seconds": max(waited) if len(first) == len(orphans) and waited
        else math.inf,
        "takeover_p50_seconds": percentile(waited, 0.5),
        "taken_lateness_p50_seconds": percentile(overdue, 0.5),
        "taken_lateness_p99_seconds": percentile(overdue, 0.99),
        "taken_lateness_max_seconds": max(overdue, default=math.nan),
        "takeover_window_seconds": end - killed,
        "takeover_lateness_p99_seconds": late["p99"],
        "takeover_lateness_p99_bucket": late["p99_bucket"],
        "takeover_errors": sum(p["errors"] for p in per.values()),
        "takeover_checks": len(phase),
        "twice_takeover": len(twice(logs, interval_s, killed, end)),
        "survivors": per,
        "survivor_rss_hwm_mib": {rid: op.proc_status()["VmHWM"] / 1024
                                 for rid, op in survivors.items()},
    }


def replicas_goals(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(goal, target, measured, passed) of a run with several replicas."""
    due = math.floor(r["window_seconds"] / r["interval_seconds"])
    per = r["per_replica"]
    hwm = max([p["rss_hwm_mib"] for p in per.values()]
              + list(r["survivor_rss_hwm_mib"].values()))
    return [
        ("every check on schedule: checks of each monitor in the steady window, by any "
         "replica",
         f">= {due} (one per {r['interval_seconds']:.0f} s interval in "
         f"{r['window_seconds']:.0f} s)",
         f"{r['checks_per_monitor_min']:.0f} to {r['checks_per_monitor_max']:.0f} "
         f"({r['monitors_checked_in_window']} of {r['monitors']} monitors checked)",
         r["checks_per_monitor_min"] >= due
         and r["monitors_checked_in_window"] == r["monitors"]),
        ("schedule lateness p99 (steady window, every replica's checks)",
         f"< {GOAL_P99_LATENESS:.0f} s",
         f"{r['lateness_p99_seconds']:.3f} s (bucket <= {r['lateness_p99_bucket']:g} s); "
         f"p50 {r['lateness_p50_seconds']:.3f} s",
         r["lateness_p99_bucket"] <= GOAL_P99_LATENESS),
        ("RSS of each replica (high-water mark, whole run)", f"< {GOAL_RSS_MIB:.0f} MiB",
         f"{hwm:.0f} MiB, the highest of the {r['replicas']}",
         hwm < GOAL_RSS_MIB),
        ("the split: each replica's checks against an even share",
         "within ±30 %", f"{r['split_spread'] * 100:.1f} % off at most",
         r["split_spread"] <= 0.30),
        (f"takeover: after SIGKILL of {r['victim']}, every monitor it checked last is "
         "checked by a survivor",
         f"<= {r['takeover_bound_seconds']:.0f} s (lease duration "
         f"{r['lease_duration_seconds']:.0f} s + one interval)",
         (f"{r['takeover_seconds']:.1f} s for all {r['orphans']} "
          f"(median {r['takeover_p50_seconds']:.1f} s)"
          if math.isfinite(r["takeover_seconds"]) else
          f"{r['orphans_taken']} of {r['orphans']} within "
          f"{r['takeover_bound_seconds'] + 2 * r['interval_seconds']:.0f} s, when the run "
          "stopped waiting"),
         r["takeover_seconds"] <= r["takeover_bound_seconds"]),
        ("never twice: checks of one monitor by two replicas less than an interval apart "
         "(whole run), and checks computed but not written because another replica wrote "
         "first", "0 and 0", f"{r['twice']} and {r['dropped_writes']}",
         r["twice"] == 0 and r["dropped_writes"] == 0),
    ]


def _mib(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def replicas_section(r: dict[str, Any]) -> list[str]:
    """The report's markdown section for a run with several replicas."""
    ids = sorted(r["per_replica"])
    per = r["per_replica"]
    surv = sorted(r["survivors"])
    even = r["checks"] / len(ids)
    monitors = [per[i]["monitors"] for i in ids]
    cpu_per_check = (sum(per[i]["cpu_cores"] for i in ids) * r["window_seconds"] / r["checks"]
                     if r["checks"] else math.nan)
    due_rate = r["monitors"] / r["interval_seconds"]
    plane = r.get("control_plane_cpu_cores")
    need = (due_rate * (cpu_per_check + plane * r["window_seconds"] / r["checks"])
            if plane is not None and r["checks"] else math.nan)
    return [
        "## Operator with several replicas",
        "",
        f"`python benchmarks/scale.py --replicas {r['replicas']} --monitors {r['monitors']}"
        + (f" --control-plane-gogc {r['control_plane_gogc']}" if r.get("control_plane_gogc")
           else "") + "` "
        f"(`make bench-replicas`): {r['monitors']} ModelMonitors (the breast-cancer example, "
        f"a local CSV source) in {r['namespaces']} namespaces at a "
        f"{r['interval_seconds']:.0f} s interval, shared by {r['replicas']} `modelmon run "
        f"--replication` processes ({', '.join(ids)}; {r['workers']} check threads each, "
        f"lease duration {r['lease_duration_seconds']:.0f} s) against the local control "
        "plane of `hack/cluster.sh`"
        + (f" (its Go processes run with `GOGC={r['control_plane_gogc']}`, "
           "`--control-plane-gogc`: the control plane stands in for a cluster's, whose CPU is "
           "not on the operator's nodes, and a third of the API server's CPU per status "
           "write at Go's default is its garbage collector)"
           if r.get("control_plane_gogc") else "")
        + ", all on the same machine. Created in "
        f"{r['create_seconds']:.1f} s; "
        + ("every monitor" if r.get("first_round_checked", r["monitors"]) >= r["monitors"]
           else f"only {r['first_round_checked']} of the monitors")
        + f" had its first check {r['first_round_seconds']:.1f} s after creation began; "
        "then one interval of "
        f"warm-up, a {r['window_seconds'] / 60:.1f}-minute steady window, and then "
        f"{r['victim']} was killed (SIGKILL) and the survivors watched for "
        f"{r['takeover_window_seconds']:.0f} s. The machine: "
        + (f"{r['machine']['cpu']}, {r['machine']['cpus']} cores, {r['machine']['ram']} RAM"
           if "machine" in r else "see Machine above")
        + f"; its 1-minute load average {r['load_before']:.2f} before the run and "
        f"{r['load_after']:.2f} after it (other work shares the machine: the load average "
        "counts it, the replicas' own CPU figures below do not).",
        "",
        "| goal | target | measured | result |",
        "|---|---|---|---|",
        *(f"| {g} | {t} | {m} | {'PASS' if ok else 'FAIL'} |"
          for g, t, m, ok in replicas_goals(r)),
        "",
        "| figure | value |",
        "|---|---:|",
        f"| checks per minute, all replicas (steady window) | {r['checks_per_minute']:.0f} |",
        f"| checks per replica ({', '.join(ids)}); even share {even:.0f} | "
        + " / ".join(f"{per[i]['checks']:.0f}" for i in ids) + " |",
        "| monitors owned per replica at the window's end (`modelmon_monitors`) | "
        + " / ".join(f"{m:.0f}" for m in monitors) + " |",
        f"| failed checks: steady window / takeover | {r['errors']:.0f} / "
        f"{r['takeover_errors']:.0f} |",
        "| mean check wall time (queueing for a check thread, source, statistics, status "
        f"patch) | {r['mean_check_seconds'] * 1000:.0f} ms |",
        f"| schedule lateness p50 / p99, steady window | {r['lateness_p50_seconds']:.3f} s / "
        f"{r['lateness_p99_seconds']:.3f} s |",
        f"| RSS per replica: idle before the monitors (MiB) | "
        f"{_mib([r['idle_rss_mib'][i] for i in ids])} |",
        f"| RSS per replica: median in the steady window (MiB) | "
        f"{_mib([per[i]['rss_mib_p50'] for i in ids])} |",
        f"| RSS per replica: high-water mark at the window's end (MiB) | "
        f"{_mib([per[i]['rss_hwm_mib'] for i in ids])} |",
        f"| RSS high-water mark of the survivors ({', '.join(surv)}) after the takeover "
        f"(MiB) | {_mib([r['survivor_rss_hwm_mib'][i] for i in surv])} |",
        "| CPU per replica (cores) | "
        + " / ".join(f"{per[i]['cpu_cores']:.2f}" for i in ids) + " |",
        "| CPU of the replicas per check (all their threads, steady window) | "
        + (f"{cpu_per_check * 1000:.0f} ms |" if math.isfinite(cpu_per_check) else "- |"),
        "| of which one check of the monitor computed alone (`run_check`: CSVs, profile, "
        "statistics; no API), and of that the tied KS p-values (`ks_tied_pvalue`) | "
        + (f"{r['check_cpu_seconds'] * 1000:.0f} ms, {r['ks_tied_cpu_seconds'] * 1000:.0f} "
           "ms |" if "check_cpu_seconds" in r else "not measured |"),
        "| CPU of the API server and etcd (cores; per check) | "
        + (f"{r['control_plane_cpu_cores']:.2f}; "
           f"{r['control_plane_cpu_cores'] * r['window_seconds'] / r['checks'] * 1000:.0f} "
           "ms |" if r.get("control_plane_cpu_cores") is not None and r["checks"] else
           "not measured |"),
        f"| CPU the schedule needs ({due_rate:.0f} checks a second, at the CPU per check of "
        "the replicas and the control plane measured here) | "
        + (f"{need:.2f} cores of the machine's {r['machine']['cpus']} |"
           if math.isfinite(need) and "machine" in r else "- |"),
        "| the machine's CPUs busy in the window (every process on it, this run's and "
        "others') | "
        + (f"{r['machine_cpu_busy'] * 100:.0f} % |" if "machine_cpu_busy" in r else "- |"),
        "| status patches the API server counted from before the replicas' first scrapes to "
        "after their last, per check in the window | "
        f"{r['status_patches'] / r['checks']:.4f} |" if r["checks"] else "| - | - |",
        f"| /metrics scrapes of the replicas in the window, every "
        f"{r['scrape_every_seconds']:.0f} s as Prometheus would: failed (10 s timeout) | "
        f"{r.get('failed_scrapes', 0)} |",
        "| checks dropped unwritten because their monitor moved to another replica while "
        "they ran (fenced: not written twice) | "
        + (f"{r['dropped_moved']} |" if "dropped_moved" in r else "not counted |"),
        f"| Lease renew failures, by the run's end ({', '.join(surv)}; "
        "`modelmon_lease_renew_failures_total`) | "
        + " / ".join(f"{r['survivors'][i]['renew_failures']:.0f}" for i in surv) + " |",
        f"| monitors taken over, by the run's end ({', '.join(surv)}; "
        "`modelmon_handovers_total{direction=\"taken\"}`) | "
        + " / ".join(f"{r['survivors'][i]['handovers_taken']:.0f}" for i in surv) + " |",
        f"| killed replica's monitors (checked last by {r['victim']}) | {r['orphans']} |",
        "| takeover: all of them checked by a survivor / median, after the kill | "
        + (f"{r['takeover_seconds']:.1f} s / {r['takeover_p50_seconds']:.1f} s |"
           if math.isfinite(r["takeover_seconds"]) else
           f"{r['orphans_taken']} of {r['orphans']} checked |"),
        "| lateness of the taken-over checks against the due time the killed replica left "
        "(p50 / p99 / max) | "
        + (f"{r['taken_lateness_p50_seconds']:.1f} s / {r['taken_lateness_p99_seconds']:.1f} s"
           f" / {r['taken_lateness_max_seconds']:.1f} s |"
           if r["orphans_taken"] else "none taken over |"),
        "| survivors' schedule lateness p99 from the kill on, as they measure it "
        + (f"({r['takeover_checks']:.0f} checks)" if r.get("takeover_checks") is not None
           else "") + f" | {r['takeover_lateness_p99_seconds']:.3f} s |",
        "| checks of one monitor by two replicas less than an interval apart: steady window "
        f"/ takeover / whole run | {r['twice_steady']} / {r['twice_takeover']} / {r['twice']} |",
        "",
        "Checks per replica and lateness come from each replica's metrics at the two ends "
        "of the window (lateness: the replicas' `modelmon_schedule_lateness_seconds` "
        "buckets added up, interpolated as PromQL's `histogram_quantile` does). Who checked "
        "which monitor when comes from the replicas' JSON logs (a check line when its "
        "status was written, with the time the check began as its status records it, "
        "`lastCheck.time`): the "
        "monitors checked twice, the killed replica's monitors and the takeover. A "
        "taken-over check was due an interval after the killed replica's last check of "
        "that monitor began; its lateness here counts from then, so it includes the wait "
        "for the killed replica's Lease to expire, which the survivors' own histogram "
        "(due from when they took the monitor) does not.",
        "",
        *([f"Capacity: the replicas checked {r['checks_per_minute']:.0f} monitors a minute of "
           f"the {due_rate * 60:.0f} due, with the machine's CPUs "
           f"{r['machine_cpu_busy'] * 100:.0f} % busy; at the CPU per check measured here "
           f"(the replicas' and the control plane's) the schedule needs {need:.1f} cores. "
           "Below that, checks queue for the CPU, lateness grows through the window, and "
           "the survivors of a kill queue the taken-over monitors behind their own.", ""]
          if math.isfinite(need) and "machine_cpu_busy" in r
          and r["checks_per_minute"] < 0.95 * due_rate * 60 else []),
        *([f"Recomputed after the run from its replicas' saved logs, with the counting of "
           f"this version: {', '.join(r['recomputed_from_logs']['fields'])} (the run's own "
           "counting took one replica's consecutive checks, whose starts the log gives late "
           "by the status write, and checks fenced after a hand-over, for checks made "
           "twice).", ""] if "recomputed_from_logs" in r else []),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--monitors", type=int, default=1000)
    p.add_argument("--interval", default="1m", help="each monitor's schedule.interval")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the measured window")
    p.add_argument("--namespaces", type=int, default=10)
    p.add_argument("--workers", type=int, default=2, help="the operator's --workers")
    p.add_argument("--prefix", default="mm-scale", help="namespaces are PREFIX-0, PREFIX-1...")
    p.add_argument("--scope", choices=("cluster", "namespaces"), default="cluster",
                   help="the operator watches all namespaces, or only the benchmark's")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="use this cluster instead of starting one with hack/cluster.sh")
    p.add_argument("--control-plane-gogc", type=int, default=None, metavar="PERCENT",
                   help="GOGC of the control plane this run starts (etcd, kube-apiserver, "
                        "kube-controller-manager; default: Go's own, 100); not with "
                        "--kubeconfig")
    p.add_argument("--scrape-seconds", type=float, default=30.0,
                   help="scrape the operator's /metrics this often during the window")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--replicas", type=int, default=1,
                   help="above 1: this many `modelmon run --replication` processes share "
                        "the monitors, and one of them is killed after the window")
    p.add_argument("--lease-duration", type=int, default=20,
                   help="the replicas' --lease-duration in seconds")
    args = p.parse_args(argv)
    if args.control_plane_gogc is not None and (args.kubeconfig is not None
                                                or args.control_plane_gogc < 1):
        p.error("--control-plane-gogc: a positive percentage, for the control plane this "
                "run starts (not with --kubeconfig)")
    if args.replicas == 2 or args.replicas < 1:
        p.error("--replicas: 1 (one operator) or at least 3 (one is killed, and the "
                "takeover needs two survivors to share its monitors)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped with SIGTERM (or SIGINT in the background), still stop the operators and the
    # control plane on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.replicas > 1:
        result = run_replicas(args)
        text = json.dumps(result, indent=1, sort_keys=True)
        if args.json is not None:
            args.json.write_text(text + "\n")
        print(text)
        for g, t, m, ok in replicas_goals(result):
            log(f"{'PASS' if ok else 'FAIL'} {g}: {m} (target {t})")
        return 0
    result = run(args)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)
    for g, t, m, ok in goals(result):
        log(f"{'PASS' if ok else 'FAIL'} {g}: {m} (target {t})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "operator"))
    sys.exit(main())

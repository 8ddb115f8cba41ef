"""Windows bigger than memory (issue 21, point 5): one prediction log of ``--rows`` rows
(50,000,000 by default) in PostgreSQL and the same rows as parquet, checked by
``modelmon check`` at several window sizes.

``python benchmarks/bigwindow.py`` (``make bench-bigwindow``) generates the log once, seeded,
in chunks of a day (1,000,000 rows), and caches it under ``${MODELMON_CACHE:-~/.cache/modelmon}``
keyed by the generator's version and the row count, so that a rerun skips the load:

- PostgreSQL: a server of its own from Debian's binaries (as ``tests/integration`` starts
  one), its data directory in the cache; the table is created and filled by one binary
  ``COPY ... FREEZE`` in the same transaction (no WAL at ``wal_level=minimal``), then a BRIN
  index on the timestamp and ``VACUUM ANALYZE``;
- parquet: one directory per day (``date=YYYY-MM-DD/``), row groups of 250,000 rows;
- the reference: 200,000 rows of the same generator without the shift, one parquet file.

For each window (its rows; the window is a filter on the timestamp, ending where the log
ends) it measures, each check a fresh ``modelmon check`` process that believes itself in a
1 GiB container (its ``--max-check-memory`` default is then 256 MiB, as under the chart):

- the database's own full scan, ``SELECT count(*)`` with the same filter, and the pushdown
  check (``sql.pushdown: true``) of a monitor as a user would write it (numeric and
  categorical features, prediction, target; binned methods, ks and wasserstein from the
  quantile grid, data quality, performance): wall time of the check process, time of the
  statements it sent (the server's ``log_min_duration_statement``), the ratio to the scan,
  and the process's peak RSS (its ``VmHWM``, read as it exits);
- row mode where it still fits: the same monitor on PostgreSQL up to ``maxRows`` and on the
  parquet directory (partitions pruned) when the window fits the memory bound; the parquet
  path streamed beyond that, with binned methods only.

Then the plans of the pushdown statements at the largest window up to 10,000,000 rows
(``auto_explain``: parallel workers launched, scans, sorts spilled). It writes its JSON
(``--json``, by default ``bigwindow-last.json`` in the cache) and its section of
``benchmarks/README.md`` (``--out``; ``run.py`` keeps the section when it rewrites the
file). ``--rows 6000 --per-day 2000 --windows 1000,6000`` is the smoke test
(``tests/bench/test_bench_bigwindow.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import cache_dir, machine  # noqa: E402

MIB = 1024 * 1024
#: Bump when the generated rows change: the cached table and files are keyed by it.
GENERATOR = 1
SEED = 21
START = datetime(2026, 9, 1, tzinfo=UTC)
ROWS_PER_DAY = 1_000_000
ROW_GROUP = 250_000
REFERENCE_ROWS = 200_000
#: The container ``modelmon check`` is told it runs in: the chart's default limit, whose
#: quarter (256 MiB) is the check's memory bound.
CONTAINER_BYTES = 1024 * MIB
EXPLAIN_ROWS = 10_000_000
#: The goals of issue 21, point 5.
GOAL_RSS_MIB = 300.0
GOAL_SCAN_RATIO = 5.0
NUMERIC = ("x0", "x1", "x2", "x3")
CATEGORICAL = {"c0": [f"a{i}" for i in range(5)], "c1": [f"b{i:02d}" for i in range(20)]}
TABLE = ("CREATE TABLE predictions (ts timestamptz NOT NULL, x0 float8, x1 float8, "
         "x2 float8, x3 float8, c0 text, c1 text, score float8, approved int4, "
         "defaulted int4)")
QUERY = ("SELECT ts, x0, x1, x2, x3, c0, c1, score, approved, defaulted FROM predictions "
         "WHERE ts >= :window_start AND ts < :window_end")
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class Layout:
    """The log: ``rows`` rows ``step`` seconds apart from ``START``, in chunks of a day."""

    rows: int
    per_day: int = ROWS_PER_DAY

    @property
    def step_us(self) -> int:
        return 86_400_000_000 // self.per_day

    @property
    def end(self) -> datetime:
        return START + timedelta(microseconds=self.rows * self.step_us)

    @property
    def key(self) -> str:
        return f"bigwindow-v{GENERATOR}-{self.rows}-{self.per_day}"

    def chunks(self) -> Iterator[tuple[int, int, int]]:
        """(index, first row, rows) of each chunk."""
        for i, first in enumerate(range(0, self.rows, self.per_day)):
            yield i, first, min(self.per_day, self.rows - first)

    def window(self, rows: int) -> tuple[datetime, str]:
        """The start of the window of the last ``rows`` rows, and its length as a duration."""
        micros = rows * self.step_us
        text = f"{micros // 1_000_000}s" if micros % 1_000_000 == 0 else f"{micros // 1000}ms"
        return self.end - timedelta(microseconds=micros), text


def columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    """The values of ``n`` rows: four numeric shapes (one rounded so values tie, one with
    NaN), two categorical columns, a probability, its decision and a label."""
    x0 = rng.normal(50.0 + 2.0 * shift, 10.0, n)
    x1 = rng.lognormal(3.0 + 0.1 * shift, 0.5, n)
    x1[rng.random(n) < 0.01] = np.nan
    x2 = rng.gamma(2.0, 2.0 * (1 + 0.05 * shift), n)
    x3 = np.round(rng.uniform(0.0, 100.0, n), 1)
    p0 = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    p0 = p0 + shift * np.array([-0.05, 0.0, 0.0, 0.0, 0.05])
    c0 = rng.choice(5, n, p=p0 / p0.sum())
    c1 = rng.integers(0, 20, n)
    logit = (x0 - 50.0) / 10.0 + 0.3 * (c0 == 4) - 0.2
    score = 1.0 / (1.0 + np.exp(-logit))
    return {"x0": x0, "x1": x1, "x2": x2, "x3": x3, "c0": c0, "c1": c1, "score": score,
            "approved": (score >= 0.5).astype(np.int32),
            "defaulted": (rng.random(n) < score).astype(np.int32)}


def chunk(layout: Layout, index: int, first: int, n: int) -> dict[str, np.ndarray]:
    """One chunk of the log (seeded by its index: the same rows whichever is written)."""
    values = columns(np.random.default_rng([SEED, GENERATOR, index]), n, shift=1.0)
    values["ts_us"] = ((START - PG_EPOCH) // timedelta(microseconds=1)
                       + (first + np.arange(n, dtype=np.int64)) * layout.step_us)
    return values


def arrow(values: dict[str, np.ndarray], *, ts_offset_us: int) -> pa.Table:
    """The chunk as the parquet files hold it."""
    data: dict[str, pa.Array] = {
        "ts": pa.array(values["ts_us"] + ts_offset_us, pa.timestamp("us", tz="UTC"))}
    for name in NUMERIC:
        data[name] = pa.array(values[name], pa.float64(), from_pandas=False)
    for name, levels in CATEGORICAL.items():
        data[name] = pa.DictionaryArray.from_arrays(
            pa.array(values[name], pa.int32()), pa.array(levels)).cast(pa.string())
    data["score"] = pa.array(values["score"])
    data["approved"] = pa.array(values["approved"])
    data["defaulted"] = pa.array(values["defaulted"])
    return pa.table(data)


def copy_rows(values: dict[str, np.ndarray]) -> bytes:
    """The chunk as PostgreSQL's binary COPY tuples: fixed-width rows (the category labels of
    a column all have one length), one numpy record per row."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    layout: list[tuple[str, str, np.ndarray]] = [("ts", ">i8", values["ts_us"])]
    layout += [(name, ">f8", values[name]) for name in NUMERIC]
    for name, levels in CATEGORICAL.items():
        width = len(levels[0])
        labels = np.array([s.encode() for s in levels], dtype=f"S{width}")
        layout.append((name, f"S{width}", labels[values[name]]))
    layout += [("score", ">f8", values["score"]), ("approved", ">i4", values["approved"]),
               ("defaulted", ">i4", values["defaulted"])]
    for name, kind, _ in layout:
        fields += [(f"len_{name}", ">i4"), (name, kind)]
    rows = np.empty(len(values["ts_us"]), dtype=np.dtype(fields))
    rows["n"] = len(layout)
    for name, kind, column in layout:
        rows[f"len_{name}"] = np.dtype(kind).itemsize
        rows[name] = column
    return rows.tobytes()


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def write_reference(path: Path) -> None:
    values = columns(np.random.default_rng([SEED, GENERATOR, 10**6]), REFERENCE_ROWS, 0.0)
    start = (START - timedelta(days=30) - PG_EPOCH) // timedelta(microseconds=1)
    values["ts_us"] = start + np.arange(REFERENCE_ROWS, dtype=np.int64) * 1_000_000
    tmp = path.with_suffix(".tmp")
    pq.write_table(arrow(values, ts_offset_us=_pg_to_unix()), tmp, row_group_size=ROW_GROUP)
    tmp.rename(path)


def _pg_to_unix() -> int:
    return (PG_EPOCH - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def write_parquet(layout: Layout, root: Path) -> None:
    """The log as ``root/date=YYYY-MM-DD/part-N.parquet``; ``root.complete`` when done."""
    done = root.with_suffix(".complete")
    if done.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    offset = _pg_to_unix()
    for index, first, n in layout.chunks():
        table = arrow(chunk(layout, index, first, n), ts_offset_us=offset)
        us = table.column("ts").cast(pa.int64()).to_numpy()
        days = us // 86_400_000_000
        for day in np.unique(days):
            lo, hi = np.searchsorted(days, [day, day + 1])
            date = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(day))).date()
            folder = root / f"date={date.isoformat()}"
            folder.mkdir(exist_ok=True)
            pq.write_table(table.slice(lo, hi - lo), folder / f"part-{index:05d}.parquet",
                           row_group_size=ROW_GROUP)
        print(f"parquet: chunk {index + 1} of {-(-layout.rows // layout.per_day)}",
              file=sys.stderr, flush=True)
    done.write_text(f"{layout.rows}\n")


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs (the newest major version installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise SystemExit("PostgreSQL is not installed: run hack/install-test-deps.sh")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def pg_home(layout: Layout, cache: Path) -> Path:
    """Where the server's files live: in the cache, unless the cache is under a directory
    the ``postgres`` user cannot enter (root's home): then under /var/tmp."""
    home = cache / layout.key / "postgres"
    if _as_postgres():
        probe = home.parent
        while not probe.exists():
            probe = probe.parent
        reachable = subprocess.run([*_as_postgres(), "test", "-x", str(probe)],
                                   capture_output=True, check=False).returncode == 0
        if not reachable:
            home = Path("/var/tmp/modelmon-cache") / layout.key / "postgres"
    return home


@dataclass
class Server:
    """A running PostgreSQL of the benchmark: its port, passwords and log."""

    home: Path
    port: int
    password: str
    log: Path

    def connect(self, *, autocommit: bool = True) -> Any:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               password=self.password, dbname="postgres",
                               autocommit=autocommit)

    def url(self) -> str:
        return f"postgresql+psycopg://monitor:{self.password}@127.0.0.1:{self.port}/postgres"

    def log_size(self) -> int:
        return self.log.stat().st_size

    def durations(self, since: int) -> list[float]:
        """The statements' durations (s) logged since byte ``since`` of the log."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        # Not auto_explain's lines ("duration: ... ms  plan:"), which repeat a statement's.
        return [float(m) / 1e3 for m in
                re.findall(r"duration: ([0-9.]+) ms  (?:statement|parse|bind|execute)", text)]

    def plans(self, since: int) -> list[str]:
        """The plans ``auto_explain`` logged since byte ``since``."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [p for p in re.split(r"\n(?=\S[^\n]*LOG:)", text) if "Query Text" in p]


@contextlib.contextmanager
def postgres(home: Path, *, loading: bool = False) -> Iterator[Server]:
    """Start the server whose data directory is ``home/data`` (``initdb`` first when it has
    none); stop it on exit. ``loading``: no WAL for the table created by the load."""
    bindir = postgres_bin()
    data = home / "data"
    run_dir = Path(tempfile.mkdtemp(prefix="modelmon-bigwindow-pg-"))
    if _as_postgres():
        shutil.chown(run_dir, "postgres")
    pwfile = home / "password"
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        pwfile.write_text(secrets.token_hex(12) + "\n")
        pwfile.chmod(0o600)
        if _as_postgres():
            shutil.chown(home, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run([*_as_postgres(), str(bindir / "initdb"), "-D", str(data), "-U",
                        "postgres", "-E", "UTF8", "--locale=C", "--auth=scram-sha-256",
                        f"--pwfile={pwfile}"], check=True, capture_output=True, timeout=300)
    password = pwfile.read_text().strip()
    port = free_port()
    log = run_dir / "log"
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={run_dir}"
               " -c timezone=UTC -c log_min_duration_statement=0")
    if loading:
        options += (" -c fsync=off -c full_page_writes=off -c wal_level=minimal"
                    " -c max_wal_senders=0 -c maintenance_work_mem=512MB")
    subprocess.run([*_as_postgres(), str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                    "-w", "-t", "300", "-o", options, "start"], check=True,
                   capture_output=True, timeout=330)
    try:
        yield Server(home, port, password, log)
    finally:
        subprocess.run([*_as_postgres(), str(bindir / "pg_ctl"), "-D", str(data), "-m",
                        "fast", "-t", "600", "stop"], capture_output=True, check=False,
                       timeout=660)
        shutil.rmtree(run_dir, ignore_errors=True)


def load_postgres(layout: Layout, server: Server) -> None:
    """Create and fill the table in one transaction (binary COPY, frozen), index it,
    analyse it, and give the monitoring role read access."""
    with server.connect(autocommit=False) as conn:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS predictions")
            cur.execute(TABLE)
            with cur.copy("COPY predictions FROM STDIN (FORMAT binary, FREEZE)") as copy:
                copy.write(COPY_HEADER)
                for index, first, n in layout.chunks():
                    copy.write(copy_rows(chunk(layout, index, first, n)))
                    print(f"postgres: chunk {index + 1} of "
                          f"{-(-layout.rows // layout.per_day)}", file=sys.stderr, flush=True)
                copy.write(COPY_TRAILER)
        conn.commit()
    with server.connect() as conn:
        conn.execute("CREATE INDEX predictions_ts ON predictions USING brin (ts)")
        conn.execute("VACUUM (ANALYZE) predictions")
        conn.execute("DROP ROLE IF EXISTS monitor")
        conn.execute(f"CREATE ROLE monitor LOGIN PASSWORD '{server.password}'")
        conn.execute("GRANT SELECT ON predictions TO monitor")
        conn.execute("CHECKPOINT")


def ensure_postgres(layout: Layout, home: Path) -> None:
    """The loaded data directory (a rerun finds ``home/complete`` and skips the load)."""
    if (home / "complete").exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    with postgres(home, loading=True) as server:
        load_postgres(layout, server)
    (home / "complete").write_text(f"{layout.rows}\n")


def size_of(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


# ------------------------------------------------------------------------------ monitors


def monitor(kind: str, *, reference: Path, window: str, data: Path | None = None,
            max_rows: int = 1_000_000) -> dict[str, Any]:
    """The ModelMonitor a user would write for this log. ``kind``: ``pushdown`` and
    ``sql`` (the table, with and without ``sql.pushdown``), ``parquet`` (the files, the
    same methods), ``parquet-binned`` (the files, binned methods only and no performance:
    what a streamed window scores exactly)."""
    binned = kind == "parquet-binned"
    source: dict[str, Any]
    if kind in ("pushdown", "sql"):
        source = {"sql": {"connectionSecretRef": {"name": "db", "key": "url"}, "query": QUERY,
                          "pushdown": kind == "pushdown", "timeout": "1h",
                          "maxRows": max_rows}}
    else:
        assert data is not None
        source = {"url": f"{data}/", "format": "parquet", "prunePartitions": True,
                  "maxBytes": "100Gi"}
    spec: dict[str, Any] = {
        "model": {"name": "credit-risk", "task": "binaryClassification"},
        "reference": {"source": {"url": str(reference), "maxBytes": "1Gi"}},
        "current": {"source": source, "window": window, "minRows": 100},
        "columns": {"timestamp": "ts", "prediction": "approved",
                    "predictionProbability": "score", "target": "defaulted"},
        "drift": {"numericMethod": "psi", "categoricalMethod": "jensenshannon"},
        "dataQuality": {"missingFraction": {"max": 0.05},
                        "outOfRangeFraction": {"max": 0.01},
                        "newCategories": {"max": 0}},
    }
    if not binned:
        spec["drift"]["features"] = {"x2": {"method": "ks"}, "x3": {"method": "wasserstein"}}
        spec["performance"] = {"metrics": [
            {"name": "accuracy", "min": 0.6}, {"name": "precision", "min": 0.5},
            {"name": "recall", "min": 0.5}, {"name": "f1", "min": 0.5},
            {"name": "brier", "max": 0.25}, {"name": "logLoss", "max": 0.7}]}
    else:
        spec["columns"] = {"timestamp": "ts", "exclude": ["approved", "score", "defaulted"]}
    return {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
            "metadata": {"name": f"bigwindow-{kind}"}, "spec": spec}


#: Runs ``modelmon check`` in a process that reads its memory limit from the file given
#: first (as from its cgroup), writes its peak RSS (``VmHWM``, KiB) into the second at
#: exit, and exits with the CLI's code.
CHILD = ("import atexit, sys, pathlib\n"
         "import modelmon.api.policy as policy\n"
         "policy.CGROUP_MEMORY_FILES = (pathlib.Path(sys.argv[1]),)\n"
         "def hwm():\n"
         "    for line in open('/proc/self/status'):\n"
         "        if line.startswith('VmHWM:'):\n"
         "            pathlib.Path(sys.argv[2]).write_text(line.split()[1])\n"
         "atexit.register(hwm)\n"
         "from modelmon.cli import main\n"
         "sys.exit(main(sys.argv[3:]))\n")


@dataclass
class Check:
    """One ``modelmon check`` process: its outcome, wall time, peak RSS and statements."""

    code: int
    wall: float
    rss_mib: float
    statements: list[float]
    status: dict[str, Any]
    error: str


def run_check(path: Path, at: datetime, secrets_: Sequence[str], limit_file: Path,
              server: Server | None) -> Check:
    since = server.log_size() if server is not None else 0
    hwm_file = limit_file.with_name("hwm")
    hwm_file.unlink(missing_ok=True)
    args = [sys.executable, "-c", CHILD, str(limit_file), str(hwm_file), "check", str(path),
            "-o", "json",
            "--at", at.isoformat().replace("+00:00", "Z"), "--fail-on", "critical"]
    for s in secrets_:
        args += ["--secret", s]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent / "operator"),
                                                     env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, error = out.read().decode(), err.read().decode()
    parsed: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
    time.sleep(0.2)  # the server writes its log line after the reply
    # Not the child's ru_maxrss: Linux carries the parent's RSS at fork into it.
    rss = int(hwm_file.read_text()) / 1024 if hwm_file.exists() else float("nan")
    return Check(proc.returncode, wall, rss,
                 server.durations(since) if server is not None else [], parsed,
                 (error or text)[-2000:] if proc.returncode not in (0, 1) else "")


def summary(check: Check) -> dict[str, Any]:
    """What the report keeps of a check's status."""
    status = check.status
    last = status.get("lastCheck") or {}
    drift = status.get("drift") or {}
    features = {f["name"]: {k: f.get(k) for k in ("method", "statistic", "drifted",
                                                  "statisticErrorBound")}
                for f in drift.get("features", [])}
    performance = dict(status.get("performance") or {})
    return {"code": check.code, "wall_s": check.wall, "rss_mib": check.rss_mib,
            "statements_s": sum(check.statements), "statements": len(check.statements),
            "phase": status.get("phase"), "current_rows": last.get("currentRows"),
            "features": features, "performance": performance, "error": check.error}


def scan(server: Server, start: datetime, end: datetime) -> float:
    """The database's own full scan of the window: ``SELECT count(*)`` with the filter."""
    with server.connect() as conn:
        t = time.perf_counter()
        conn.execute("SELECT count(*) FROM predictions WHERE ts >= %s AND ts < %s",
                     (start, end)).fetchone()
        return time.perf_counter() - t


def plan_summary(plan: str) -> dict[str, Any]:
    """What an ``auto_explain`` plan says about the statement: its kind, scans, workers."""
    text = plan.split("Query Text:", 1)[1] if "Query Text:" in plan else plan
    if "modelmon_a" in text:  # every part beside the counts' row (generation 3)
        kind = ONE_STATEMENT
    elif "percentile_disc" in text.lower():
        kind = "grids (percentile_disc)"
    elif "row_number" in text.lower():
        kind = "grids (ROW_NUMBER)"
    elif "grouping sets" in text.lower():
        kind = "categories (GROUPING SETS)"
    elif " as lt," in text.lower():
        kind = "label pairs (GROUP BY)"
    elif "group by" in text.lower():
        kind = "categories (GROUP BY)"
    elif " limit " in text.lower():
        kind = "probe"
    else:
        kind = "counts"
    duration = re.search(r"duration: ([0-9.]+) ms", plan)
    launched = [int(n) for n in re.findall(r"Workers Launched: (\d+)", plan)]
    planned = [int(n) for n in re.findall(r"Workers Planned: (\d+)", plan)]
    nodes = sorted(set(re.findall(r"->\s+([A-Z][A-Za-z ]+?)(?: on | using |\s+\(|$)", plan,
                                  re.MULTILINE)))
    return {"kind": kind, "seconds": float(duration.group(1)) / 1e3 if duration else None,
            "workers_planned": max(planned, default=0),
            "workers_launched": max(launched, default=0), "nodes": nodes,
            "disk_sort_kb": sum(int(n) for n in re.findall(r"Disk: (\d+)kB", plan))}


def explain(server: Server, check: Any) -> list[dict[str, Any]]:
    """Run ``check`` with ``auto_explain`` on for the monitoring role; the plans."""
    settings = {"session_preload_libraries": "auto_explain",
                "auto_explain.log_min_duration": "0", "auto_explain.log_analyze": "on",
                "auto_explain.log_timing": "off", "auto_explain.log_buffers": "off"}
    with server.connect() as conn:
        for k, v in settings.items():
            conn.execute(f"ALTER ROLE monitor SET {k} = '{v}'")
    since = server.log_size()
    try:
        check()
    finally:
        with server.connect() as conn:
            conn.execute("ALTER ROLE monitor RESET ALL")
    time.sleep(0.2)
    plans = [p for p in server.plans(since) if "predictions" in p]
    return [{**plan_summary(p), "plan": p[-6000:]} for p in plans]


# ----------------------------------------------------------------------------- the run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    layout = Layout(args.rows, per_day=args.per_day)
    cache = args.cache
    root = cache / layout.key
    root.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    t = time.perf_counter()
    home = pg_home(layout, cache)
    ensure_postgres(layout, home)
    parquet = root / "parquet"
    write_parquet(layout, parquet)
    reference = root / "reference.parquet"
    if not reference.exists():
        write_reference(reference)
    prepare_s = time.perf_counter() - t
    windows = sorted({min(w, layout.rows) for w in args.windows})
    # The plans of a window of at most 10,000,000 rows: the statements are the same at any
    # size, and a run with auto_explain costs as much as a check.
    explained = max((w for w in windows if w <= EXPLAIN_ROWS), default=windows[0])
    work = Path(tempfile.mkdtemp(prefix="modelmon-bigwindow-"))
    limit_file = work / "memory.max"
    limit_file.write_text(f"{CONTAINER_BYTES}\n")
    results: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    try:
        with postgres(home) as server:
            version = server.connect().execute("SHOW server_version").fetchone()[0]
            secret = [f"db/url={server.url()}"]

            def check(kind: str, rows: int, *, pg: bool) -> Check:
                _, window = layout.window(rows)
                spec = monitor(kind, reference=reference, window=window, data=parquet)
                path = work / f"{kind}-{rows}.yaml"
                path.write_text(yaml.safe_dump(spec, sort_keys=False))
                return run_check(path, layout.end, secret if pg else [], limit_file,
                                 server if pg else None)

            def record(kind: str, rows: int, c: Check, **extra: Any) -> None:
                results.append({"kind": kind, "rows": rows, "generation": GENERATION,
                                **summary(c), **extra,
                                "load": os.getloadavg()[0]})
                print(f"{kind:15} {rows:>11,} rows  {c.wall:8.2f} s  "
                      f"{c.rss_mib:6.0f} MiB  code {c.code}  {c.error[-300:]}",
                      file=sys.stderr, flush=True)

            for rows in windows:
                start, _ = layout.window(rows)
                scan(server, start, layout.end)  # warm the page cache
                scans: list[float] = []
                for _ in range(args.repeats):
                    scans.append(scan(server, start, layout.end))
                    c = check("pushdown", rows, pg=True)
                    record("pushdown", rows, c, scan_s=scans[-1])
                print(f"scan            {rows:>11,} rows  {statistics.median(scans):8.2f} s",
                      file=sys.stderr, flush=True)
                if rows <= 1_000_000:
                    record("sql", rows, check("sql", rows, pg=True))
                    record("parquet", rows, check("parquet", rows, pg=False))
                else:
                    record("parquet-binned", rows, check("parquet-binned", rows, pg=False))
            if not args.no_explain:
                plans = explain(server, lambda: check("pushdown", explained, pg=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cache_bytes = size_of(root) + (size_of(home) if not home.is_relative_to(root) else 0)
    return {"started": started.isoformat(), "generation": GENERATION,
            "rows": layout.rows, "per_day": layout.per_day,
            "windows": windows, "repeats": args.repeats, "generator": GENERATOR,
            "machine": machine(), "loads": [load_before[0], os.getloadavg()[0]],
            "loads_before": list(load_before), "loads_after": list(os.getloadavg()),
            "postgres": version, "cache": {"parquet": str(parquet), "postgres": str(home),
                                           "bytes": cache_bytes},
            "prepare_s": prepare_s, "container_bytes": CONTAINER_BYTES,
            "explained": explained,
            "results": results, "plans": plans}


# ---------------------------------------------------------------------------- the report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def per_window(run: dict[str, Any]) -> list[dict[str, Any]]:
    """For each window: the scan's and the pushdown check's medians, their ratio, the worst
    peak RSS of its pushdown checks."""
    out = []
    for rows in run["windows"]:
        pushed = [r for r in run["results"] if r["kind"] == "pushdown" and r["rows"] == rows]
        scan_s = _median([r["scan_s"] for r in pushed])
        statements = _median([r["statements_s"] for r in pushed])
        out.append({"rows": rows, "scan_s": scan_s, "statements_s": statements,
                    "ratio": statements / scan_s if scan_s > 0 else float("nan"),
                    "wall_s": _median([r["wall_s"] for r in pushed]),
                    "rss_mib": max((r["rss_mib"] for r in pushed), default=float("nan")),
                    "ok": all(r["code"] in (0, 1) and r["current_rows"] == rows
                              for r in pushed) and bool(pushed),
                    "load": max((r["load"] for r in pushed), default=float("nan")),
                    "generation": min((r.get("generation", 1) for r in pushed), default=1)})
    return out


def goals(run: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(goal, target, measured, passed) of issue 21, point 5."""
    windows = per_window(run)
    worst = windows[-1]
    fat = max(windows, key=lambda w: w["rss_mib"])
    failed = [w["rows"] for w in windows if not w["ok"]]
    return [
        ("pushdown check (`sql.pushdown: true`) on PostgreSQL: time of the statements it sends "
         "over the database's own full scan of the window (`SELECT count(*)` with the same "
         "filter), at the largest window", f"<= {GOAL_SCAN_RATIO:g}x",
         f"{worst['ratio']:.1f}x ({worst['rows']:,} rows)",
         worst["ratio"] <= GOAL_SCAN_RATIO and not failed),
        ("peak RSS of the `modelmon check` process during the pushdown check, every window",
         f"< {GOAL_RSS_MIB:g} MiB", f"{fat['rss_mib']:.0f} MiB at worst ({fat['rows']:,} rows)",
         fat["rss_mib"] < GOAL_RSS_MIB and not failed),
    ]


KINDS = {
    "pushdown": ("PostgreSQL, `sql.pushdown: true`", "the monitor"),
    "sql": ("PostgreSQL, row mode (whole load)", "the monitor"),
    "parquet": ("parquet, partitions pruned", "the monitor"),
    "parquet-binned": ("parquet, partitions pruned", "binned drift + data quality"),
}


def outcome(r: dict[str, Any]) -> str:
    if r["code"] not in (0, 1):
        first = (r["error"].strip().splitlines() or ["?"])[-1]
        return f"failed: {first[:160]}"
    return f"{r['phase']}, {r['current_rows']:,} rows" if r["current_rows"] is not None \
        else str(r["phase"])


#: What the plans show, by the statements' generation (``GENERATION``).
WHERE_THE_TIME_GOES = {
    1: "Where the time goes: `count(*)` evaluates nothing per row, while the counts "
       "statement evaluates each column's bin, range, fence and sum expressions for "
       "every row; PostgreSQL has no parallel plan for `GROUPING SETS`, so the "
       "categories are counted in one process; and each grid column is sorted whole "
       "(spilling to disk with the default `work_mem`), then numbered in one process.",
    2: "Where the time goes: `count(*)` evaluates nothing per row, while the counts "
       "statement runs about 80 aggregates a row (each column's bin, range and fence "
       "counts as `count(*) FILTER`, its sums), in parallel; the categories are one "
       "parallel `GROUP BY` of their combinations, summed per column by the check; the "
       "grids are one `percentile_disc` per column, each a sort of the column's finite "
       "values in one process (an ordered-set aggregate has no parallel plan).",
    3: "Where the time goes: the one statement holds the same parts, each still planned "
       "as before (the counts, the categories' `GROUP BY` and the label pairs' in "
       "parallel, under a `Gather` each; each grid column's `percentile_disc` a sort in "
       "one process, its fractions computed once from the counts' finite count); it "
       "saves the round trips, not the work.",
}
#: The pushdown statements measured: 1, as first merged; 2, PostgreSQL's own forms (JIT
#: off, work_mem, count(*) FILTER, percentile_disc grids, categories by one GROUP BY);
#: 3, those as one statement per window.
GENERATION = 3
#: What each generation's statements were, for a window measured before the latest.
GENERATIONS = {
    1: "the statements as first merged (before JIT off, `work_mem`, `count(*) FILTER`, "
       "`percentile_disc` grids and categories by one `GROUP BY` on PostgreSQL)",
    2: "PostgreSQL's own forms sent one by one (before one statement per window)",
}
#: The plan kind of generation 3's statement.
ONE_STATEMENT = "one statement (counts, categories, label pairs, grids)"


def section(run: dict[str, Any]) -> list[str]:
    """The report's "Big windows" section (markdown lines)."""
    m = run["machine"]
    before, after = run["loads_before"], run["loads_after"]
    gib = run["cache"]["bytes"] / 1024**3
    lines = [
        "## Big windows",
        "",
        f"`python benchmarks/bigwindow.py` (`make bench-bigwindow`): one prediction log of "
        f"{run['rows']:,} rows ({run['per_day']:,} a day, 4 numeric and 2 categorical "
        "features, a probability, its decision and a label), in PostgreSQL and as parquet "
        "(one directory per day), checked by `modelmon check` in a process told it runs in "
        f"a {run['container_bytes'] // MIB} MiB container (its check memory bound is then a "
        "quarter of that, as under the chart). The monitor is one a user would write: psi "
        "and jensenshannon, ks on `x2` and wasserstein on `x3` (read off the quantile grid "
        "in pushdown), data quality, six performance metrics; the window is a filter on the "
        "timestamp ending where the log ends. The log is generated once (seeded) and cached "
        f"({gib:.1f} GiB under `{_home(run['cache']['parquet'])}`"
        + ("" if _home(run["cache"]["postgres"]) == _home(run["cache"]["parquet"])
           else f" and `{_home(run['cache']['postgres'])}`")
        + "); a rerun skips the load.",
        "",
        "| goal | target | measured | result |",
        "|---|---|---|---|",
    ]
    for name, target, figure, ok in goals(run):
        lines.append(f"| {name} | {target} | {figure} | {'PASS' if ok else 'FAIL'} |")
    lines += [
        "",
        f"- date: {datetime.fromisoformat(run['started']):%Y-%m-%d %H:%M} UTC; "
        f"PostgreSQL {run['postgres']} with its defaults (2 parallel workers a "
        "gather, 4 MB `work_mem`, JIT on)"
        + ("" if run.get("generation", 1) < 2 else "; the pushdown transaction sets its own "
           "`jit = off` and `work_mem` (256 MiB: `modelmon check`'s unlimited source budget, "
           "capped)"),
        f"- CPU: {m['cpu']}, {m['cpus']} cores; RAM {m['ram']}",
        f"- load average (1, 5, 15 min): {before[0]:.2f} {before[1]:.2f} {before[2]:.2f} at "
        f"the start, {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} at the end (the machine "
        "is shared)",
        "",
        "| window (rows) | full scan, `count(*)` (s) | pushdown statements (s) | over the scan "
        "| pushdown check, whole process (s) | peak RSS (MiB) | load |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    windows = per_window(run)
    for w in windows:
        older = "\\*" if w["generation"] < run.get("generation", 1) else ""
        lines.append(f"| {w['rows']:,}{older} | {w['scan_s']:.2f} | {w['statements_s']:.2f} "
                     f"| {w['ratio']:.1f}x | {w['wall_s']:.1f} | {w['rss_mib']:.0f} "
                     f"| {w['load']:.2f} |")
    earlier = sorted({w["generation"] for w in windows
                      if w["generation"] < run.get("generation", 1)})
    if earlier:
        lines += ["", "\\* measured with "
                  + "; or ".join(GENERATIONS[g] for g in earlier) + "; not rerun since."]
    lines += [
        "",
        "Row mode, where it still fits:",
        "",
        "| window (rows) | source | methods | wall (s) | peak RSS (MiB) | outcome |",
        "|---:|---|---|---:|---:|---|",
    ]
    for r in run["results"]:
        if r["kind"] == "pushdown":
            continue
        where, methods = KINDS[r["kind"]]
        lines.append(f"| {r['rows']:,} | {where} | {methods} | {r['wall_s']:.1f} "
                     f"| {r['rss_mib']:.0f} | {outcome(r)} |")
    if run["plans"]:
        lines += [
            "",
            f"The pushdown statements at {run.get('explained', run['windows'][-1]):,} rows as "
            "PostgreSQL ran them (one more check with `auto_explain`, `log_analyze` without "
            "timing):",
            "",
            "| statement | time (s) | parallel workers planned / launched | plan nodes "
            "| sort spilled to disk (MiB) |",
            "|---|---:|---:|---|---:|",
        ]
        for p in run["plans"]:
            secs = "" if p["seconds"] is None else f"{p['seconds']:.2f}"
            lines.append(f"| {p['kind']} | {secs} | {p['workers_planned']} / "
                         f"{p['workers_launched']} | {', '.join(p['nodes'])} "
                         f"| {p['disk_sort_kb'] / 1024:.0f} |")
        lines += ["", WHERE_THE_TIME_GOES[min(run.get("generation", 1), GENERATION)]]
    lines += [
        "",
        "- **full scan**: `SELECT count(*) FROM predictions WHERE ts >= $1 AND ts < $2` "
        "(a BRIN index on `ts`; the table is loaded in time order), after one untimed scan "
        "that warms the page cache, each time just before a pushdown check. **pushdown "
        "statements**: the sum of the durations the server logs "
        "(`log_min_duration_statement = 0`) for the statements the check sent; **whole "
        "process** adds the interpreter's start, reading and fitting the reference "
        f"({REFERENCE_ROWS:,} rows of parquet) and the status. "
        + (f"Medians of {run['repeats']} runs." if run["repeats"] > 1 else "One run each.")
        + (f" Measured in {len(run['runs'])} runs of the script (`--add-to`), started "
           + ", ".join(f"{datetime.fromisoformat(t):%H:%M}" for t in run["runs"])
           + " UTC." if run.get("runs") else ""),
        "- **peak RSS**: the check process's high-water mark (its `VmHWM`, read as it "
        "exits), the interpreter, its imports and the fitted reference included.",
        "- Row mode on PostgreSQL is shown up to `maxRows` (1,000,000 by default); on "
        "parquet the monitor loads its window whole while it fits the memory bound, and a "
        "larger window is streamed one row group at a time, so there it is shown with "
        "binned methods only (ks, wasserstein and the performance metrics would hold every "
        "value).",
        "",
    ]
    return lines


def _home(path: str) -> str:
    home = str(Path.home())
    text = str(Path(path).parent)
    return "~" + text[len(home):] if text.startswith(home) else text


def splice(readme: Path, lines: Sequence[str]) -> None:
    """Put the section into ``readme``: in place of the one there, else before "What is
    measured"."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\n"
    block = "\n".join(lines).rstrip("\n") + "\n\n"
    found = re.search(r"^## Big windows\n.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if found:
        text = text[:found.start()] + block + text[found.end():]
    else:
        at = text.find("## What is measured")
        text = text + ("\n" if not text.endswith("\n") else "") + block if at < 0 \
            else text[:at] + block + text[at:]
    readme.write_text(text)


def last_run(cache: Path | None = None) -> dict[str, Any] | None:
    """The saved result of the last full run, if any (``run.py`` reports it)."""
    path = (cache or cache_dir()) / "bigwindow-last.json"
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(path.read_text()))
    return None


def merged(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the windows ``new`` measured taken from ``new`` (and its end's load);
    the plans of ``saved`` unless ``new`` has some."""
    again = set(new["windows"])
    out = dict(saved)
    out["windows"] = sorted(set(saved["windows"]) | again)
    out["results"] = [r for r in saved["results"] if r["rows"] not in again] + new["results"]
    out["results"].sort(key=lambda r: r["rows"])
    out["loads_after"], out["loads"][1] = new["loads_after"], new["loads"][1]
    if new["plans"]:
        out["plans"], out["explained"] = new["plans"], new["explained"]
    out["cache"] = new["cache"]
    out["generation"] = new.get("generation", 1)
    # The runs of the script whose figures the result still holds.
    earlier = saved.get("run_of") or {str(w): saved.get("runs", [saved["started"]])
                                      for w in saved["windows"]}
    out["run_of"] = {**{w: runs for w, runs in earlier.items() if int(w) not in again},
                     **{str(w): [new["started"]] for w in again}}
    out["runs"] = sorted({t for runs in out["run_of"].values() for t in runs})
    out["started"] = out["runs"][0]
    # Each run's load at its start; the report's is the first remaining run's.
    starts = {**saved.get("run_loads", {saved["started"]: saved["loads_before"]}),
              new["started"]: new["loads_before"]}
    out["run_loads"] = {t: starts[t] for t in out["runs"] if t in starts}
    if out["runs"][0] in starts:
        out["loads_before"] = starts[out["runs"][0]]
    if set(out["windows"]) == again:  # nothing of ``saved`` left but its plans
        out.update({k: new[k] for k in ("loads_before", "loads", "machine", "postgres")})
    out["repeats"] = new["repeats"] if set(out["windows"]) == again \
        else min(saved["repeats"], new["repeats"])
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=50_000_000, help="rows of the log")
    p.add_argument("--per-day", type=int, default=ROWS_PER_DAY, help="rows a day")
    p.add_argument("--windows", default="1000000,10000000,50000000",
                   help="comma-separated window sizes, in rows")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None,
                   help="where the data is cached (default: ${MODELMON_CACHE:-~/.cache/"
                        "modelmon})")
    p.add_argument("--no-explain", action="store_true",
                   help="skip the run with auto_explain at the largest window")
    p.add_argument("--json", type=Path, default=None,
                   help="write the result here (default: bigwindow-last.json in the cache)")
    p.add_argument("--out", type=Path, default=HERE / "README.md",
                   help="the report whose 'Big windows' section is rewritten")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only rewrite the section from a saved result")
    p.add_argument("--add-to", type=Path, default=None,
                   help="a saved result whose figures for the windows measured now are "
                        "replaced (the others kept); saved back to --json")
    args = p.parse_args(argv)
    args.windows = [int(w) for w in args.windows.split(",") if w.strip()]
    args.cache = args.cache or cache_dir()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        run = json.loads(args.from_json.read_text())
    else:
        run = measure(args)
        if args.add_to is not None:
            run = merged(json.loads(args.add_to.read_text()), run)
        out = args.json or args.cache / "bigwindow-last.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(run, indent=1))
    splice(args.out, section(run))
    for name, target, figure, ok in goals(run):
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure} (target {target})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``engine: duckdb`` on url sources: parquet windows aggregated by an embedded DuckDB from
the files' streamed batches, against row mode on the same files; refusals; the url source's
boundaries; the peak memory of a window several times the check's limit."""

from __future__ import annotations

import dataclasses
import http.server
import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from loopback import HttpServers
from modelmon.api.policy import Egress, Policy
from modelmon.api.v1alpha1 import ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import run_check
from pushdown_data import (
    COLUMNS,
    METHODS,
    NOW,
    WINDOW_ROWS,
    assert_same,
    current_rows,
    monitor,
    reference_rows,
)

pytest.importorskip("duckdb")
pytest.importorskip("duckdb_engine")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pushdown tests' log as parquet: the reference in one file, the current window
    in a prefix of two files with small row groups (several batches, two schemas' worth of
    integer columns: one file has NULLs in them, the other none)."""
    base = tmp_path_factory.mktemp("parquet")
    reference_rows()[list(COLUMNS)].to_parquet(base / "ref.parquet", index=False)
    current = current_rows()[list(COLUMNS)]
    (base / "cur").mkdir()
    half = len(current) // 2
    current.iloc[:half].to_parquet(base / "cur" / "a.parquet", index=False,
                                   row_group_size=300)
    rest = current.iloc[half:].copy()
    rest["age"] = rest["age"].fillna(30).astype("int64")
    rest.to_parquet(base / "cur" / "b.parquet", index=False, row_group_size=500)
    return base


def url_monitor(task: str, numeric: str, categorical: str, *, engine: bool,
                url: str = "cur/", **over: Any) -> ModelMonitorSpec:
    """The pushdown tests' monitor, reading the parquet files instead of the database."""
    doc = monitor(task, numeric, categorical, pushdown=False).model_dump(
        by_alias=True, exclude_none=True, mode="json")
    doc["reference"]["source"] = {"url": "ref.parquet"}
    doc["current"]["source"] = {"url": url, **({"engine": "duckdb"} if engine else {})}
    doc.update(over)
    return ModelMonitorSpec.model_validate(doc)


def check(spec: ModelMonitorSpec, base: Path, limit: int | None = None,
          allow: tuple[Path, ...] | None = None) -> ModelMonitorStatus:
    policy = dataclasses.replace(Policy.local(), max_memory=limit)
    if allow is not None:
        policy = dataclasses.replace(policy, local_paths=allow)
    return run_check(spec, base_dir=base, now=NOW, policy=policy)


def ready_message(status: ModelMonitorStatus) -> str:
    ready = status.condition("Ready")
    assert ready is not None
    return ready.message or ""


@pytest.mark.parametrize(("numeric", "categorical"), METHODS)
def test_binary_engine_equals_row_mode(files: Path, numeric: str, categorical: str) -> None:
    rows = check(url_monitor("binaryClassification", numeric, categorical, engine=False),
                 files)
    pushed = check(url_monitor("binaryClassification", numeric, categorical, engine=True),
                   files)
    assert pushed.last_check is not None and rows.last_check is not None
    assert pushed.last_check.current_rows == rows.last_check.current_rows == WINDOW_ROWS
    bounds = assert_same(rows, pushed)
    if numeric in ("ks", "wasserstein"):
        assert bounds and all(b > 0 for b in bounds)


@pytest.mark.parametrize("task", ["multiclassClassification", "regression"])
def test_other_tasks_engine_equals_row_mode(files: Path, task: str) -> None:
    rows = check(url_monitor(task, "psi", "chisquare", engine=False), files)
    pushed = check(url_monitor(task, "psi", "chisquare", engine=True), files)
    assert_same(rows, pushed)


def test_a_single_file_under_a_memory_limit(files: Path) -> None:
    rows = check(url_monitor("binaryClassification", "psi", "psi", engine=False,
                             url="cur/a.parquet"), files)
    pushed = check(url_monitor("binaryClassification", "psi", "psi", engine=True,
                               url="cur/a.parquet"), files, limit=1 << 20)
    assert_same(rows, pushed)


def test_confidence_is_not_computed_and_names_engine(files: Path) -> None:
    status = check(url_monitor("binaryClassification", "psi", "psi", engine=True), files)
    assert status.confidence is not None
    assert status.confidence.reason is not None
    assert status.confidence.reason.startswith("spec.current.source.engine:")


@pytest.mark.parametrize(("over", "field"), [
    ({"drift": {"numericMethod": "anderson"}}, "drift.numericMethod"),
    ({"drift": {"features": {"income": {"method": "energy"}}}},
     "drift.features.income.method"),
    ({"performance": {"metrics": [{"name": "rocAuc", "min": 0.5}]}}, "performance.metrics"),
])
def test_exact_only_methods_are_refused_naming_the_field(over: dict[str, Any],
                                                         field: str) -> None:
    with pytest.raises(ValidationError) as info:
        url_monitor("binaryClassification", "psi", "psi", engine=True, **over)
    message = str(info.value)
    assert f"{field}: current.source.engine reads aggregates" in message
    assert "remove engine" in message
    url_monitor("binaryClassification", "psi", "psi", engine=False, **over)  # rows: fine


@pytest.mark.parametrize("source", [
    {"url": "cur.csv"}, {"url": "cur/", "format": "jsonl"}, {"url": "cur"},
    {"sql": {"connectionSecretRef": {"name": "db", "key": "url"}, "query": "SELECT 1"}},
])
def test_engine_goes_with_a_url_of_parquet_files(source: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="engine"):
        url_monitor("binaryClassification", "psi", "psi", engine=False,
                    current={"source": {**source, "engine": "duckdb"}, "window": "6h"})


def test_engine_is_refused_on_the_reference() -> None:
    with pytest.raises(ValidationError, match=r"reference\.source\.engine: applies to "
                                              r"current\.source"):
        url_monitor("binaryClassification", "psi", "psi", engine=True,
                    reference={"source": {"url": "ref.parquet", "engine": "duckdb"}})


def test_a_prefix_with_other_files_is_refused(files: Path, tmp_path: Path) -> None:
    (tmp_path / "cur").mkdir()
    current_rows()[list(COLUMNS)].to_parquet(tmp_path / "cur" / "a.parquet", index=False)
    (tmp_path / "cur" / "b.csv").write_text("ts\n")
    (tmp_path / "ref.parquet").write_bytes((files / "ref.parquet").read_bytes())
    status = check(url_monitor("binaryClassification", "psi", "psi", engine=True), tmp_path)
    assert status.phase == "Failing"
    message = ready_message(status)
    assert message.startswith("spec.current.source.engine: duckdb reads parquet files")
    assert "csv, parquet" in message


def test_a_path_outside_the_allowed_ones_is_refused(files: Path, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ref.parquet").write_bytes((files / "ref.parquet").read_bytes())
    spec = url_monitor("binaryClassification", "psi", "psi", engine=True,
                       url=str(files / "cur") + "/")
    status = check(spec, allowed, allow=(allowed,))
    assert status.phase == "Failing"
    ready = status.condition("Ready")
    assert ready is not None and ready.reason == "SourceUnavailable"
    assert "spec.current.source.url" in ready_message(status)
    assert "--allow-local-path" in ready_message(status)
    # The same files once their directory is allowed.
    assert check(spec, allowed, allow=(allowed, files)).phase != "Failing"


class RangeFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a directory with single byte ranges, as object stores do; counts requests."""

    requests: ClassVar[int] = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        RangeFiles.requests += 1
        super().do_HEAD()

    def do_GET(self) -> None:
        RangeFiles.requests += 1
        wanted = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start = len(data) - int(last) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end + 1 - start))
        self.end_headers()
        self.wfile.write(data[start:end + 1])


def test_remote_files_are_read_within_the_egress_policy(files: Path,
                                                        http_servers: HttpServers) -> None:
    root = http_servers.start(partial(RangeFiles, directory=str(files / "cur")))
    spec = url_monitor("binaryClassification", "psi", "psi", engine=True,
                       url=f"{root}/a.parquet")
    rows = url_monitor("binaryClassification", "psi", "psi", engine=False,
                       url=f"{root}/a.parquet")
    loopback = Policy(local_paths=None, egress=Egress(allow=("127.0.0.0/8",)))
    assert_same(run_check(rows, base_dir=files, now=NOW, policy=loopback),
                run_check(spec, base_dir=files, now=NOW, policy=loopback))
    RangeFiles.requests = 0
    closed = Policy(local_paths=None, egress=Egress())  # loopback refused by default
    status = run_check(spec, base_dir=files, now=NOW, policy=closed)
    ready = status.condition("Ready")
    assert ready is not None and ready.reason == "SourceUnavailable"
    assert ready_message(status).startswith("spec.current.source.url: ")
    assert "refused" in ready_message(status)
    assert RangeFiles.requests == 0


def test_the_byte_budget_holds_for_every_pass(files: Path) -> None:
    size = sum(p.stat().st_size for p in (files / "cur").iterdir())

    def budget(limit: int) -> ModelMonitorSpec:
        return url_monitor("binaryClassification", "ks", "psi", engine=True,
                           current={"source": {"url": "cur/", "engine": "duckdb",
                                               "maxBytes": limit},
                                    "window": "6h", "minRows": 10})

    # Each pass (counts, groups, one grid per column scored by ks) reads the monitored
    # columns once, about the files' size; the budget bounds each pass, not their sum.
    assert check(budget(2 * size), files).last_check is not None
    status = check(budget(size // 2), files)
    assert status.phase == "Failing"
    assert "spec.current.source.maxBytes" in ready_message(status)


def test_a_grid_sort_beyond_duckdbs_memory_is_refused(tmp_path: Path) -> None:
    # ks reads a quantile grid: DuckDB sorts the window's column, which at 2 million
    # values does not fit in its 16 MiB (and it may not spill to disk).
    rng = np.random.default_rng(4)
    for name, rows in (("ref", 5_000), ("cur", 2_000_000)):
        pd.DataFrame({"income": rng.normal(50, 10, rows),
                      "ts": pd.date_range(NOW - timedelta(hours=20), NOW, periods=rows)}
                     ).to_parquet(tmp_path / f"{name}.parquet", index=False,
                                  row_group_size=100_000)
    spec = ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "regression"},
        "reference": {"source": {"url": "ref.parquet"}},
        "current": {"source": {"url": "cur.parquet", "engine": "duckdb"}, "window": "1d"},
        "columns": {"timestamp": "ts"}, "drift": {"numericMethod": "ks"}})
    status = check(spec, tmp_path, limit=4 << 20)
    ready = status.condition("Ready")
    assert ready is not None and ready.reason == "InvalidData"
    message = ready_message(status)
    assert message.startswith("spec.current.source.engine: DuckDB needed more than its "
                              "memory limit of 16MiB")
    assert "ks or wasserstein" in message and "binned method" in message
    psi = spec.model_copy(update={"drift": spec.drift.model_copy(
        update={"numeric_method": "psi"})})
    assert check(psi, tmp_path, limit=4 << 20).phase != "Failing"  # no sort: fits


def test_partitions_outside_the_window_are_not_read(files: Path, tmp_path: Path) -> None:
    # The window is chosen as for rows: pruned partitions first, then the timestamps.
    day = tmp_path / "cur" / f"date={NOW:%Y-%m-%d}"
    day.mkdir(parents=True)
    current_rows()[list(COLUMNS)].to_parquet(day / "a.parquet", index=False)
    old = tmp_path / "cur" / "date=2020-01-01"
    old.mkdir()
    (old / "a.parquet").write_bytes(b"not parquet")
    (tmp_path / "ref.parquet").write_bytes((files / "ref.parquet").read_bytes())
    spec = url_monitor("binaryClassification", "psi", "psi", engine=True,
                       current={"source": {"url": "cur/", "engine": "duckdb",
                                           "prunePartitions": True},
                                "window": "6h", "minRows": 10})
    status = check(spec, tmp_path)
    assert status.last_check is not None, ready_message(status)
    assert status.last_check.current_rows == WINDOW_ROWS
    unpruned = spec.model_copy(update={"current": spec.current.model_copy(update={
        "source": spec.current.source.model_copy(update={"prune_partitions": False})})})
    assert "parquet" in ready_message(check(unpruned, tmp_path))


def test_row_groups_larger_than_the_limit_are_refused(files: Path, tmp_path: Path) -> None:
    (tmp_path / "ref.parquet").write_bytes((files / "ref.parquet").read_bytes())
    (tmp_path / "cur").mkdir()
    current_rows()[list(COLUMNS)].to_parquet(tmp_path / "cur" / "a.parquet", index=False)
    spec = url_monitor("binaryClassification", "psi", "psi", engine=True)
    status = check(spec, tmp_path, limit=16 << 10)
    assert status.phase == "Failing"
    assert ready_message(status).startswith("spec.current.source.url: a row group")
    assert "smaller row groups" in ready_message(status)
    assert check(spec, tmp_path, limit=1 << 20).last_check is not None


def test_a_missing_timestamp_column_is_named(files: Path) -> None:
    spec = url_monitor("binaryClassification", "psi", "psi", engine=True,
                       columns={"timestamp": "when", "prediction": "approved",
                                "target": "defaulted", "predictionProbability": "score",
                                "exclude": ["cls", "pred_cls", "y", "yhat"]})
    status = check(spec, files)
    assert status.phase == "Failing"
    assert ready_message(status).startswith("spec.columns.timestamp:")


def test_duckdb_runs_with_no_file_or_network_access(tmp_path: Path) -> None:
    import duckdb

    from modelmon.sources.url.aggregated import duckdb_config

    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    duck = duckdb.connect(":memory:", config=duckdb_config(8 << 20))
    for statement in (f"SELECT * FROM read_csv('{secret}')",
                      f"SELECT * FROM read_parquet('{tmp_path}/x.parquet')",
                      "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
                      f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
                      "SET enable_external_access = true",
                      "INSTALL httpfs"):
        with pytest.raises(duckdb.Error):
            duck.execute(statement)
    assert not (tmp_path / "out.csv").exists()
    assert duck.execute("SELECT current_setting('memory_limit')").fetchone() == ("16.0 MiB",)


#: Rows of the big window: a check that loads it whole peaks about 150 MiB above the
#: baseline (measured), many times the memory limit below; streamed into DuckDB, about
#: 25 MiB whatever the rows (measured with 1, 1.5 and 3 million).
ROWS = 1_500_000
MEASURE = textwrap.dedent("""\
    import dataclasses, json, sys
    from datetime import datetime
    from pathlib import Path
    from modelmon.api.policy import Policy
    from modelmon.api.v1alpha1 import ModelMonitorSpec
    from modelmon.check import run_check
    spec = ModelMonitorSpec.model_validate(json.loads(sys.argv[1]))
    limit = None if sys.argv[3] == "none" else int(sys.argv[3])
    status = run_check(spec, base_dir=Path(sys.argv[2]), now=datetime.fromisoformat(sys.argv[4]),
                       policy=dataclasses.replace(Policy.local(), max_memory=limit))
    with open("/proc/self/status") as proc:
        peak = next(int(line.split()[1]) for line in proc if line.startswith("VmHWM:"))
    ready = status.condition("Ready")
    print(json.dumps({"peak_kib": peak, "reason": ready.reason if ready else None,
                      "message": ready.message if ready else None,
                      "rows": status.last_check.current_rows if status.last_check else None,
                      "drift": [f.statistic for f in status.drift.features]
                      if status.drift else None}))
""")


def measured(spec: ModelMonitorSpec, base: Path, limit: int | None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, spec.model_dump_json(by_alias=True, exclude_none=True),
         str(base), "none" if limit is None else str(limit), NOW.isoformat()],
        capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_window_several_times_the_memory_limit_is_scored_with_bounded_memory(
        tmp_path: Path) -> None:
    rows, limit = ROWS, 4 << 20
    rng = np.random.default_rng(5)

    def frame(count: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame({
            "income": rng.normal(50 + shift, 10, count), "age": rng.normal(40, 12, count),
            "spend": rng.gamma(2.0, 30.0, count),
            "grade": rng.integers(0, 5, count).astype(float),
            "region": rng.choice(["n", "s", "e"], count),
            "ts": pd.date_range(NOW - timedelta(hours=20), NOW, periods=count)})

    frame(20_000, 0.0).to_parquet(tmp_path / "ref.parquet", index=False)
    frame(rows, 1.0).to_parquet(tmp_path / "cur.parquet", index=False, row_group_size=50_000)
    frame(20_000, 1.0).to_parquet(tmp_path / "small.parquet", index=False)

    def spec(url: str, engine: bool) -> ModelMonitorSpec:
        return ModelMonitorSpec.model_validate({
            "model": {"name": "m", "task": "regression"},
            "reference": {"source": {"url": "ref.parquet"}},
            "current": {"source": {"url": url, **({"engine": "duckdb"} if engine else {})},
                        "window": "1d"},
            "columns": {"timestamp": "ts", "categorical": ["grade"],
                        "features": ["income", "age", "spend", "grade", "region"]},
            "drift": {"numericMethod": "psi"}})

    baseline = measured(spec("small.parquet", True), tmp_path, limit)
    whole = measured(spec("cur.parquet", False), tmp_path, None)
    pushed = measured(spec("cur.parquet", True), tmp_path, limit)
    assert whole["reason"] == pushed["reason"] == "CheckSucceeded", pushed
    assert whole["rows"] == pushed["rows"] == rows - 1
    assert pushed["drift"] == pytest.approx(whole["drift"], abs=1e-9, rel=1e-9)
    held_whole = whole["peak_kib"] - baseline["peak_kib"]
    held_pushed = pushed["peak_kib"] - baseline["peak_kib"]
    assert held_whole > 60 * 1024, (baseline, whole)
    assert held_pushed < held_whole / 3, (baseline, whole, pushed)

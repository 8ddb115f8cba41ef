"""What the operator keeps for its live report (outputs.report.live): a history bounded in
bytes (counted, and measured with tracemalloc), plots bounded per monitor worst column
first, and the fleet recording each check and forgetting a deleted monitor."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from memory_cluster import MemoryCluster
from modelmon.api.policy import Policy
from modelmon.check import run_check_with_shapes
from modelmon.monitor_files import load_monitors
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.report import drift_rows
from modelmon.outputs.report.inputs import HistoryPoint
from modelmon.outputs.report.live import (
    HISTORY_BYTES,
    NOT_KEPT,
    History,
    LiveReports,
    bounded_shapes,
    deep_size,
)
from modelmon.worker import Fleet
from report_data import write_monitor

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "breast-cancer"


def point(k: int, features: int, rng: random.Random, share: float = 0.3) -> HistoryPoint:
    """A check of a monitor of ``features`` features, built afresh as from a status (new
    strings every time, as parsing a status gives)."""
    names = tuple(f"feature_{i:04d}_{'x' * 20}" for i in range(features))
    return HistoryPoint(
        time=T0 + timedelta(minutes=k), phase="Drifting", drift_share=rng.random(),
        findings=rng.randint(0, 30), critical=rng.randint(0, 3), current_rows=1000 + k,
        drifted=tuple(n for n in names if rng.random() < share), features=names,
        performance={"accuracy": rng.random(), "rocAuc": rng.random()},
        estimated={"accuracy": (rng.random(), 0.1, 0.9)})


@pytest.mark.parametrize("features", [3, 100, 2000])
def test_the_history_stays_within_its_bytes_dropping_the_oldest(features: int) -> None:
    rng = random.Random(features)
    history = History()
    for k in range(600):
        history.append(point(k, features, rng))
        assert history.nbytes <= HISTORY_BYTES
    kept = list(history.points)
    assert 10 < len(kept) < 600
    # The latest points, in order, the oldest dropped.
    assert [p.current_rows for p in kept] == list(range(1600 - len(kept), 1600))
    if features <= 100:  # names kept, and shared: one features tuple for all points
        assert all(p.features is kept[0].features for p in kept)
        assert all(d in kept[0].features for p in kept for d in p.drifted or ())
    else:  # a point that large keeps its numbers but not the names
        assert all(p.features == () and p.drifted is None for p in kept)
    # The count agrees with an independent deep size of the whole ring.
    assert deep_size(kept) <= history.nbytes


@pytest.mark.parametrize("features", [3, 100])
def test_the_memory_a_history_holds_is_within_the_stated_bound(features: int) -> None:
    """Measured: what stays allocated after filling a ring far past its bound, the ring's
    bookkeeping included."""
    rng = random.Random(7)
    points = 400
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        history = History()
        for k in range(points):
            history.append(point(k, features, rng))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(history) < points  # the bound was reached
    assert held <= HISTORY_BYTES, held


def test_a_point_of_the_same_time_replaces_the_last() -> None:
    rng = random.Random(1)
    history = History()
    history.append(point(0, 3, rng))
    again = point(0, 3, rng)
    history.append(again)
    assert len(history) == 1 and history.points[0].findings == again.findings
    history.append(point(1, 3, rng))
    assert len(history) == 2


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = write_monitor(tmp_path_factory.mktemp("data"), 40)
    (mon,) = load_monitors(path)
    return mon.spec, run_check_with_shapes(mon.spec, base_dir=path.parent)


def test_plots_beyond_the_bound_are_dropped_worst_columns_kept(checked: Any) -> None:
    _, result = checked
    whole = sum(deep_size(s) for s in result.shapes.values())
    limit = whole // 3
    kept = bounded_shapes(result.status, result.shapes, limit)
    assert list(kept) == list(result.shapes)  # every column, in the same order
    plotted = [name for name, s in kept.items() if s.shape is not None]
    dropped = [name for name, s in kept.items() if s.reason == NOT_KEPT]
    assert plotted and dropped
    assert sum(deep_size(kept[n]) for n in plotted) <= limit
    # Worst first: the drift table's columns keep their plots up to the first dropped one.
    rows = drift_rows(result.status)
    order = [row.column.name for row in rows]
    first = min(order.index(name) for name in dropped)
    assert first > 0 and set(order[:first]) <= set(plotted)
    assert rows[0].verdict in ("critical", "warning", "drifted")
    assert bounded_shapes(result.status, result.shapes) == result.shapes  # 40 columns fit


def test_a_failed_check_keeps_the_plots_and_adds_its_failure(checked: Any) -> None:
    spec, result = checked
    store = LiveReports()
    key = ("ml", "m")
    store.record(key, spec, result.status, result.shapes, failed=False)
    assert store.get(*key).shapes  # type: ignore[union-attr]
    failed = result.status.model_copy(update={"phase": "Failing", "history": [
        *result.status.history]})
    from modelmon.outputs.publisher import with_history

    failed = with_history(failed, result.status.last_check.time + timedelta(minutes=5))
    store.record(key, spec, failed, {}, failed=True)
    entry = store.get(*key)
    assert entry is not None and entry.shapes == store.get(*key).shapes != {}  # type: ignore[union-attr]
    assert [p.phase for p in entry.history][-1] == "Failing"
    store.forget(key)
    assert store.get(*key) is None and store.entries() == []


def fleet_monitor() -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    spec = doc["spec"]
    spec["schedule"] = {"interval": "10m"}
    spec["reference"]["source"] = {"configMap": {"name": "data", "key": "reference.csv"}}
    spec["current"]["source"] = {"configMap": {"name": "data", "key": "current.csv"}}
    return {"metadata": {"namespace": "ml", "name": "bc"}, "spec": spec}


async def test_the_fleet_records_each_check_and_forgets_a_deleted_monitor() -> None:
    cluster = MemoryCluster()
    cluster.config_maps[("ml", "data")] = {
        name: (EXAMPLE / name).read_text() for name in ("reference.csv", "current.csv")}
    reports = LiveReports()
    fleet = Fleet(cluster, Metrics(), workers=1, policy=Policy.operator(), reports=reports,
                  report_base_url="https://modelmon.example.com/")
    try:
        fleet.upsert(cluster.add(fleet_monitor()))
        assert reports.get("ml", "bc") is not None  # listed at once, before its check
        for _ in range(600):
            entry = reports.get("ml", "bc")
            if entry is not None and entry.status.last_check is not None:
                break
            await asyncio.sleep(0.05)
        assert entry is not None and entry.status.last_check is not None
        assert entry.spec is not None and entry.spec.model.name == "breast-cancer-lr"
        assert set(entry.shapes) >= set(entry.status.drift.drifted)  # type: ignore[union-attr]
        assert [p.time for p in entry.history] == [entry.status.last_check.time]
        assert entry.status == fleet.monitors[("ml", "bc")].published.status
        (rule,) = cluster.rules.values()
        annotations = [r["annotations"] for r in rule["spec"]["groups"][0]["rules"]]
        assert {a["report_url"] for a in annotations} == {
            "https://modelmon.example.com/monitors/ml/bc"}
        fleet.remove("ml", "bc")
        assert reports.get("ml", "bc") is None and len(reports) == 0
    finally:
        await fleet.shutdown()


async def test_without_a_report_the_fleet_computes_no_shapes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from modelmon import worker

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("shapes computed with the report off")

    monkeypatch.setattr(worker, "run_check_with_shapes", refuse)
    cluster = MemoryCluster()
    cluster.config_maps[("ml", "data")] = {
        name: (EXAMPLE / name).read_text() for name in ("reference.csv", "current.csv")}
    fleet = Fleet(cluster, Metrics(), workers=1, policy=Policy.operator())
    try:
        fleet.upsert(cluster.add(fleet_monitor()))
        for _ in range(600):
            if cluster.patches:
                break
            await asyncio.sleep(0.05)
        status = cluster.statuses(("ml", "bc"))[-1]
        assert status["lastCheck"] is not None
        (rule,) = cluster.rules.values()
        assert all("report_url" not in r["annotations"]
                   for r in rule["spec"]["groups"][0]["rules"])
    finally:
        await fleet.shutdown()

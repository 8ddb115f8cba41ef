"""The fleet's schedule against an in-memory cluster, in virtual time.

Cadence, backoff growth, resume after a restart, retiring a worker whose monitor is gone,
and a spec change while a check runs. The event loop's clock is virtual: it jumps to the
next timer whenever nothing runs, and runs at the real pace while a thread works (a check
or an API call), so ten-minute intervals pass in milliseconds. The fleet's clock is that
loop's clock, counted from START. Against the real API server: tests/integration/test_fleet.py
and test_operator.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from memory_cluster import MemoryCluster
from modelmon.api.policy import Policy
from modelmon.outputs.metrics import Metrics
from modelmon.worker import Fleet
from virtual_time import run_virtual, until

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast-cancer"
NAMESPACE = "ml"
NAME = "credit"
KEY = (NAMESPACE, NAME)
#: Where virtual time starts (a wall-clock instant: the fleet writes it into statuses).
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
#: Seconds of virtual time a test allows on top of the exact schedule (the real time its
#: threads take).
SLACK = 5.0
#: Seconds a check may take to start computing once due (real time: the test allows much
#: more than it takes), and how long the cadence test holds a check: longer than that.
DISPATCH_SLACK = 1.0
HELD_SECONDS = 1.5
def monitor(interval: str = "1m", team: str = "risk") -> dict[str, Any]:
    """The breast-cancer example, its data in ConfigMaps of the in-memory cluster."""
    doc = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    spec = doc["spec"]
    spec["schedule"] = {"interval": interval}
    spec["reference"]["source"] = {"configMap": {"name": "data", "key": "reference.csv"}}
    spec["current"]["source"] = {"configMap": {"name": "data", "key": "current.csv"}}
    spec["alerting"] = {"labels": {"team": team}}
    return {"metadata": {"namespace": NAMESPACE, "name": NAME}, "spec": spec}


def with_data(cluster: MemoryCluster) -> MemoryCluster:
    cluster.config_maps[(NAMESPACE, "data")] = {
        name: (EXAMPLE / name).read_text() for name in ("reference.csv", "current.csv")}
    return cluster


def check_times(cluster: MemoryCluster) -> list[float]:
    """When each written check ran (its history entry), in seconds after START."""
    return [(datetime.fromisoformat(status["history"][-1]["time"]) - START).total_seconds()
            for status in cluster.statuses(KEY)]


def ready_reason(status: dict[str, Any]) -> str:
    return str(next(condition["reason"] for condition in status["conditions"]
                    if condition["type"] == "Ready"))


def series(metrics: Metrics) -> set[str]:
    return {sample.name for family in metrics.registry.collect() for sample in family.samples
            if sample.labels.get("monitor") == NAME}


async def with_fleet(cluster: MemoryCluster, scenario: Callable[[Fleet, Metrics],
                                                                Awaitable[None]]) -> None:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    fleet = Fleet(cluster, metrics, workers=1, clock=lambda: START.timestamp() + loop.time(),
                  policy=Policy.operator())
    try:
        await scenario(fleet, metrics)
    finally:
        await fleet.shutdown()


def test_checks_keep_the_interval_however_long_one_takes() -> None:
    """Each check is due one interval after the previous one began computing: a check
    held for a while (its source is slow) does not push the later ones back."""
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        fleet.upsert(cluster.add(monitor("1m")))
        await until(lambda: len(cluster.patches) >= 2, 300, "second check")
        cluster.gate.close()
        await until(cluster.gate.waiting.is_set, 120, "third check under way")
        await asyncio.sleep(HELD_SECONDS)  # real seconds: a thread works meanwhile
        cluster.gate.open()
        await until(lambda: len(cluster.patches) >= 4, 300, "fourth check")

    run_virtual(with_fleet(cluster, scenario))
    times = check_times(cluster)
    assert times[0] < SLACK  # a new monitor is checked at once
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(60 <= gap < 60 + DISPATCH_SLACK for gap in gaps), gaps
    assert [ready_reason(status) for status in cluster.statuses(KEY)] == [
        "CheckSucceeded"] * len(times)
    assert len(cluster.rules) == 1


def test_source_failures_back_off_doubling_up_to_the_interval_then_reset() -> None:
    cluster = MemoryCluster()  # no ConfigMap: every check fails with SourceUnavailable

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        fleet.upsert(cluster.add(monitor("1m")))
        await until(lambda: len(cluster.patches) >= 6, 600, "sixth check")
        with_data(cluster)  # the source is back
        await until(lambda: len(cluster.patches) >= 9, 600, "ninth check")

    run_virtual(with_fleet(cluster, scenario))
    statuses = cluster.statuses(KEY)
    reasons = [ready_reason(status) for status in statuses]
    times = check_times(cluster)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    first_success = reasons.index("CheckSucceeded")
    assert first_success >= 6
    assert reasons[:first_success] == ["SourceUnavailable"] * first_success
    assert reasons[first_success:] == ["CheckSucceeded"] * (len(reasons) - first_success)
    # 5 s after the first failure, doubling, capped by the 1m interval.
    backoffs = [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 60.0][:first_success]
    assert all(want <= gap < want + SLACK
               for want, gap in zip(backoffs, gaps[:first_success], strict=True)), gaps
    # A success resets the delay to the interval.
    assert all(60 <= gap < 60 + SLACK for gap in gaps[first_success:]), gaps


def stored_status(last_check: datetime, generation: int, ready: str) -> dict[str, Any]:
    """What a previous operator left in the cluster."""
    when = last_check.isoformat()
    return {
        "phase": "Healthy", "observedGeneration": generation,
        "lastCheck": {"time": when, "durationSeconds": 0.5, "referenceRows": 200,
                      "currentRows": 199},
        "conditions": [{"type": "Ready", "status": ready, "reason": "ChecksPassed",
                        "message": "ok", "lastTransitionTime": when,
                        "observedGeneration": generation}],
    }


def test_a_restart_resumes_where_the_last_check_left_off() -> None:
    """The stored status says the last check ran 4 minutes ago (10m interval): the first
    check comes 6 minutes after start, and the series are exported meanwhile."""
    cluster = with_data(MemoryCluster())
    seen_before: list[set[str]] = []

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        body = monitor("10m")
        body["status"] = stored_status(START - timedelta(minutes=4), 1, "True")
        fleet.upsert(cluster.add(body))
        await asyncio.sleep(300)
        seen_before.append(series(metrics))
        assert cluster.patches == []
        await until(lambda: len(cluster.patches) >= 1, 600, "first check")

    run_virtual(with_fleet(cluster, scenario))
    (first,) = check_times(cluster)
    assert 360 <= first < 360 + SLACK
    assert "modelmon_last_check_timestamp_seconds" in seen_before[0]


@pytest.mark.parametrize(("generation", "ready"), [(2, "True"), (1, "False")])
def test_a_restart_checks_at_once_after_a_spec_change_or_a_failure(generation: int,
                                                                    ready: str) -> None:
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        body = monitor("10m")
        body["status"] = stored_status(START - timedelta(minutes=4), generation, ready)
        fleet.upsert(cluster.add(body))
        await until(lambda: len(cluster.patches) >= 1, 60, "first check")

    run_virtual(with_fleet(cluster, scenario))
    (first,) = check_times(cluster)
    assert first < SLACK


def test_a_worker_whose_monitor_is_gone_retires() -> None:
    """Deleted without a DELETED event: the next status patch answers 404, the worker
    stops and the monitor's series go."""
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        fleet.upsert(cluster.add(monitor("1m")))
        await until(lambda: bool(series(metrics)), 60, "first check's series")
        task = fleet.monitors[KEY].task
        assert task is not None
        cluster.delete(KEY)
        await until(lambda: KEY not in fleet.monitors, 120, "retired worker")
        await until(task.done, 1, "stopped worker")
        assert series(metrics) == set()
        await asyncio.sleep(600)  # nothing more is written

    run_virtual(with_fleet(cluster, scenario))
    assert len(cluster.patches) == 1


def test_a_spec_change_during_a_check_writes_that_check_then_checks_the_new_spec() -> None:
    """Today's behaviour: the check under way finishes with the spec it started with and
    its status is written (observedGeneration 1); the change wakes the worker, which checks
    the new spec at once rather than an interval later."""
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        fleet.upsert(cluster.add(monitor("1m", team="risk")))
        await until(lambda: len(cluster.patches) >= 1, 60, "first check")
        cluster.gate.close()  # the next check stops reading its sources half-way
        await until(cluster.gate.waiting.is_set, 120, "second check under way")
        fleet.upsert(cluster.change_spec(KEY, monitor("1m", team="fraud")["spec"]))
        cluster.gate.open()
        await until(lambda: len(cluster.patches) >= 3, 60, "check of the new spec")

    run_virtual(with_fleet(cluster, scenario))
    statuses = cluster.statuses(KEY)[:3]
    assert [status["observedGeneration"] for status in statuses] == [1, 1, 2]
    first, stale, fresh = check_times(cluster)[:3]
    assert 60 <= stale - first < 60 + SLACK
    assert fresh - stale < SLACK  # woken by the change, not due an interval later
    (rule,) = cluster.rules.values()
    assert {alert["labels"]["team"] for group in rule["spec"]["groups"]
            for alert in group["rules"]} == {"fraud"}


def test_a_check_made_during_an_outage_is_written_when_the_api_answers_again() -> None:
    cluster = with_data(MemoryCluster())

    async def scenario(fleet: Fleet, metrics: Metrics) -> None:
        fleet.upsert(cluster.add(monitor("1m")))
        await until(lambda: len(cluster.patches) >= 1, 60, "first check")
        cluster.reachable = False
        await asyncio.sleep(90)  # the second check runs meanwhile; its status is held
        assert len(cluster.patches) == 1
        cluster.reachable = True
        await fleet.flush()
        assert len(cluster.patches) == 2

    run_virtual(with_fleet(cluster, scenario))
    held = cluster.statuses(KEY)[1]
    assert 60 <= check_times(cluster)[1] < 60 + SLACK
    assert len(held["history"]) == 2

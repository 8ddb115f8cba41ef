"""Two fleets share the monitors of one in-memory cluster through membership Leases, in
virtual time (tests/virtual_time.py): each monitor is checked by one of them at
its cadence, the history in the cluster holds every check once, and when one replica dies
without a word the other takes its monitors over within the lease duration plus an
interval, going on from the dead one's last check. Against the real API server with real
processes: tests/integration/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from memory_cluster import MemoryCluster
from modelmon.api.policy import Policy
from modelmon.check import parse_spec, run_check
from modelmon.health import Health
from modelmon.membership import Membership
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.publisher import status_body, with_history
from modelmon.runner import OperatorGauges
from modelmon.worker import Fleet
from virtual_time import run_virtual, until

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast-cancer"
NAMESPACE = "ml"
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DURATION = 20
INTERVAL = 60.0
MONITORS = 6
#: Virtual seconds a check may start after its due time (real thread time included).
SLACK = 3.0


def monitor(name: str) -> dict[str, Any]:
    """The breast-cancer example at INTERVAL, its data in ConfigMaps of the cluster."""
    spec = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())["spec"]
    spec["schedule"] = {"interval": f"{INTERVAL:.0f}s"}
    for side, key in (("reference", "reference.csv"), ("current", "current.csv")):
        spec[side]["source"] = {"configMap": {"name": "data", "key": key}}
    return {"metadata": {"namespace": NAMESPACE, "name": name}, "spec": spec}


def with_data(cluster: MemoryCluster) -> MemoryCluster:
    cluster.config_maps[(NAMESPACE, "data")] = {
        name: (EXAMPLE / name).read_text() for name in ("reference.csv", "current.csv")}
    return cluster


def check_times(cluster: MemoryCluster, key: tuple[str, str]) -> list[float]:
    return [(datetime.fromisoformat(status["history"][-1]["time"]) - START).total_seconds()
            for status in cluster.statuses(key)]


def fleet(cluster: MemoryCluster, name: str) -> Fleet:
    loop = asyncio.get_running_loop()
    member = Membership(cluster, identity=name, namespace="modelmon", group="g",
                        duration=DURATION, clock=loop.time)
    return Fleet(cluster, Metrics(), workers=1, policy=Policy.operator(),
                 clock=lambda: START.timestamp() + loop.time(), membership=member)


def kill(replica: Fleet) -> None:
    """SIGKILL: every task stops where it is, the Lease stays as it was."""
    for state in replica.monitors.values():
        assert state.task is not None
        state.task.cancel()
    for task in (replica.membership_task, replica.api_watch):
        assert task is not None
        task.cancel()


def test_two_replicas_split_the_monitors_and_one_takes_over_when_the_other_dies() -> None:
    cluster = with_data(MemoryCluster())
    keys = [(NAMESPACE, f"m{i}") for i in range(MONITORS)]
    found: dict[str, Any] = {}

    async def scenario() -> None:
        a, b = fleet(cluster, "a"), fleet(cluster, "b")
        for replica in (a, b):
            replica.start_watching_api()
        for key in keys:
            stored = cluster.add(monitor(key[1]))
            # Fixed uids: the split between "a" and "b" is then the same every run.
            uid = str(uuid.UUID(int=len(key[1]) * 1_000_003 + int(key[1][1:]), version=4))
            stored["metadata"]["uid"] = cluster.monitors[key]["metadata"]["uid"] = uid
            a.upsert(stored)
            b.upsert(stored)
        loop = asyncio.get_running_loop()
        await until(lambda: all(cluster.statuses(key) for key in keys), DURATION + 30,
                    "a first check of every monitor")
        assert a.owned + b.owned == MONITORS and a.owned and b.owned, (a.owned, b.owned)
        assert a.metrics.handovers.labels("taken")._value.get() == a.owned
        await asyncio.sleep(3 * INTERVAL)
        found["b_monitors"] = [state.key for state in b.monitors.values() if state.owned]
        found["killed"] = loop.time()
        kill(b)
        # b's last renewal went out at most a renew period before the kill.
        await until(lambda: a.owned == MONITORS, DURATION + DURATION / 3 + 1,
                    "a takes b's monitors")
        await asyncio.sleep(3 * INTERVAL)
        await a.shutdown()
        await asyncio.gather(*(s.task for s in b.monitors.values() if s.task),
                             return_exceptions=True)
        b.stats_pool.shutdown(wait=False, cancel_futures=True)

    run_virtual(scenario())
    killed = found["killed"]
    for key in keys:
        times = check_times(cluster, key)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(INTERVAL - 0.01 <= gap < INTERVAL + DURATION + SLACK for gap in gaps), (
            key, gaps)
        # The stored history is every check, once: nothing lost, nothing twice.
        history = [(datetime.fromisoformat(entry["time"]) - START).total_seconds()
                   for entry in cluster.monitors[key]["status"]["history"]]
        assert history == times
        after = [t for t in times if t > killed]
        assert after and after[0] - killed < DURATION + INTERVAL + SLACK
        if key in found["b_monitors"]:  # went on from b's last check
            before = [t for t in times if t <= killed]
            assert after[0] - before[-1] >= INTERVAL - 0.01


def test_a_replica_keeps_only_the_references_of_the_monitors_it_checks() -> None:
    """Alone, a replica fits and keeps every monitor's reference; when a second one joins
    it releases about half of them and forgets their references with them (the new owner
    fits its own); its gauges say what it holds."""
    cluster = with_data(MemoryCluster())
    keys = [(NAMESPACE, f"m{i}") for i in range(MONITORS)]
    found: dict[str, Any] = {}

    async def scenario() -> None:
        a = fleet(cluster, "a")
        a.start_watching_api()
        for key in keys:
            a.upsert(cluster.add(monitor(key[1])))
        await until(lambda: all(cluster.statuses(key) for key in keys), DURATION + 30,
                    "a first check of every monitor by a alone")
        found["alone"] = [key for key in keys if key in a.references]
        found["alone_bytes"] = a.references.bytes
        b = fleet(cluster, "b")
        b.start_watching_api()
        for key in keys:
            b.upsert(cluster.monitors[key])
        await until(lambda: 0 < a.owned < MONITORS, 2 * DURATION + 10, "b takes some")
        await asyncio.sleep(INTERVAL + 5)  # each replica checked its own since
        found["a"] = {key for key in keys if key in a.references}
        found["a_owned"] = {s.key for s in a.monitors.values() if s.owned}
        found["b"] = {key for key in keys if key in b.references}
        found["b_owned"] = {s.key for s in b.monitors.values() if s.owned}
        found["gauges"] = {family.name: family.samples[0].value
                           for family in OperatorGauges(Health(), a).collect()}
        found["a_bytes"] = a.references.bytes
        await a.shutdown()
        await b.shutdown()

    run_virtual(scenario())
    assert found["alone"] == keys and found["alone_bytes"] > 0
    assert found["a"] == found["a_owned"] and found["b"] == found["b_owned"]
    assert found["a_owned"] and found["b_owned"]
    assert found["a_owned"] | found["b_owned"] == set(keys)
    share = len(found["a"]) / MONITORS
    assert found["a_bytes"] == pytest.approx(found["alone_bytes"] * share, rel=0.01)
    assert found["gauges"]["modelmon_reference_cache_entries"] == len(found["a"])
    assert found["gauges"]["modelmon_reference_cache_bytes"] == found["a_bytes"]


def test_a_status_written_meanwhile_by_another_replica_is_not_overwritten() -> None:
    """The status write is conditional on the last check this replica built on: when
    another writer's check landed meanwhile (a replica that believes it owns the monitor
    too), this replica's check is dropped, so the history neither loses nor repeats one."""
    cluster = with_data(MemoryCluster())
    key = (NAMESPACE, "m0")
    found: dict[str, Any] = {}

    async def scenario() -> None:
        a = fleet(cluster, "a")
        a.start_watching_api()
        a.upsert(cluster.add(monitor(key[1])))
        await until(lambda: len(cluster.statuses(key)) >= 1, DURATION + 30, "first check")
        cluster.gate.close()  # the next check stops half-way through its sources
        await until(cluster.gate.waiting.is_set, INTERVAL + 10, "second check under way")
        with cluster.lock:  # another writer's check lands meanwhile
            stored = cluster.monitors[key]["status"]
            found["theirs"] = {**stored["lastCheck"], "time": "2026-11-24T12:00:55Z"}
            stored["lastCheck"] = found["theirs"]
        cluster.gate.open()
        await asyncio.sleep(5)
        assert len(cluster.statuses(key)) == 1  # the second check was not written
        assert cluster.monitors[key]["status"]["lastCheck"] == found["theirs"]
        # The next check builds on theirs, and is written.
        await until(lambda: len(cluster.statuses(key)) >= 2, INTERVAL + 10, "third check")
        await a.shutdown()

    run_virtual(scenario())
    first, third = cluster.statuses(key)
    assert len(third["history"]) == len(first["history"]) + 1


def test_a_monitor_taken_over_is_not_checked_again_within_an_interval_even_if_failing(
        ) -> None:
    """Alone, an operator that restarts checks a failing monitor at once; a replica that
    takes a monitor over waits an interval after the previous owner's last check (its
    history's last entry), failed or not: the previous owner may have checked it just now."""
    cluster = with_data(MemoryCluster())
    key = (NAMESPACE, "m0")
    found: dict[str, float] = {}

    async def scenario() -> None:
        a = fleet(cluster, "a")
        body = monitor(key[1])
        last = START.timestamp() + DURATION + 5  # checked by another replica while a joins
        when = datetime.fromtimestamp(last, UTC).isoformat()
        body["status"] = {
            "phase": "Failing", "observedGeneration": 1,
            "history": [{"time": when, "phase": "Failing", "findings": 0,
                         "reason": "SourceUnavailable"}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "SourceUnavailable",
                            "message": "down", "lastTransitionTime": when,
                            "observedGeneration": 1}]}
        stored = cluster.add(body)
        found["last"] = last - START.timestamp()
        a.start_watching_api()
        a.upsert({**stored, "status": {}})  # the watch saw it before that check
        await until(lambda: bool(cluster.statuses(key)), DURATION + INTERVAL + 10,
                    "a's first check")
        await a.shutdown()

    run_virtual(scenario())
    (first,) = check_times(cluster, key)
    assert first >= found["last"] + INTERVAL - 0.01
    assert first < found["last"] + INTERVAL + SLACK


def test_a_spec_change_seen_while_another_replica_owned_the_monitor_is_not_checked_twice(
        ) -> None:
    """Every replica hears every spec change; one that takes the monitor over later does
    not check it at once for that change when the previous owner already checked it."""
    cluster = with_data(MemoryCluster())
    key = (NAMESPACE, "m0")
    found: dict[str, float] = {}

    async def scenario() -> None:
        a = fleet(cluster, "a")
        stored = cluster.add(monitor(key[1]))
        a.start_watching_api()
        a.upsert(stored)
        state = a.monitors[key]
        assert not state.owned  # joining
        changed = cluster.change_spec(key, {**stored["spec"], "schedule": {"interval": "61s"}})
        a.upsert(changed)  # heard while not the owner
        last = START.timestamp() + DURATION - 5  # the owner checked the new spec
        when = datetime.fromtimestamp(last, UTC).isoformat()
        with cluster.lock:
            cluster.monitors[key]["status"] = {
                "phase": "Healthy", "observedGeneration": 2,
                "lastCheck": {"time": when, "durationSeconds": 0.1, "referenceRows": 200,
                              "currentRows": 199},
                "history": [{"time": when, "phase": "Healthy", "findings": 0}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "CheckSucceeded",
                                "message": "ok", "lastTransitionTime": when,
                                "observedGeneration": 2}]}
        found["last"] = last - START.timestamp()
        await until(lambda: bool(cluster.statuses(key)), DURATION + 2 * INTERVAL,
                    "a's first check")
        await a.shutdown()

    run_virtual(scenario())
    (first,) = check_times(cluster, key)
    assert first >= found["last"] + 61 - 0.01


def test_status_events_keep_the_spec_and_only_another_replicas_status_uncopied() -> None:
    """Every replica hears every status patch: one that leaves the generation alone keeps
    the spec it had; the status is kept (as compact JSON, not parsed into models) only of
    a monitor another replica checks, for a take-over that cannot read it afresh."""
    cluster = with_data(MemoryCluster())

    async def scenario() -> None:
        a = fleet(cluster, "a")  # not joined yet: it checks nothing
        body = cluster.add(monitor("m0"))
        a.upsert(body)
        state = a.monitors[(NAMESPACE, "m0")]
        assert not state.owned and state.published.status.history == []
        spec = state.spec
        status = {"phase": "Healthy", "history": []}
        a.upsert({**body, "status": status})
        assert state.spec is spec and state.watched is not None
        assert json.loads(state.watched) == status
        assert not state.wake.is_set()
        state.owned = True
        a.upsert({**body, "status": {"phase": "Drifting"}})
        assert state.watched is None
        changed = {**body, "metadata": {**body["metadata"], "generation": 2},
                   "spec": {**body["spec"], "schedule": {"interval": "2m"}}}
        a.upsert(changed)
        assert state.spec is changed["spec"] and state.respec and state.wake.is_set()
        for one in a.monitors.values():
            assert one.task is not None
            one.task.cancel()
        a.stats_pool.shutdown(wait=False, cancel_futures=True)

    run_virtual(scenario())


def test_a_take_over_that_cannot_read_the_status_goes_on_from_the_watched_one() -> None:
    """The API server does not answer the take-over's read: the history goes on from the
    status the watch last reported (kept as compact JSON), not from nothing."""
    cluster = with_data(MemoryCluster())

    async def scenario() -> None:
        a = fleet(cluster, "a")  # not joined: it owns nothing yet
        body = cluster.add(monitor("m0"))
        spec = parse_spec(yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())["spec"])
        status = None
        for minute in (50, 51):  # the other replica's two checks
            when = START.replace(hour=11, minute=minute)
            status = with_history(run_check(spec, base_dir=EXAMPLE, now=when,
                                            previous=status), when, status)
        assert status is not None
        a.upsert({**body, "status": status_body(status, nulls=False)})
        state = a.monitors[(NAMESPACE, "m0")]
        assert not state.owned and state.watched is not None
        cluster.reachable = False
        assert await a._take(state)
        taken = state.published.status
        assert [entry.time for entry in taken.history] == [
            START.replace(hour=11, minute=minute) for minute in (50, 51)]
        assert taken == status
        cluster.reachable = True
        await a.shutdown()

    run_virtual(scenario())


def test_absorb_takes_status_events_only_of_known_monitors_at_their_generation() -> None:
    """What the watch need not hand on: a status patch of a monitor the fleet knows at
    the generation it knows. A new monitor, a new object of the same name, a new spec or
    an event without metadata go on to ``upsert``."""
    cluster = with_data(MemoryCluster())

    async def scenario() -> None:
        a = fleet(cluster, "a")  # not joined: it owns nothing
        body = cluster.add(monitor("m0"))
        assert not a.absorb(body)  # not known yet
        a.upsert(body)
        state = a.monitors[(NAMESPACE, "m0")]
        status = {"phase": "Healthy", "history": []}
        assert a.absorb({**body, "status": status})
        assert state.watched is not None and json.loads(state.watched) == status
        newer = {**body, "metadata": {**body["metadata"],
                                      "generation": state.generation + 1}}
        assert not a.absorb(newer)
        other = {**body, "metadata": {**body["metadata"], "uid": "another-uid"}}
        assert not a.absorb(other)
        assert not a.absorb({"status": status})
        state.owned = True
        assert a.absorb({**body, "status": status}) and state.watched is None
        await a.shutdown()

    run_virtual(scenario())

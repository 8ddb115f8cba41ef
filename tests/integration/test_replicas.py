"""Several `modelmon run --replication` processes share 60 monitors on the local control
plane: each monitor is checked by exactly the replica its uid hashes to, at its 10 s
cadence; a fourth process takes about a quarter; a process killed with SIGKILL has its
monitors checked by the others within the lease duration plus an interval; no monitor is
ever checked twice in an interval, and the stored history loses and repeats nothing.

Every check is read back from the monitors' history (polled often enough that its 20
entries overlap) and attributed to the replica whose log has its check line. About 3
minutes.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kube import Cluster, Kubectl, manifest
from monitors import EXAMPLE, monitor
from operator_proc import OperatorProcess
from prometheus_client.parser import text_string_to_metric_families

from modelmon.api.v1alpha1 import GROUP, PLURAL, VERSION
from modelmon.membership import owner
from modelmon.outputs.kube import load_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

MONITORS = 60
INTERVAL = 10.0
DURATION = 20.0
#: Seconds a scheduled check may start off its cadence (the issue's bound).
JITTER = 1.0
#: Seconds between reads of every monitor's history (20 entries cover 200 s).
POLL = 20.0


class Checks:
    """Every check of every monitor, from the histories in the cluster."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(load_config(str(cluster.kubeconfig)))
        self.namespace = namespace
        self.times: dict[str, set[datetime]] = defaultdict(set)
        self.uids: dict[str, str] = {}
        self.last_read = 0.0

    def read(self) -> None:
        listed: Any = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                            PLURAL)
        for item in listed["items"]:
            name = item["metadata"]["name"]
            self.uids[name] = item["metadata"]["uid"]
            history = [datetime.fromisoformat(entry["time"])
                       for entry in (item.get("status") or {}).get("history", [])]
            assert len(history) == len(set(history)), f"{name}: a history entry twice"
            assert history == sorted(history), f"{name}: history out of order"
            known = self.times[name]
            if known and history and history[0] <= max(known):
                # What this read shows since the first entry it holds is everything seen
                # since then: a lost (overwritten) check would be missing here.
                seen = sorted(t for t in known if t >= history[0])
                assert seen == history[:len(seen)], f"{name}: the history lost a check"
            known.update(history)
        self.last_read = time.monotonic()

    def wait(self, seconds: float) -> None:
        """Pass ``seconds``, reading the histories every POLL seconds."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(POLL, max(0.0, end - time.monotonic())))
            self.read()

    def sorted(self, name: str) -> list[datetime]:
        return sorted(self.times[name])


def check_lines(op: OperatorProcess) -> dict[str, list[datetime]]:
    """The checks this replica published, by monitor name (its JSON log): when each
    began, as its status and history record it (the line's ``started``)."""
    out: dict[str, list[datetime]] = defaultdict(list)
    for line in op.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "check" and "monitor" in record and record.get("started"):
            out[record["monitor"].split("/", 1)[1]].append(
                datetime.fromisoformat(record["started"]))
    return out


def figure(op: OperatorProcess, name: str) -> float:
    return next(s.value for family in text_string_to_metric_families(op.metrics())
                for s in family.samples if s.name == name and not s.labels)


def test_replicas_share_monitors_take_over_and_never_check_twice(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    names = [f"m{i:02d}" for i in range(MONITORS)]
    kubectl("apply", "-n", namespace, "-f", "-",
            input=manifest([monitor(name, tmp_path) for name in names]))
    checks = Checks(cluster, namespace)

    def replica(i: int) -> OperatorProcess:
        return OperatorProcess(
            cluster.kubeconfig, [namespace], tmp_path / f"r{i}.log", workers=2,
            extra_args=["--replication", "--lease-namespace", namespace, "--id", f"r{i}",
                        "--lease-duration", f"{DURATION:.0f}s"]).start()

    ops = {f"r{i}": replica(i) for i in range(3)}
    killed_at: datetime | None = None
    victim = "r1"
    orphans: list[str] = []
    try:
        # Three replicas: each takes its share a lease duration after it joined.
        checks.wait(DURATION + 15)
        checks.read()
        assert all(checks.times[name] for name in names), "a monitor was never checked"
        members = sorted(ops)
        expected = {name: owner(checks.uids[name], members) for name in names}
        for rid, op in ops.items():
            share = sum(1 for who in expected.values() if who == rid)
            assert figure(op, "modelmon_monitors") == share, rid
            assert figure(op, "modelmon_replica_members") == 3
        checks.wait(30)

        # A fourth: about a quarter moves to it, from each of the others.
        ops["r3"] = replica(3)
        checks.wait(DURATION + DURATION / 3 + 10)
        after = {name: owner(checks.uids[name], sorted(ops)) for name in names}
        moved = [name for name in names if after[name] != expected[name]]
        assert {after[name] for name in moved} == {"r3"}
        assert 0.1 * MONITORS <= len(moved) <= 0.4 * MONITORS, len(moved)
        for rid, op in ops.items():
            share = sum(1 for who in after.values() if who == rid)
            assert figure(op, "modelmon_monitors") == share, rid
        assert "took over" in ops["r3"].logs() and "released" in ops["r0"].logs() + \
            ops["r1"].logs() + ops["r2"].logs()
        checks.wait(15)

        # SIGKILL one: the survivors check its monitors within the bound.
        orphans = [name for name in names if after[name] == victim]
        proc = ops[victim].proc
        assert proc is not None
        killed_at = datetime.now(UTC)
        proc.kill()
        proc.wait()
        checks.wait(DURATION + INTERVAL + 10)
        checks.read()
        for name in orphans:
            resumed = min((t for t in checks.times[name] if t > killed_at), default=None)
            assert resumed is not None, f"{name} was not checked after the kill"
            assert (resumed - killed_at).total_seconds() <= DURATION + INTERVAL, name
        survivors = [rid for rid in ops if rid != victim]
        assert sum(figure(ops[rid], "modelmon_monitors") for rid in survivors) == MONITORS
        assert all(figure(ops[rid], "modelmon_lease_renew_failures_total") == 0
                   for rid in survivors)
    finally:
        for op in ops.values():
            op.stop()

    # No replica found its status write pre-empted by another's check.
    for rid, op in ops.items():
        assert "did not write the status" not in op.logs(), rid
    # Who made each check: the replica whose log has a check of it that began then.
    lines = {rid: check_lines(op) for rid, op in ops.items()}

    def by(name: str, when: datetime) -> str:
        found = [rid for rid in lines for began in lines[rid][name] if began == when]
        if not found and name in orphans and killed_at is not None and \
                timedelta(0) <= killed_at - when <= timedelta(seconds=INTERVAL + JITTER):
            # The SIGKILL landed after the API server took the victim's last status
            # write and before the victim logged it: that check is the victim's.
            return victim
        assert len(found) == 1, (name, when, found)
        return found[0]

    for name in names:
        times = checks.sorted(name)
        makers = [by(name, when) for when in times]
        for (earlier, one), (later, other) in itertools.pairwise(zip(times, makers,
                                                                     strict=True)):
            gap = (later - earlier).total_seconds()
            assert gap >= INTERVAL - JITTER, (name, earlier, later, one, other)
            if one == other:  # the cadence of one replica
                assert gap <= INTERVAL + JITTER, (name, earlier, later, one)
            else:  # a hand-over: within a lease duration and a third, plus an interval
                assert gap <= DURATION + DURATION / 3 + INTERVAL + 2 * JITTER, (
                    name, earlier, later, one, other)

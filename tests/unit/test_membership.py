"""Replicas sharing monitors (``modelmon.membership``): rendezvous hashing, and the
ownership rules stepped on fake clocks against the in-memory cluster's Leases.

The simulation runs each replica's rounds as ``Membership.run`` would (renew every half
duration, retry after a failure) with a request latency, on clocks that disagree by whole
minutes, and asserts at every step that no monitor may be checked by two replicas, and that
every monitor is checked again within the bound once the replicas settle.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest

from memory_cluster import MemoryCluster
from modelmon.membership import (
    RETRY_SECONDS,
    Membership,
    group_of,
    lease_name,
    owner,
    score,
)
from modelmon.outputs.cluster import Lease

UIDS = [str(uuid.UUID(int=i * 7919 + 13, version=4)) for i in range(3000)]
NAMESPACE = "modelmon"
DURATION = 20
RENEW = DURATION / 3
#: Seconds between the simulation's steps, and a round's request latency.
STEP = 0.25
LATENCY = 0.5


def test_the_owner_is_stable_and_independent_of_the_members_order() -> None:
    members = ["b", "a", "c"]
    first = [owner(uid, members) for uid in UIDS[:200]]
    assert first == [owner(uid, list(reversed(members))) for uid in UIDS[:200]]
    assert first == [owner(uid, sorted(members)) for uid in UIDS[:200]]
    assert score("a", UIDS[0]) == score("a", UIDS[0]) != score("b", UIDS[0])
    assert owner(UIDS[0], []) is None


def test_three_members_split_evenly_and_a_fourth_takes_about_a_quarter_from_each() -> None:
    three = ["modelmon-0", "modelmon-1", "modelmon-2"]
    before = {uid: owner(uid, three) for uid in UIDS}
    counts = Counter(before.values())
    assert all(abs(count - 1000) < 100 for count in counts.values()), counts
    after = {uid: owner(uid, [*three, "modelmon-3"]) for uid in UIDS}
    moved = [uid for uid in UIDS if after[uid] != before[uid]]
    assert {after[uid] for uid in moved} == {"modelmon-3"}  # only to the newcomer
    assert 0.2 < len(moved) / len(UIDS) < 0.3
    assert all(abs(n - len(moved) / 3) < 0.2 * len(moved) / 3
               for n in Counter(before[uid] for uid in moved).values())


def test_a_member_leaving_moves_only_its_own_monitors() -> None:
    three = ["a", "b", "c"]
    before = {uid: owner(uid, three) for uid in UIDS}
    after = {uid: owner(uid, ["a", "c"]) for uid in UIDS}
    assert {uid for uid in UIDS if after[uid] != before[uid]} == {
        uid for uid in UIDS if before[uid] == "b"}


def test_lease_names_are_dns_labels_and_groups_follow_the_namespaces() -> None:
    assert lease_name("modelmon-7d9f-x2") == "modelmon-modelmon-7d9f-x2"
    odd = lease_name("Host.Example.COM-123")
    assert odd.startswith("modelmon-host-example-com-123-") and len(odd) <= 63
    assert lease_name("Host.Example.COM-123") != lease_name("host-example-com-123")
    assert len(lease_name("x" * 300)) <= 63
    assert group_of([]) == "all-namespaces"
    assert group_of(["b", "a"]) == group_of(["a", "b"]) != group_of(["a"])


# ------------------------------------------------------------------ the simulation


@dataclass
class Replica:
    """One ``modelmon run --replication`` as its membership loop drives it."""

    member: Membership
    offset: float
    """Its clock minus the simulation's."""
    next_round: float = 0.0
    pending: tuple[float, float, list[Lease] | BaseException] | None = None
    """A round in flight: (answer due, started by its clock, what the server answered)."""
    alive: bool = True
    failures: int = field(default=0)


class Simulation:
    def __init__(self, monitors: int = 120) -> None:
        self.cluster = MemoryCluster()
        self.now = 0.0
        self.uids = UIDS[:monitors]
        self.replicas: dict[str, Replica] = {}

    def start(self, name: str, offset: float) -> Replica:
        replica = Replica(Membership(self.cluster, identity=name, namespace=NAMESPACE,
                                     group="all-namespaces", duration=DURATION,
                                     clock=lambda: self.now + offset), offset,
                          next_round=self.now)
        self.replicas[name] = replica
        return replica

    def step(self) -> None:
        self.now += STEP
        for replica in self.replicas.values():
            if not replica.alive:
                continue
            member = replica.member
            if replica.pending is not None and self.now >= replica.pending[0]:
                _, started, answer = replica.pending
                replica.pending = None
                if isinstance(answer, BaseException):
                    member.failed(answer)
                    replica.next_round = self.now + RETRY_SECONDS
                else:
                    member.apply(started, answer)
                    replica.next_round = started - replica.offset + member.renew_seconds
            if replica.pending is None and self.now >= replica.next_round:
                reply: list[Lease] | BaseException
                try:
                    reply = member.fetch()
                except Exception as exc:
                    reply = exc
                replica.pending = (self.now + LATENCY, member.clock(), reply)
        self.assert_never_twice()

    def checkers(self, uid: str) -> list[str]:
        return [name for name, replica in self.replicas.items()
                if replica.alive and replica.member.may_check(uid)]

    def assert_never_twice(self) -> None:
        for uid in self.uids:
            assert len(self.checkers(uid)) <= 1, (self.now, uid, self.checkers(uid))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()

    def until_all_checked(self, within: float) -> float:
        """Seconds until every monitor has a checker (fails after ``within``)."""
        began = self.now
        while not all(self.checkers(uid) for uid in self.uids):
            assert self.now - began <= within, (
                f"{sum(not self.checkers(uid) for uid in self.uids)} monitors unchecked "
                f"{within} s on")
            self.step()
        return self.now - began

    def shares(self) -> Counter[str]:
        return Counter(self.checkers(uid)[0] for uid in self.uids if self.checkers(uid))


OFFSETS = {"a": 0.0, "b": -97.0, "c": 3600.0, "d": 41.5}


def test_a_joining_replica_waits_one_duration_and_one_alone_takes_every_monitor() -> None:
    sim = Simulation()
    a = sim.start("a", 0.0)
    sim.run(DURATION - 1)
    assert not a.member.active() and all(not sim.checkers(uid) for uid in sim.uids)
    waited = sim.until_all_checked(within=5)
    assert waited < 5 and sim.shares() == {"a": len(sim.uids)}


def test_scale_up_never_checks_twice_and_the_newcomer_gets_its_share() -> None:
    sim = Simulation()
    for name in "abc":
        sim.start(name, OFFSETS[name])
    sim.until_all_checked(within=DURATION + 5)
    assert all(abs(n - 40) <= 12 for n in sim.shares().values()), sim.shares()
    before = {uid: sim.checkers(uid)[0] for uid in sim.uids}
    sim.start("d", OFFSETS["d"])
    sim.run(DURATION + RENEW + 2)  # the join wait and a round of everyone
    after = {uid: sim.checkers(uid)[0] for uid in sim.uids}
    moved = [uid for uid in sim.uids if after[uid] != before[uid]]
    assert {after[uid] for uid in moved} == {"d"}
    assert 0.15 < len(moved) / len(sim.uids) < 0.35


@pytest.mark.parametrize("how", ["killed", "partitioned", "released"])
def test_a_replica_that_goes_is_taken_over_within_the_duration_and_never_twice(
        how: str) -> None:
    sim = Simulation()
    for name in "abc":
        sim.start(name, OFFSETS[name])
    sim.until_all_checked(within=DURATION + 5)
    sim.run(3.3)  # somewhere between rounds
    b = sim.replicas["b"]
    if how == "killed":
        b.alive = False
    elif how == "partitioned":  # alive, but its requests fail: it must fence itself
        sim.cluster.lease_outage.add("b")
    else:
        b.member.release()
        b.alive = False
    went = sim.now
    if how == "partitioned":
        while b.member.active():
            sim.step()
    sim.run(STEP)
    assert any(not sim.checkers(uid) for uid in sim.uids)
    sim.until_all_checked(within=DURATION + RENEW + 2 * LATENCY)
    taken = sim.now - went
    assert taken <= DURATION + RENEW + 2 * LATENCY
    if how == "released":  # the others notice at their next round
        assert taken <= RENEW + LATENCY + 2 * STEP
    assert set(sim.shares()) == {"a", "c"}
    if how == "partitioned":  # it comes back: it waits a duration, then takes its share
        assert b.member.failures > 0 and not b.member.active()
        sim.cluster.lease_outage.clear()
        sim.run(DURATION + RENEW + 2)
        assert set(sim.shares()) == {"a", "b", "c"}


def test_an_unrenewed_replica_stops_a_margin_before_its_lease_could_expire() -> None:
    sim = Simulation(monitors=10)
    a = sim.start("a", OFFSETS["c"])
    sim.until_all_checked(within=DURATION + 5)
    sim.cluster.lease_outage.add("a")
    renewed = {lease.resource_version for lease, _ in sim.cluster.leases.values()}
    while a.member.active():
        sim.step()
    stopped = sim.now
    # The last write that reached the server was made before the last successful round
    # began answering; an observer expires it a duration after it saw it, at the earliest.
    last_write = stopped - (DURATION - a.member.margin)
    assert a.member.failures >= 1
    assert {lease.resource_version for lease, _ in sim.cluster.leases.values()} == renewed
    assert stopped <= last_write + DURATION - a.member.margin + STEP
    sim.run(DURATION)
    assert not any(sim.checkers(uid) for uid in sim.uids)


"""Replicas share the monitors: membership Leases and rendezvous hashing.

Between the fleet (``worker``, which asks whether this replica may check a monitor) and the
cluster (``outputs.cluster.LeaseApi``). Off unless ``modelmon run --replication``: one
process then checks every monitor, as it always did.

Each replica holds one Lease (``coordination.k8s.io/v1``) in the lease namespace, named
after its id, and renews it every third of its duration (about 7 s of the default 20 s);
each round also lists the Leases of its group. A monitor belongs to the live member whose
score of the monitor's uid is highest (rendezvous hashing: adding or removing a member
moves only that member's share, about 1/N). The rules that keep a monitor from being checked twice:

- A Lease is live until ``leaseDurationSeconds`` after its latest change *as this replica
  observed it*, by this replica's own clock (as client-go's leader election does): clocks
  of different nodes never meet, only their rates do.
- A replica may start checks only until ``duration - margin`` after the start of its
  latest successful round (renew and list both answered): it stops before any other
  replica can see its Lease expire.
- A replica that joins, or comes back after its validity lapsed, takes no monitor until
  one lease duration after its Lease was written: every replica still checking by then
  has had a successful round since, seen it, and released what now belongs to it.
- Leaving on purpose (SIGTERM), a replica stops its checks, then releases its Lease (no
  holder): the others take over at their next round instead of after the expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelmon.api.logs import fields
from modelmon.outputs.cluster import Lease, LeaseApi

log = logging.getLogger(__name__)

#: A Lease's ``leaseDurationSeconds`` unless ``modelmon run --lease-duration`` says; the
#: renew period is a third of it, the safety margin a quarter.
LEASE_DURATION_SECONDS = 20
#: Where a process outside a pod keeps its Lease when ``--lease-namespace`` is not given.
DEFAULT_LEASE_NAMESPACE = "default"
#: The pod's own namespace, mounted with its service account token.
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: The label that groups the Leases of the replicas that share monitors.
GROUP_LABEL = "modelmon.io/replica-group"
#: Seconds between attempts while renewing fails.
RETRY_SECONDS = 2.0


def score(member: str, uid: str) -> int:
    """The member's rendezvous score for a monitor (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(f"{member}\x00{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(uid: str, members: Iterable[str]) -> str | None:
    """The member a monitor belongs to: the highest score (ties by name); None: nobody."""
    return max(members, key=lambda member: (score(member, uid), member), default=None)


def default_namespace() -> str:
    """The pod's namespace (its service account's), else ``DEFAULT_LEASE_NAMESPACE``."""
    try:
        return POD_NAMESPACE_FILE.read_text().strip() or DEFAULT_LEASE_NAMESPACE
    except OSError:
        return DEFAULT_LEASE_NAMESPACE


def default_identity() -> str:
    """The pod's name (``HOSTNAME`` in a pod), else the host's name and the process id."""
    if POD_NAMESPACE_FILE.exists() and os.environ.get("HOSTNAME"):
        return os.environ["HOSTNAME"]
    return f"{socket.gethostname()}-{os.getpid()}"


def group_of(namespaces: Sequence[str]) -> str:
    """Replicas share monitors with those watching the same namespaces: a label value."""
    if not namespaces:
        return "all-namespaces"
    joined = ",".join(sorted(set(namespaces)))
    return "ns-" + hashlib.blake2b(joined.encode(), digest_size=8).hexdigest()


def lease_name(identity: str) -> str:
    """A Lease name (a DNS label) for an id; ids that are not one get a hash suffix."""
    clean = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")
    name = f"modelmon-{clean}"
    if name[9:] != identity or len(name) > 63:
        suffix = hashlib.blake2b(identity.encode(), digest_size=4).hexdigest()
        name = f"{name[:54].rstrip('-')}-{suffix}"
    return name


@dataclass
class Seen:
    """One Lease as this replica observed it."""

    version: str
    holder: str | None
    duration: float
    since: float
    """When this replica first saw this version (its own clock)."""


@dataclass
class Membership:
    """This replica's view of the members and whether it may check a monitor now."""

    leases: LeaseApi
    identity: str
    namespace: str
    group: str
    duration: int = LEASE_DURATION_SECONDS
    clock: Callable[[], float] = time.monotonic
    on_renew_failure: Callable[[], None] = lambda: None
    valid_until: float = -math.inf
    """Checks may start until then (this replica's clock); past it, the replica is fenced."""
    ready_at: float = math.inf
    """Monitors may be taken from then on (one duration after joining)."""
    members: tuple[str, ...] = ()
    """The live members by the latest successful round, this replica among them."""
    seen: dict[str, Seen] = field(default_factory=dict)
    failures: int = 0
    """Failed rounds in a row."""

    @property
    def renew_seconds(self) -> float:
        return self.duration / 3

    @property
    def margin(self) -> float:
        return self.duration / 4

    @property
    def name(self) -> str:
        return lease_name(self.identity)

    @property
    def selector(self) -> str:
        return f"{GROUP_LABEL}={self.group}"

    # ------------------------------------------------------------------ the decision

    def active(self, now: float | None = None) -> bool:
        """Whether this replica may check anything now: renewed in time and joined."""
        now = self.clock() if now is None else now
        return self.ready_at <= now < self.valid_until

    def owner(self, uid: str) -> str | None:
        return owner(uid, self.members)

    def may_check(self, uid: str, now: float | None = None) -> bool:
        """Whether this replica may start a check of the monitor with ``uid`` now."""
        return self.active(now) and self.owner(uid) == self.identity

    # ------------------------------------------------------------------ the rounds

    def fetch(self) -> list[Lease]:
        """One round's requests (a thread): renew this replica's Lease, list the group's."""
        self.leases.write_lease(self.namespace, self.name, self.identity, self.duration,
                                {GROUP_LABEL: self.group})
        return self.leases.list_leases(self.namespace, self.selector)

    def apply(self, started: float, found: Sequence[Lease]) -> None:
        """A round that began at ``started`` succeeded with ``found``."""
        now = self.clock()
        if now >= self.valid_until:  # joined, or lapsed meanwhile: others may have taken
            self.ready_at = now + self.duration
            log.info("replica %s joined (Lease %s/%s); it takes monitors in %d s",
                     self.identity, self.namespace, self.name, self.duration,
                     extra=fields("membership", replica=self.identity, action="joined",
                                  lease=f"{self.namespace}/{self.name}"))
        self.valid_until = started + self.duration - self.margin
        if self.failures:
            log.info("replica %s renewed its Lease again after %d failed attempts",
                     self.identity, self.failures,
                     extra=fields("membership", replica=self.identity, action="renewed",
                                  failures=self.failures))
        self.failures = 0
        # When a version was first seen: the round's start if the round was quick (the
        # version was written at most margin/2 before it), else its end.
        seen_at = started if now - started < self.margin / 2 else now
        listed = {lease.name for lease in found}
        for lease in found:
            known = self.seen.get(lease.name)
            if known is None or known.version != lease.resource_version:
                self.seen[lease.name] = Seen(lease.resource_version, lease.holder,
                                             lease.duration_seconds or self.duration, seen_at)
        for gone in set(self.seen) - listed:  # deleted: live until it would have expired
            if now - self.seen[gone].since >= self.seen[gone].duration:
                del self.seen[gone]
        self.refresh()

    def refresh(self) -> None:
        """The live members now (this replica's last successful round saw their Leases
        change less than a duration ago)."""
        now = self.clock()
        members = {self.identity} | {
            known.holder for known in self.seen.values()
            if known.holder is not None and now - known.since < known.duration}
        before = set(self.members)
        self.members = tuple(sorted(members))
        if before and members != before:
            joined, left = sorted(members - before), sorted(before - members)
            log.info("replica members now %s (joined %s, left %s)", ", ".join(self.members),
                     ", ".join(joined) or "none", ", ".join(left) or "none",
                     extra=fields("membership", replica=self.identity, action="members",
                                  members=list(self.members), joined=joined, left=left))

    def failed(self, exc: BaseException) -> None:
        """A round failed: the Lease was not renewed (checks stop at ``valid_until``)."""
        self.failures += 1
        self.on_renew_failure()
        if self.failures == 1:
            left = self.valid_until - self.clock()
            log.warning("replica %s cannot renew its Lease %s/%s: %s; %s", self.identity,
                        self.namespace, self.name, _why(exc),
                        f"its checks stop in {left:.0f} s unless a renewal succeeds"
                        if left > 0 else "it checks nothing until a renewal succeeds",
                        extra=fields("membership", replica=self.identity,
                                     action="renew-failed", reason=_why(exc)))

    def next_wake(self, round_due: float) -> float:
        """When the loop must look again: the next round, a change of ``active``, or a
        member's Lease expiring."""
        now = self.clock()
        expiries = [known.since + known.duration for known in self.seen.values()
                    if known.holder not in (None, self.identity)]
        times = [t for t in (self.valid_until, self.ready_at, *expiries) if t > now]
        return min([round_due, *times])

    async def run(self, on_change: Callable[[], None]) -> None:
        """Renew and list until cancelled; ``on_change`` hears every round and every
        moment ``active`` changes (the fleet then takes and releases monitors)."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelmon-lease")
        try:
            while True:
                started = self.clock()
                try:
                    found = await loop.run_in_executor(pool, self.fetch)
                except Exception as exc:  # any failure means: not renewed
                    self.failed(exc)
                    round_due = self.clock() + RETRY_SECONDS
                else:
                    self.apply(started, found)
                    round_due = started + self.renew_seconds
                self._notify(on_change)
                while (wake := self.next_wake(round_due)) < round_due:
                    await asyncio.sleep(max(0.0, wake - self.clock()))
                    self.refresh()
                    self._notify(on_change)
                await asyncio.sleep(max(0.0, round_due - self.clock()))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _notify(self, on_change: Callable[[], None]) -> None:
        """Tell the fleet; a bug there must not stop the renewals."""
        try:
            on_change()
        except Exception:
            log.exception("replica %s: taking and releasing monitors failed", self.identity)

    def release(self) -> None:
        """Leaving (after the checks stopped): drop the holder so that the others take
        this replica's monitors at their next round. Best effort."""
        self.valid_until = -math.inf
        with contextlib.suppress(Exception):
            self.leases.write_lease(self.namespace, self.name, None, self.duration,
                                    {GROUP_LABEL: self.group})
            log.info("replica %s released its Lease", self.identity,
                     extra=fields("membership", replica=self.identity, action="released"))


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__

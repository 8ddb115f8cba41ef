"""What the operator asks of the Kubernetes API, as a protocol: ``ClusterApi``.

Part of ``outputs`` (last stop on the data line). The fleet (``modelmon.worker``) and the
publisher (``outputs.publisher``) reach the cluster only through these operations: patch a
monitor's status, apply or delete its PrometheusRule, create and read retraining Jobs, post
Events, read the Secrets and ConfigMaps its sources and notifiers name, read a monitor's
stored status (a replica taking a monitor over), and probe whether the API server answers.
With several replicas, ``LeaseApi`` writes and lists their membership Leases
(``modelmon.membership``). ``outputs.kube.Kube`` makes them against an API server; the unit tests
keep a cluster in memory.

An answer that says no raises ``kubernetes.client.exceptions.ApiException`` (its ``status``
is the HTTP status: 404 when the monitor is gone); no answer at all raises
``ApiUnreachableError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelmon.sources.base import Resolver


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The monitor an API call is about."""

    namespace: str
    name: str
    uid: str


class StatusChangedError(Exception):
    """The status was written by someone else since this replica last wrote or read it."""


class ApiUnreachableError(Exception):
    """A request did not reach the API server, or got no answer in time."""


class RulesUnavailableError(Exception):
    """The cluster has no PrometheusRule API (prometheus-operator's CRDs are missing)."""


class RuleOwnedElsewhereError(Exception):
    """The PrometheusRule's name is taken by an object another owner controls."""


class ClusterApi(Protocol):
    """The Kubernetes operations of the fleet and the publisher (synchronous: callers run
    them in a thread pool of their own)."""

    @property
    def reachable(self) -> bool:
        """Whether the API server answered the latest request or probe."""
        ...

    def probe(self) -> bool:
        """Ask the API server whether it answers (cheap); its outcome sets ``reachable``."""
        ...

    def resolver(self, namespace: str, use_label: str | None) -> Resolver:
        """A reader of ``namespace``'s Secrets and ConfigMaps that carry ``use_label``
        (every one with None), each read once: make one per check."""
        ...

    def read_status(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The monitor's stored ``.status`` as the API server holds it now (``{}`` when it
        has none), or None when the monitor (with this uid) no longer exists."""
        ...

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        """Merge-patch the monitor's ``.status`` (one request)."""
        ...

    def replace_status_if(self, ref: ObjectRef, status: dict[str, Any],
                          last_check: str | None) -> None:
        """Replace the monitor's ``.status`` (one request) only while its
        ``lastCheck.time`` is still ``last_check``: raises ``StatusChangedError`` when
        another writer got there first. None: no precondition (it has no check yet)."""
        ...

    def apply_rule(self, rule: dict[str, Any]) -> bool:
        """Create or update a PrometheusRule; True when something changed. Raises
        ``RulesUnavailableError`` and ``RuleOwnedElsewhereError``."""
        ...

    def delete_rule(self, namespace: str, monitor: str) -> None:
        """Delete a monitor's PrometheusRule if it exists."""
        ...

    def create_job(self, body: dict[str, Any]) -> None:
        """Create a Job (the retraining hook)."""
        ...

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job (metadata, spec and status), or None when it does not exist."""
        ...

    def event(self, ref: ObjectRef, kind: str, reason: str, message: str) -> None:
        """Post an Event about the monitor; best effort, never raises."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A membership Lease (``coordination.k8s.io/v1``) as listed."""

    name: str
    holder: str | None
    """``spec.holderIdentity``: the replica's id; None once it released the Lease."""
    renew_time: str | None
    """``spec.renewTime`` as the API server returns it (the holder's clock)."""
    duration_seconds: float
    """``spec.leaseDurationSeconds``."""
    resource_version: str
    """Changes with every write: what observers compare (their own clock times it)."""


class LeaseApi(Protocol):
    """The membership Leases of the replicas (``coordination.k8s.io/v1`` in one namespace):
    get, list, watch, create and update there are the RBAC it needs."""

    def write_lease(self, namespace: str, name: str, holder: str | None,
                    duration_seconds: int, labels: Mapping[str, str]) -> Lease:
        """Renew (update) the Lease, creating it when it does not exist: holder,
        duration and ``renewTime`` now. ``holder`` None releases it."""
        ...

    def list_leases(self, namespace: str, selector: str) -> list[Lease]:
        """The Leases whose labels match ``selector`` (a label selector)."""
        ...

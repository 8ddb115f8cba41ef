"""A Kubernetes cluster in memory: ``outputs.cluster.ClusterApi`` for the fleet's unit tests.

Holds ModelMonitors (metadata, spec, status), PrometheusRules, Jobs, Events and ConfigMaps in
dicts and records every status patch, so that a test drives the fleet as the watch would
(``add``, ``change_spec``, ``delete``) and reads what the publisher wrote. It answers as an
API server does where the fleet looks: 404 for a status patch of a deleted monitor, 409 for
a Job that exists, ``ApiUnreachableError`` while ``reachable`` is False. The real API server
is exercised by tests/integration.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelmon.api.names import rule_name
from modelmon.outputs.cluster import ApiUnreachableError, Lease, ObjectRef, StatusChangedError
from modelmon.sources.base import MissingKeyError, Resolver, SourceError

Key = tuple[str, str]


@dataclass(frozen=True)
class PostedEvent:
    ref: ObjectRef
    kind: str
    reason: str
    message: str


@dataclass(frozen=True)
class StatusPatch:
    key: Key
    body: dict[str, Any]


class Gate:
    """Holds ConfigMap reads while closed, so that a test can act while a check is caught
    half-way (its thread waits in the read)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.waiting = threading.Event()
        """A read waits at the closed gate."""

    def close(self) -> None:
        self.waiting.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def pass_through(self) -> None:
        if not self._open.is_set():
            self.waiting.set()
            self._open.wait(timeout=30)


class MemoryResolver:
    """The ConfigMaps of one namespace (no Secrets: the tests' monitors name none)."""

    def __init__(self, cluster: MemoryCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def secret(self, name: str, key: str) -> str:
        raise SourceError(f"Secret {self.namespace}/{name} not found")

    def config_map(self, name: str, key: str) -> str:
        self.cluster.gate.pass_through()
        with self.cluster.lock:
            data = self.cluster.config_maps.get((self.namespace, name))
        if data is None:
            raise SourceError(f"ConfigMap {self.namespace}/{name} not found")
        if key not in data:
            raise MissingKeyError(f"ConfigMap {self.namespace}/{name} has no key {key!r}")
        return data[key]


class MemoryCluster:
    """ModelMonitors and what the operator writes about them, in memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reachable = True
        """While False every call raises ``ApiUnreachableError`` (an outage)."""
        self.monitors: dict[Key, dict[str, Any]] = {}
        self.config_maps: dict[Key, dict[str, str]] = {}
        self.rules: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.events: list[PostedEvent] = []
        self.patches: list[StatusPatch] = []
        self.gate = Gate()
        self.leases: dict[Key, tuple[Lease, dict[str, str]]] = {}
        """Membership Leases by (namespace, name), with their labels."""
        self.lease_outage: set[str] = set()
        """Holders whose Lease writes fail (a partition between them and the server)."""
        self._versions = itertools.count(1)

    # ---------------------------------------------------- what the watch would report

    def add(self, monitor: dict[str, Any]) -> dict[str, Any]:
        """Create a monitor (``metadata`` with namespace and name, ``spec``, optionally a
        stored ``status``); returns it as the watch reports it."""
        body = copy.deepcopy(monitor)
        body["metadata"].update(uid=str(uuid.uuid4()), generation=1)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock:
            self.monitors[key] = body
            return copy.deepcopy(body)

    def change_spec(self, key: Key, spec: dict[str, Any]) -> dict[str, Any]:
        """Replace a monitor's spec (a new generation); returns it as the watch reports it."""
        with self.lock:
            body = self.monitors[key]
            body["spec"] = copy.deepcopy(spec)
            body["metadata"]["generation"] += 1
            return copy.deepcopy(body)

    def delete(self, key: Key) -> None:
        with self.lock:
            del self.monitors[key]

    def statuses(self, key: Key) -> list[dict[str, Any]]:
        """The status bodies patched for a monitor, oldest first."""
        with self.lock:
            return [patch.body for patch in self.patches if patch.key == key]

    # -------------------------------------------------------------------- ClusterApi

    def _answer(self) -> None:
        if not self.reachable:
            raise ApiUnreachableError("ConnectionRefusedError: the test cluster is down")

    def probe(self) -> bool:
        return self.reachable

    def resolver(self, namespace: str, use_label: str | None) -> Resolver:
        return MemoryResolver(self, namespace)

    def read_status(self, ref: ObjectRef) -> dict[str, Any] | None:
        self._answer()
        with self.lock:
            body = self.monitors.get((ref.namespace, ref.name))
            if body is None or body["metadata"]["uid"] != ref.uid:
                return None
            return copy.deepcopy(body.get("status") or {})

    def write_lease(self, namespace: str, name: str, holder: str | None,
                    duration_seconds: int, labels: Mapping[str, str]) -> Lease:
        self._answer()
        if holder in self.lease_outage:
            raise ApiUnreachableError("ConnectionRefusedError: partitioned in the test")
        with self.lock:
            lease = Lease(name, holder, None, float(duration_seconds),
                          str(next(self._versions)))
            self.leases[(namespace, name)] = (lease, dict(labels))
            return lease

    def list_leases(self, namespace: str, selector: str) -> list[Lease]:
        self._answer()
        key, _, value = selector.partition("=")
        with self.lock:
            return [lease for (space, _name), (lease, labels) in self.leases.items()
                    if space == namespace and labels.get(key) == value]

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        self._answer()
        key = (ref.namespace, ref.name)
        with self.lock:
            body = self.monitors.get(key)
            if body is None or body["metadata"]["uid"] != ref.uid:
                raise ApiException(status=404, reason="Not Found")
            stored = body.setdefault("status", {})
            for field, value in status.items():
                if value is None:
                    stored.pop(field, None)
                else:
                    stored[field] = copy.deepcopy(value)
            self.patches.append(StatusPatch(key, copy.deepcopy(status)))

    def replace_status_if(self, ref: ObjectRef, status: dict[str, Any],
                          last_check: str | None) -> None:
        self._answer()
        key = (ref.namespace, ref.name)
        with self.lock:
            body = self.monitors.get(key)
            if body is None or body["metadata"]["uid"] != ref.uid:
                raise ApiException(status=404, reason="Not Found")
            stored = (body.get("status") or {}).get("lastCheck") or {}
            if last_check is not None and stored.get("time") != last_check:
                raise StatusChangedError(f"lastCheck is {stored.get('time')}")
            body["status"] = {k: copy.deepcopy(v) for k, v in status.items() if v is not None}
            self.patches.append(StatusPatch(key, copy.deepcopy(status)))

    def apply_rule(self, rule: dict[str, Any]) -> bool:
        self._answer()
        key = (rule["metadata"]["namespace"], rule["metadata"]["name"])
        with self.lock:
            changed = self.rules.get(key) != rule
            self.rules[key] = copy.deepcopy(rule)
            return changed

    def delete_rule(self, namespace: str, monitor: str) -> None:
        self._answer()
        with self.lock:
            self.rules.pop((namespace, rule_name(monitor)), None)

    def create_job(self, body: dict[str, Any]) -> None:
        self._answer()
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock:
            if key in self.jobs:
                raise ApiException(status=409, reason="AlreadyExists")
            self.jobs[key] = copy.deepcopy(body)

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._answer()
        with self.lock:
            job = self.jobs.get((namespace, name))
            return copy.deepcopy(job) if job is not None else None

    def event(self, ref: ObjectRef, kind: str, reason: str, message: str) -> None:
        if not self.reachable:
            return  # best effort, as the real one
        with self.lock:
            self.events.append(PostedEvent(ref, kind, reason, message))

"""Kubernetes API calls the operator makes: status patches, PrometheusRules and Events.

Last stop on the data line (``outputs``). ``Kube`` makes the calls of
``outputs.cluster.ClusterApi`` (whose errors and ``ObjectRef`` it re-exports) against an API
server. The calls are synchronous (the ``kubernetes`` client); the publisher runs them in a
small thread pool of their own so that neither the event loop nor the statistics pool waits
on the network. Nothing here logs or returns a Secret.

Every request has a timeout, and every request's outcome feeds ``Reachability``: an API
server that cannot be reached is logged once when that starts and once when it ends (no
traceback), requests raise ``ApiUnreachableError``, and /readyz fails meanwhile.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelmon.api.messages import cap_text
from modelmon.api.names import rule_name
from modelmon.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelmon.outputs.cluster import (
    ApiUnreachableError,
    Lease,
    ObjectRef,
    RuleOwnedElsewhereError,
    RulesUnavailableError,
    StatusChangedError,
)
from modelmon.outputs.rules import RULE_API_VERSION
from modelmon.sources.base import Resolver
from modelmon.sources.resolvers import KubeResolver

__all__ = [
    "COMPONENT",
    "PROBE_TIMEOUT",
    "REQUEST_TIMEOUT",
    "RULE_GROUP",
    "RULE_PLURAL",
    "RULE_VERSION",
    "ApiUnreachableError",
    "Kube",
    "ObjectRef",
    "Reachability",
    "RuleOwnedElsewhereError",
    "RulesUnavailableError",
    "load_config",
    "unreachable",
]

log = logging.getLogger(__name__)

RULE_GROUP, RULE_VERSION = RULE_API_VERSION.split("/")
RULE_PLURAL = "prometheusrules"
COMPONENT = "modelmon"


#: (connect, read) seconds of every request the operator makes (the client has none).
REQUEST_TIMEOUT = (5.0, 30.0)
#: The reachability probe's (connect, read) seconds: a stalled server counts as down soon.
PROBE_TIMEOUT = (2.0, 3.0)


def _controller(meta: dict[str, Any]) -> dict[str, Any] | None:
    return next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)


def _check_owner(live: dict[str, Any], rule: dict[str, Any]) -> None:
    """Refuse to take over a rule that another object controls: two owners would replace
    each other's rule in turn, and one monitor's alerts would be silently gone."""
    ours, theirs = _controller(rule["metadata"]), _controller(live.get("metadata") or {})
    if ours is None or theirs is None or theirs.get("uid") == ours.get("uid"):
        return
    name = rule["metadata"]["name"]
    raise RuleOwnedElsewhereError(
        f"the PrometheusRule {name} exists and is controlled by {theirs.get('kind')} "
        f"{theirs.get('name')}, not by this monitor; delete that rule or rename one of "
        "them")


def _lease(lease: Any) -> Lease:
    """Our view of a ``V1Lease``."""
    spec, meta = lease.spec, lease.metadata
    renewed = spec.renew_time
    return Lease(name=meta.name, holder=spec.holder_identity or None,
                 renew_time=renewed.isoformat() if renewed is not None else None,
                 duration_seconds=float(spec.lease_duration_seconds or 0),
                 resource_version=str(meta.resource_version))


def _discard(response: Any) -> None:
    """Read and drop a response (the whole object a status patch answers with, which
    nothing uses: not parsed), so that its connection goes back to the pool. An error
    status was raised before."""
    response.read()
    response.release_conn()


def unreachable(exc: BaseException) -> bool:
    """Whether a request's error means no answer from the server (refused, reset, timed
    out, TLS failed), as opposed to an answer that says no (an HTTP status)."""
    if isinstance(exc, ApiException):
        return not exc.status  # the client reports TLS failures as status 0
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _why(exc: BaseException) -> str:
    """A short reason for the log: the error's kind and first line (no request data)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class Reachability:
    """Whether the API server answers, from the outcome of every request and a probe.

    Thread-safe: requests finish in the API pool's threads, the check threads (Secret and
    ConfigMap reads) and the probe. The first failure of an outage logs one warning, the
    first success after it one more; nothing in between.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.outages = 0
        """Outages seen since start (tests and the log read it)."""

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = self.clock()
            self.outages += 1
        log.warning("the API server is unreachable: %s; checks keep running, status writes "
                    "wait", _why(exc))

    def succeeded(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            seconds, self.down_since = self.clock() - self.down_since, None
        log.warning("the API server is reachable again after %.0f s; writing the statuses "
                    "held meanwhile", seconds)


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """An API client from the in-cluster service account, else from the kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


class Kube:
    """The operator's calls to the API server: ``outputs.cluster.ClusterApi``."""

    def __init__(self, api: client.ApiClient,
                 on_request: Callable[[str], None] | None = None) -> None:
        """``on_request`` hears the HTTP method of every request made through ``api``
        (status patches, rules, Events, Jobs, and the Secret and ConfigMap reads of
        sources): the operator counts them in ``modelmon_kube_requests_total``."""
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.reachability = Reachability()
        rest = api.rest_client
        send: Callable[..., Any] = rest.request
        reach = self.reachability

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if on_request is not None:
                on_request(method)
            if kwargs.get("_request_timeout") is None:
                kwargs["_request_timeout"] = REQUEST_TIMEOUT
            try:
                response = send(method, url, *args, **kwargs)
            except Exception as exc:
                if not unreachable(exc):
                    reach.succeeded()  # an HTTP error status is an answer
                    raise
                reach.failed(exc)
                raise ApiUnreachableError(_why(exc)) from None
            reach.succeeded()
            return response

        rest.request = request  # type: ignore[method-assign]
        # The probe's own client: no retries, so that a stalled server shows at once.
        probe_cfg = copy.copy(api.configuration)
        probe_cfg.retries = False
        self._probe = client.VersionApi(client.ApiClient(probe_cfg))

    @property
    def reachable(self) -> bool:
        return self.reachability.reachable

    def resolver(self, namespace: str, use_label: str | None) -> Resolver:
        return KubeResolver(self.core, namespace, use_label)

    def probe(self) -> bool:
        """Ask the server for its version (cheap; any authenticated identity may): whether
        it answered. Its outcome feeds ``reachability`` like any request's."""
        try:
            self._probe.get_code(_request_timeout=PROBE_TIMEOUT)
        except Exception as exc:
            if unreachable(exc):
                self.reachability.failed(exc)
                return False
        self.reachability.succeeded()
        return True

    def read_status(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The monitor's ``.status`` now (a quorum read), None when it is gone."""
        try:
            body: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, ref.namespace, PLURAL, ref.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if (body.get("metadata") or {}).get("uid") != ref.uid:
            return None  # same name, another object: ours is gone
        return dict(body.get("status") or {})

    def write_lease(self, namespace: str, name: str, holder: str | None,
                    duration_seconds: int, labels: Mapping[str, str]) -> Lease:
        """Renew the membership Lease (get, then update with its resourceVersion), creating
        it when it is missing: the verbs get, create and update on leases."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": holder, "leaseDurationSeconds": duration_seconds,
                "renewTime": now}
        coordination = client.CoordinationV1Api(self.api)
        try:
            live = coordination.read_namespaced_lease(name, namespace)
        except ApiException as exc:
            if exc.status != 404 or holder is None:
                raise
            body = client.V1Lease.from_dict({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                "spec": {**spec, "acquireTime": now}})
            assert body is not None
            return _lease(coordination.create_namespaced_lease(namespace, body))
        current: dict[str, Any] = self.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            live)
        current["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}),
                                         **labels}
        current["spec"] = {**current.get("spec", {}), **spec}
        if holder is None:
            current["spec"].pop("holderIdentity", None)
        replaced = client.V1Lease.from_dict(current)
        assert replaced is not None
        return _lease(coordination.replace_namespaced_lease(name, namespace, replaced))

    def list_leases(self, namespace: str, selector: str) -> list[Lease]:
        """The Leases of ``namespace`` that match the label ``selector``."""
        found = client.CoordinationV1Api(self.api).list_namespaced_lease(
            namespace, label_selector=selector)
        return [_lease(item) for item in found.items]

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        """Merge-patch ``.status`` through the status subresource (one request)."""
        _discard(self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": status},
            _preload_content=False))

    def replace_status_if(self, ref: ObjectRef, status: dict[str, Any],
                          last_check: str | None) -> None:
        """A JSON patch of the status subresource: test ``lastCheck.time``, then put the
        whole status (a failed test writes nothing and answers 422)."""
        body = {key: value for key, value in status.items() if value is not None}
        ops: list[dict[str, Any]] = []
        if last_check is not None:
            ops.append({"op": "test", "path": "/status/lastCheck/time", "value": last_check})
        ops.append({"op": "add", "path": "/status", "value": body})
        try:
            _discard(self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, ops,
                _content_type="application/json-patch+json", _preload_content=False))
        except ApiException as exc:
            # A failed test is a bare 422 "Invalid": read back whether it was the test.
            if last_check is None or exc.status != 422:
                raise
            stored = self.read_status(ref)
            if stored is None:
                raise ApiException(status=404, reason="Not Found") from None
            if (stored.get("lastCheck") or {}).get("time") == last_check:
                raise
            raise StatusChangedError(
                f"the status of {ref.namespace}/{ref.name} was written by another "
                "replica") from None

    def apply_rule(self, rule: dict[str, Any]) -> bool:
        """Create or update a PrometheusRule; True when something changed."""
        namespace, name = rule["metadata"]["namespace"], rule["metadata"]["name"]
        try:
            live: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create_rule(rule)
        _check_owner(live, rule)
        same = (live.get("spec") == rule["spec"]
                and all(live["metadata"].get("labels", {}).get(k) == v
                        for k, v in rule["metadata"]["labels"].items())
                and live["metadata"].get("ownerReferences") ==
                rule["metadata"].get("ownerReferences"))
        if same:
            return False
        body = {**rule, "metadata": {**rule["metadata"],
                                     "resourceVersion": live["metadata"]["resourceVersion"]}}
        self.custom.replace_namespaced_custom_object(
            RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, name, body)
        return True

    def _create_rule(self, rule: dict[str, Any]) -> bool:
        # A create that loses a race with another owner gets 409; reading it back (next
        # check) then reports whose it is.
        namespace = rule["metadata"]["namespace"]
        try:
            self.custom.create_namespaced_custom_object(
                RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, rule)
        except ApiException as exc:
            # 404 on create: the apiserver does not serve monitoring.coreos.com/v1.
            if exc.status == 404:
                raise RulesUnavailableError(
                    "the cluster has no PrometheusRule API; install prometheus-operator's "
                    "CRDs (kube-prometheus-stack does) or set "
                    "spec.alerting.prometheusRule.enabled: false") from None
            raise
        return True

    def delete_rule(self, namespace: str, monitor: str) -> None:
        """Delete a monitor's PrometheusRule if it exists (rules turned off)."""
        try:
            self.custom.delete_namespaced_custom_object(
                RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, rule_name(monitor))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def create_job(self, body: dict[str, Any]) -> None:
        """Create a Job (the retraining hook)."""
        job = client.V1Job.from_dict(body)
        assert job is not None
        client.BatchV1Api(self.api).create_namespaced_job(body["metadata"]["namespace"], job)

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job (metadata, spec and status), or None when it does not exist. Reads the Job
        itself, which ``get`` on jobs allows, not the jobs/status subresource."""
        try:
            job = client.BatchV1Api(self.api).read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = self.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            job)
        return body

    def event(self, ref: ObjectRef, kind: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about the monitor (what ``kubectl describe`` shows)."""
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": ref.name,
                               "namespace": ref.namespace, "uid": ref.uid},
            "type": kind, "reason": reason, "message": cap_text(message),
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now.isoformat(), "lastTimestamp": now.isoformat(), "count": 1,
        }
        try:
            event = client.CoreV1Event.from_dict(body)
            assert event is not None
            self.core.create_namespaced_event(ref.namespace, event)
        except ApiException as exc:  # an event is best effort: never fail a check for it
            log.warning("cannot post event %s for %s/%s: HTTP %s", reason, ref.namespace,
                        ref.name, exc.status)
        except ApiUnreachableError:  # the outage is logged once by Reachability
            pass

"""Kubernetes API calls the operator makes: status patches, PrometheusRules and Events.

Last stop on the data line (``outputs``). The calls are synchronous (the ``kubernetes``
client); the worker runs them in a small thread pool of their own so that neither the event
loop nor the statistics pool waits on the network. Nothing here logs or returns a Secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelmon.api.messages import cap_text
from modelmon.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelmon.outputs.rules import RULE_API_VERSION, rule_name

log = logging.getLogger(__name__)

RULE_GROUP, RULE_VERSION = RULE_API_VERSION.split("/")
RULE_PLURAL = "prometheusrules"
COMPONENT = "modelmon"


class RulesUnavailableError(Exception):
    """The cluster has no PrometheusRule API (prometheus-operator's CRDs are missing)."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The monitor an API call is about."""

    namespace: str
    name: str
    uid: str


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
    """The operator's writes to the API."""

    def __init__(self, api: client.ApiClient,
                 on_request: Callable[[str], None] | None = None) -> None:
        """``on_request`` hears the HTTP method of every request made through ``api``
        (status patches, rules, Events, Jobs, and the Secret and ConfigMap reads of
        sources): the operator counts them in ``modelmon_kube_requests_total``."""
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        if on_request is not None:
            rest = api.rest_client
            send: Callable[..., Any] = rest.request

            def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                on_request(method)
                return send(method, url, *args, **kwargs)

            rest.request = counted  # type: ignore[method-assign]

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        """Merge-patch ``.status`` through the status subresource (one request)."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": status})

    def apply_rule(self, rule: dict[str, Any]) -> bool:
        """Create or update a PrometheusRule; True when something changed."""
        ns, name = rule["metadata"]["namespace"], rule["metadata"]["name"]
        try:
            live: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                RULE_GROUP, RULE_VERSION, ns, RULE_PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create_rule(rule)
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
            RULE_GROUP, RULE_VERSION, ns, RULE_PLURAL, name, body)
        return True

    def _create_rule(self, rule: dict[str, Any]) -> bool:
        ns = rule["metadata"]["namespace"]
        try:
            self.custom.create_namespaced_custom_object(
                RULE_GROUP, RULE_VERSION, ns, RULE_PLURAL, rule)
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

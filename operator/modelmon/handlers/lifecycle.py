"""Operator lifecycle: running kopf, settings at start-up, the event-loop heartbeat, and shutdown.

The heartbeat itself and the server that reads it live in ``modelmon.health``; these
handlers only start and stop it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import kopf

from modelmon.handlers import decoding
from modelmon.health import Health
from modelmon.worker import Fleet


class OperatorMemo(kopf.Memo):
    """What the handlers share: the fleet, the health state and where credentials come from."""

    fleet: Fleet
    health: Health
    kubeconfig: str | None
    namespaces: list[str]


def watch(fleet: Fleet, health: Health, kubeconfig: str | None, namespaces: list[str],
          ready: threading.Event) -> None:
    """Run kopf with modelmon's handlers until SIGINT/SIGTERM: in ``namespaces``, or in all
    namespaces when there are none. ``ready`` is set once kopf watches. The watch events
    are decoded with orjson, and the status patches the fleet takes in itself never reach
    kopf's handlers (``decoding.install``, ``Fleet.absorb``)."""
    decoding.install(screen=fleet.absorb)
    memo = OperatorMemo()
    memo.fleet, memo.health = fleet, health
    memo.kubeconfig, memo.namespaces = kubeconfig, namespaces
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces,
             ready_flag=ready, memo=memo)


def connection_info(kubeconfig: str | None, trust_env: bool = False) -> kopf.ConnectionInfo:
    """kopf's credentials, taken from the API client modelmon's own writes use."""
    from modelmon.outputs.kube import load_config

    cfg = load_config(kubeconfig).configuration
    header = (cfg.get_api_key_with_prefix("BearerToken")
              or cfg.get_api_key_with_prefix("authorization") or "")
    scheme, _sep, token = header.rpartition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        username=cfg.username or None, password=cfg.password or None,
        scheme=scheme or None, token=token or None,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file, trust_env=trust_env)


class NoEssence(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base for modelmon, which has no create/update handlers and so never
    diffs: no essence. kopf's own builds one on every event, a deep copy of the whole body,
    status and all (every replica gets every status patch as an event)."""

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def apply_settings(settings: kopf.OperatorSettings, namespaces: list[str]) -> None:
    """modelmon posts its own Events and keeps no state in the monitors.

    Watching named namespaces, kopf would otherwise list and watch every namespace and every
    CRD in the cluster, and without cluster-wide RBAC for that it retries for about a minute
    before its first watch: a namespaced install then needs no ClusterRole at all. The
    ModelMonitor CRD must exist when such an operator starts. Watching all namespaces, kopf
    watches CRDs so that the CRD may also be installed after the operator.
    """
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoEssence()
    settings.scanning.disabled = bool(namespaces)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


@kopf.on.login()
def login(memo: OperatorMemo, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf connects as modelmon's own API client does: ``--kubeconfig``, else the pod's
    service account, else ``$KUBECONFIG``.

    kopf's default login would read ``$KUBECONFIG`` as the ``kubernetes`` package saw it at
    import time and prefer in-cluster credentials, so with ``--kubeconfig`` the watch could
    run as another identity than the writes. kopf calls this again after a 401, which rereads
    a rotated service-account token.
    """
    return connection_info(memo.kubeconfig, settings.networking.trust_env)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    """kopf settings, the heartbeat that /healthz reads, and the API server probe that
    /readyz reads."""
    apply_settings(settings, memo.namespaces)
    memo.health.task = asyncio.get_running_loop().create_task(memo.health.run())
    memo.fleet.start_watching_api()


@kopf.on.cleanup()
async def shutdown(memo: OperatorMemo, **_: Any) -> None:
    """Stop the workers before kopf exits."""
    if memo.health.task is not None:
        memo.health.task.cancel()
    await memo.fleet.shutdown()

"""The fleet without kopf, against the real API server: what no watch event tells it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from kube import Cluster, Kubectl
from monitors import EXAMPLE, apply, get, monitor, status_when

from modelmon.api.policy import Policy
from modelmon.outputs.kube import Kube, load_config
from modelmon.outputs.metrics import Metrics
from modelmon.worker import Fleet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def series(metrics: Metrics) -> set[str]:
    return {s.name for f in metrics.registry.collect() for s in f.samples
            if s.labels.get("monitor") == "gone"}


def test_a_worker_whose_monitor_vanished_retires(cluster: Cluster, kubectl: Kubectl,
                                                 namespace: str, tmp_path: Path) -> None:
    """A delete the watch never reported (a watch resumed after a gap re-lists and sends no
    DELETED event): the next status patch answers 404, the worker stops and its series go."""
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    apply(kubectl, namespace, monitor("gone", tmp_path))
    body = get(kubectl, namespace, "gone")

    async def scenario() -> None:
        metrics = Metrics()
        fleet = Fleet(Kube(load_config(str(cluster.kubeconfig))), metrics, workers=1,
                      policy=Policy(local_paths=(tmp_path.resolve(),)))
        try:
            fleet.upsert(body)
            await asyncio.to_thread(status_when, kubectl, namespace, "gone",
                                    lambda s: s.get("lastCheck"), 30)
            for _ in range(100):  # the series follow the status patch (and its Events)
                if series(metrics):
                    break
                await asyncio.sleep(0.1)
            assert series(metrics)
            kubectl("delete", "mm", "gone", "-n", namespace)  # nobody tells the fleet
            for _ in range(300):  # the next check is due within the 10 s interval
                if (namespace, "gone") not in fleet.monitors:
                    break
                await asyncio.sleep(0.1)
            assert (namespace, "gone") not in fleet.monitors
            assert series(metrics) == set()
        finally:
            await fleet.shutdown()

    asyncio.run(scenario())

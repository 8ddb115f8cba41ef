"""Helpers for tests that run monitors through the operator: manifests and status polls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kube import REPO_ROOT, Kubectl, manifest, wait_for
from operator_proc import OperatorProcess
from prometheus_client.parser import text_string_to_metric_families

from corpus import merge_patch

EXAMPLE = REPO_ROOT / "examples" / "breast-cancer"


def monitor(name: str, data: Path, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["schedule"] = {"interval": "10s"}
    doc["spec"]["reference"]["source"]["url"] = str(data / "reference.csv")
    doc["spec"]["current"]["source"]["url"] = str(data / "current.csv")
    doc["spec"]["alerting"] = {"labels": {"team": "risk"}}
    return dict(merge_patch(doc, {"spec": spec}))


def get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl.json("get", "mm", name, "-n", namespace)
    return obj


def status_when(kubectl: Kubectl, namespace: str, name: str, ok: Any, timeout: float = 60,
                what: str = "status") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        st = get(kubectl, namespace, name).get("status") or {}
        return st if st and ok(st) else None
    return wait_for(probe, timeout=timeout, what=what)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def series_of(op: OperatorProcess, namespace: str, monitor: str) -> set[str]:
    """Names of the series the operator exports for one monitor."""
    return {s.name for family in text_string_to_metric_families(op.metrics())
            for s in family.samples
            if s.labels.get("namespace") == namespace and s.labels.get("monitor") == monitor}


def apply(kubectl: Kubectl, namespace: str, doc: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(doc))

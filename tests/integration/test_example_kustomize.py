"""The bundled example runs in a cluster as written: `kubectl apply -k examples/breast-cancer`
creates the namespace, the ConfigMap generated from the CSVs and the monitor, and the
operator checks it unchanged, finding what `modelmon check examples/breast-cancer/monitor.yaml`
finds on a laptop. Also what an SRE sees of it: `kubectl get` (the server-side table), the
operator's JSON log lines and its build metric; and a busy port is one error line."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube import REPO_ROOT, Kubectl, table, wait_for
from monitors import condition, status_when
from operator_proc import OperatorProcess

from modelmon.check import run_check
from modelmon.monitor_files import load_monitors

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXAMPLE = REPO_ROOT / "examples" / "breast-cancer"
NAMESPACE, NAME = "ml-demo", "breast-cancer"


@pytest.fixture
def applied(kubectl: Kubectl) -> Iterator[str]:
    """`kubectl apply -k examples/breast-cancer`, and everything it made deleted after."""
    out = kubectl("apply", "-k", str(EXAMPLE)).stdout
    yield out
    kubectl("delete", "-k", str(EXAMPLE), "--ignore-not-found", "--wait=true",
            "--timeout=90s", timeout=120)


def json_lines(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_apply_k_runs_the_example_under_the_operator(kubectl: Kubectl, applied: str,
                                                     cluster: Any, tmp_path: Path) -> None:
    assert f"namespace/{NAMESPACE}" in applied
    assert "configmap/breast-cancer-data" in applied
    assert f"modelmonitor.modelmon.io/{NAME}" in applied
    data = kubectl.json("get", "configmap", "breast-cancer-data", "-n", NAMESPACE)
    assert set(data["data"]) == {"reference.csv", "current.csv"}
    assert data["data"]["current.csv"] == (EXAMPLE / "current.csv").read_text()
    assert data["metadata"]["labels"]["modelmon.io/use"] == "true"

    op = OperatorProcess(cluster.kubeconfig, [NAMESPACE], tmp_path / "operator.log").start()
    try:
        status = status_when(kubectl, NAMESPACE, NAME, lambda st: st.get("lastCheck"),
                             timeout=120, what="the example's first check")
        wait_for(lambda: "event\": \"check\"" in op.logs() or None, timeout=30,
                 what="the check's log line")
        metrics = op.metrics()
    finally:
        op.stop()

    # What the laptop finds from the files, the operator finds from the ConfigMap.
    local = run_check(load_monitors(EXAMPLE / "monitor.yaml")[0].spec, base_dir=EXAMPLE)
    assert condition(status, "Ready")["status"] == "True"
    assert status["phase"] == local.phase == "Degraded"
    assert [f["name"] for f in status["findings"]] == [f.name for f in local.findings]
    assert local.summary is not None
    assert status["summary"] == local.summary.model_dump(by_alias=True, mode="json")
    assert local.last_check is not None
    assert status["lastCheck"]["currentRows"] == local.last_check.current_rows

    # kubectl get: the API server's table of the printer columns.
    (row,) = table(kubectl("get", "mm", "-n", NAMESPACE).stdout)
    assert [row[k] for k in ("NAME", "MODEL", "PHASE", "DRIFTED", "FINDINGS", "REASON")] == [
        NAME, "breast-cancer-lr", "Degraded", "5/9", str(len(local.findings)),
        "PerformanceDegraded"]
    (wide,) = table(kubectl("get", "mm", "-n", NAMESPACE, "-o", "wide").stdout)
    assert (wide["VERSION"], wide["INTERVAL"]) == ("1.0.0", "10m")
    assert wide["WORST"] == local.summary.worst
    assert wide["WORST"].startswith("critical: ")

    # The operator's log: one JSON line per check with the figures; nothing at warning.
    lines = json_lines(op.logs())
    (checked,) = [line for line in lines if line.get("event") == "check"]
    assert checked["level"] == "info" and checked["monitor"] == f"{NAMESPACE}/{NAME}"
    assert (checked["phase"], checked["drifted"], checked["rows"]) == (
        "Degraded", "5/9", status["lastCheck"]["currentRows"])
    assert sum(checked["findings"].values()) == len(status["findings"])
    assert [line for line in lines if line.get("level") in ("warning", "error")] == []
    assert [line["event"] for line in lines if line.get("event") == "watch"] == ["watch"]
    assert re.search(r'^modelmon_build_info\{python="[0-9.]+",version="[^"]+"\} 1\.0$',
                     metrics, re.M), metrics


def test_the_kustomized_example_checks_the_same_on_a_laptop(kubectl: Kubectl,
                                                           tmp_path: Path) -> None:
    """`kubectl kustomize` output holds the ConfigMap inline: `modelmon check` of it reads
    the data from there and finds what the files give."""
    built = tmp_path / "breast-cancer.yaml"
    built.write_text(kubectl("kustomize", str(EXAMPLE)).stdout)
    (monitor,) = load_monitors(built)
    assert monitor.spec.current.source.config_map is not None
    from modelmon.sources.resolvers import LocalResolver

    status = run_check(monitor.spec, base_dir=tmp_path,
                       resolver=LocalResolver.for_monitor(built))
    local = run_check(load_monitors(EXAMPLE / "monitor.yaml")[0].spec, base_dir=EXAMPLE)
    assert status.phase == local.phase == "Degraded"
    assert [f.name for f in status.findings] == [f.name for f in local.findings]


def test_a_busy_metrics_port_is_one_error_line(cluster: Any, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        op = OperatorProcess(cluster.kubeconfig, ["default"], tmp_path / "operator.log",
                             metrics_port=port)
        with pytest.raises(RuntimeError, match="operator exited 1"):
            op.start(ready_timeout=60)
        op.stop()
    log = op.logs()
    assert "Traceback" not in log
    errors = [line for line in json_lines(log) if line.get("level") == "error"]
    assert [line["message"] for line in errors] == [
        f"the metrics port {port} is already in use; choose another with --metrics-port or "
        "MODELMON_METRICS_PORT"]

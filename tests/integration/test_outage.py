"""An API server outage as the operator lives it: the session's kube-apiserver is stopped
(SIGSTOP: it keeps its port and connections but answers nothing, as a hung or partitioned
server does) and continued (SIGCONT) while a real operator process runs a monitor.

Only this session's cluster is touched (the conftest starts one per session), and the
server is continued whatever happens; with a reused cluster (KUBECONFIG) the test skips.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kube import Cluster, Kubectl, wait_for
from monitors import apply, condition, monitor, status_when
from operator_proc import OperatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: How long the server stays stopped: past the probe's detection (about 8 s) and the
#: monitor's 10 s interval, so that checks run and are held meanwhile.
OUTAGE_SECONDS = 25


def apiserver_pid(cluster: Cluster) -> int:
    if not cluster.started_here or cluster.state_dir is None:
        pytest.skip("stops the kube-apiserver: needs the cluster this session started")
    pid = int((cluster.state_dir / "kube-apiserver.pid").read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "kube-apiserver" in cmdline and str(cluster.state_dir) in cmdline, cmdline
    return pid


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    yield op
    assert op.stop() == 0, op.logs()[-3000:]


def messages(op: OperatorProcess) -> list[str]:
    out = []
    for line in op.logs().splitlines():
        try:
            out.append(str(json.loads(line)["message"]))
        except (ValueError, KeyError):
            out.append(line)
    return out


def test_outage_is_logged_once_fails_readyz_and_status_catches_up(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path,
        operator: OperatorProcess) -> None:
    pid = apiserver_pid(cluster)
    apply(kubectl, namespace, monitor("bc", data))
    status_when(kubectl, namespace, "bc", lambda s: s.get("lastCheck"), timeout=30)
    assert operator.health("/readyz")[0] == 200

    stopped_at = datetime.now(UTC)
    os.kill(pid, signal.SIGSTOP)
    try:
        def failing() -> tuple[int, str] | None:
            answer = operator.health("/readyz")
            return answer if answer[0] == 503 else None

        readyz = wait_for(failing, timeout=20, what="/readyz to fail")
        assert readyz[1].strip() == "API server unreachable"
        assert operator.health("/healthz")[0] == 200  # alive: no restart for an outage
        time.sleep(max(0.0, OUTAGE_SECONDS - (datetime.now(UTC) - stopped_at).total_seconds()))
        assert operator.health("/readyz")[0] == 503
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = datetime.now(UTC)

    wait_for(lambda: operator.health("/readyz")[0] == 200 or None, timeout=30,
             what="/readyz to pass again")

    def held(st: dict[str, Any]) -> bool:
        times = [datetime.fromisoformat(str(h["time"]).replace("Z", "+00:00"))
                 for h in st.get("history", [])]
        return any(stopped_at < t < resumed_at for t in times)

    # A check ran during the outage (10 s interval, 25 s outage); its result reaches the
    # cluster once the server answers, with nothing lost from the history.
    st = status_when(kubectl, namespace, "bc", held, timeout=30, what="the held status")
    assert st["phase"] == "Degraded"

    said = messages(operator)
    down = [m for m in said if m.startswith("the API server is unreachable: ")]
    up = [m for m in said if m.startswith("the API server is reachable again after ")]
    assert len(down) == 1, said
    assert down[0].endswith("; checks keep running, status writes wait")
    assert len(up) == 1, said
    seconds = float(up[0].split("after ")[1].split(" s")[0])
    assert OUTAGE_SECONDS - 12 <= seconds <= OUTAGE_SECONDS + 10, up
    logs = operator.logs()
    assert "Traceback" not in logs and '"exception"' not in logs, logs[-3000:]
    assert "unexpected" not in logs, logs[-3000:]


def test_long_invalid_spec_messages_are_capped_in_status_and_events(
        kubectl: Kubectl, namespace: str, data: Path, operator: OperatorProcess) -> None:
    absent = [f"absent_feature_{i:04d}" for i in range(2000)]
    apply(kubectl, namespace, monitor("long", data, columns={"features": absent}))
    st = status_when(kubectl, namespace, "long",
                     lambda s: condition(s, "Ready")["reason"] == "InvalidSpec", timeout=30)
    message = condition(st, "Ready")["message"]
    assert message.startswith("spec.columns.features: 'absent_feature_0000', ")
    assert "'absent_feature_0009' and 1990 more are not columns of the reference data" in (
        message)
    assert "absent_feature_0010" not in message and len(message.encode()) <= 1024
    events = wait_for(lambda: [e for e in kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=long")["items"]
        if e["reason"] == "InvalidSpec"], timeout=20, what="the InvalidSpec event")
    assert events[0]["message"] == message

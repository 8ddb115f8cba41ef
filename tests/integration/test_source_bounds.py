"""The operator's bounds on sources, as users run it: local files only where the
administrator allows, and a 600 MB source that neither takes the operator down nor holds
up another monitor."""

from __future__ import annotations

import http.server
import itertools
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from kube import Cluster, Kubectl
from monitors import EXAMPLE, apply, condition, get, monitor, status_when
from operator_proc import OperatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BIG = 600 * 10**6
"""Bytes of the served CSV (issue 14: a 600 MB CSV took the operator past 2 GiB)."""
GiB = 2**30
SECRET = "planted-token-operator-7c1e"  # fake: must never reach a message


class BigCsv(http.server.BaseHTTPRequestHandler):
    """A 600 MB CSV of the example's rows, generated as it is sent (nothing on disk):
    chunked without a Content-Length, or with one (``length``)."""

    protocol_version = "HTTP/1.1"
    length: ClassVar[bool] = False
    sent: ClassVar[int] = 0
    header: ClassVar[bytes] = b""
    block: ClassVar[bytes] = b""

    def log_message(self, *args: object) -> None:
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        if BigCsv.length:
            self.send_header("Content-Length", str(BIG))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        left = BIG
        try:
            for whole in itertools.chain([BigCsv.header], itertools.repeat(BigCsv.block)):
                block = whole[:left]
                if BigCsv.length:
                    self.wfile.write(block)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                BigCsv.sent += len(block)
                left -= len(block)
                if left == 0:
                    break
            if not BigCsv.length:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def big_csv() -> Iterator[str]:
    lines = (EXAMPLE / "current.csv").read_bytes().splitlines(keepends=True)
    BigCsv.header, BigCsv.block, BigCsv.sent = lines[0], b"".join(lines[1:]) * 50, 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BigCsv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/current.csv"
    server.shutdown()
    thread.join()


def high_water_mark(pid: int) -> int:
    """Peak resident set of a process, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def check_times(kubectl: Kubectl, namespace: str, name: str) -> list[datetime]:
    st = get(kubectl, namespace, name).get("status") or {}
    return sorted({datetime.fromisoformat(h["time"]) for h in st.get("history", [])})


@pytest.mark.parametrize("content_length", [False, True], ids=["chunked", "content-length"])
def test_a_600_mb_source_fails_fast_and_others_keep_their_schedule(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path, tmp_path: Path,
        big_csv: str, content_length: bool) -> None:
    BigCsv.length = content_length
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    try:
        steady = monitor("steady", data)  # 10 s interval
        big = monitor("big", data, schedule={"interval": "30s"})
        big["spec"]["current"]["source"] = {"url": big_csv, "format": "csv"}
        apply(kubectl, namespace, steady)
        status_when(kubectl, namespace, "steady", lambda s: s.get("lastCheck"), timeout=60,
                    what="the steady monitor's first check")
        applied = time.monotonic()
        apply(kubectl, namespace, big)
        st = status_when(
            kubectl, namespace, "big",
            lambda s: any(c["type"] == "Ready" and c["status"] == "False"
                          for c in s.get("conditions", [])),
            timeout=30, what="the big monitor's status within one interval")
        took = time.monotonic() - applied
        ready = condition(st, "Ready")
        assert ready["reason"] == "InvalidData", ready
        said = "Content-Length" if content_length else "stopped after"
        assert ready["message"].startswith(
            "spec.current.source.maxBytes: the source has more than 67108864 bytes "
            f"({said} "), ready["message"]
        assert took < 30 and st["phase"] == "Failing"
        if content_length:
            assert BigCsv.sent == 0  # refused from the HEAD's Content-Length alone
        else:
            assert BigCsv.sent < BIG / 4  # the operator hung up after its budget

        # Over the next 35 s the big monitor fails again at each of its checks while the
        # steady one keeps its 10 s schedule.
        before = check_times(kubectl, namespace, "steady")
        time.sleep(35)
        after = check_times(kubectl, namespace, "steady")
        new = [t for t in after if t > before[-1]]
        assert len(new) >= 3, (before, after)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise([before[-1], *new])]
        assert max(gaps) < 12, gaps
        big_st = get(kubectl, namespace, "big")["status"]
        assert len(big_st["history"]) >= 2
        assert {h["reason"] for h in big_st["history"]} == {"InvalidData"}

        peak = high_water_mark(op.proc.pid)  # type: ignore[union-attr]
        assert peak < GiB, f"operator peak RSS {peak / 2**20:.0f} MiB"
        print(f"operator peak RSS {peak / 2**20:.0f} MiB, status after {took:.1f}s, "
              f"{BigCsv.sent} bytes sent")
        assert "Traceback" not in op.logs()
    finally:
        assert op.stop() == 0, op.logs()[-3000:]


def test_a_monitor_cannot_read_files_outside_the_allowed_directories(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path,
        tmp_path: Path) -> None:
    """A file the operator can read but the administrator did not allow: its own
    kubeconfig-like secret, directly, through '..', and through a symlink in the allowed
    directory. Each is refused naming the field and the flag; the secret reaches no status
    or Event."""
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "token.csv").write_text(f"{SECRET}\n1\n")
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                         allow_local_paths=[data / "allowed"])
    (data / "allowed").mkdir()
    for name in ("reference.csv", "current.csv"):
        shutil.copy(data / name, data / "allowed" / name)
    (data / "allowed" / "escape.csv").symlink_to(secret_dir / "token.csv")
    op.start()
    try:
        urls = {"direct": str(secret_dir / "token.csv"),
                "dotdot": f"{data}/allowed/../private/token.csv",
                "symlink": str(data / "allowed" / "escape.csv"),
                "fileurl": f"file://{secret_dir}/token.csv"}
        ok = monitor("ok", data / "allowed")
        apply(kubectl, namespace, ok)
        for name, url in urls.items():
            doc = monitor(name, data / "allowed")
            doc["spec"]["current"]["source"]["url"] = url
            apply(kubectl, namespace, doc)
        for name in urls:
            st = status_when(kubectl, namespace, name, lambda s: s.get("phase") == "Failing",
                             timeout=60, what=f"{name} refused")
            ready = condition(st, "Ready")
            assert ready["reason"] == "SourceUnavailable", ready
            assert ready["message"].startswith("spec.current.source.url: "), ready
            assert "outside the directories this operator may read" in ready["message"]
            assert "--allow-local-path" in ready["message"]
        status_when(kubectl, namespace, "ok", lambda s: s.get("phase") == "Degraded",
                    timeout=60, what="the allowed monitor checked")
        everything = json.dumps([kubectl.json("get", "mm", "-n", namespace),
                                 kubectl.json("get", "events", "-n", namespace)])
        assert SECRET not in everything and SECRET not in op.logs()
    finally:
        assert op.stop() == 0, op.logs()[-3000:]

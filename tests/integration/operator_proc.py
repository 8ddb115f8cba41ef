"""Run `modelmon run` as users do: a separate process against the test cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kube import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class OperatorProcess:
    """A running operator and where it serves."""

    kubeconfig: Path
    namespaces: list[str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    allow_local_paths: list[Path] | None = None
    """Directories the operator may read local files under (--allow-local-path); None:
    the log's directory, which is the test's tmp_path where tests put their data."""
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, ready_timeout: float = 60) -> OperatorProcess:
        cmd = [sys.executable, "-m", "modelmon", "run", "--kubeconfig", str(self.kubeconfig),
               "--metrics-port", str(self.metrics_port),
               "--health-port", str(self.health_port), "--workers", str(self.workers),
               "--log-format", "json",
               # The test servers listen on loopback, which the operator refuses by default
               # (sources.egress); a test may still deny part of it (MODELMON_EGRESS_DENY).
               "--egress-allow", "127.0.0.0/8"]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        allowed = ([self.log_path.parent] if self.allow_local_paths is None
                   else self.allow_local_paths)
        for path in allowed:
            cmd += ["--allow-local-path", str(path.resolve())]
        cmd += self.extra_args
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "operator"), **self.extra_env}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=REPO_ROOT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if self.health("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not ready after {ready_timeout}s:\n{self.logs()}")

    def health(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.health_port}{path}")

    def metrics(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert status == 200
        return body

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

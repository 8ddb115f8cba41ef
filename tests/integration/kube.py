"""Helpers for integration tests against a real Kubernetes API server.

Plain functions and classes, no pytest fixtures: conftest.py wires them into
fixtures, and anything else (e2e tests, scripts) can import them too. The
control plane itself comes from hack/cluster.sh, which builds pinned
etcd/kube-apiserver/kube-controller-manager/kubectl binaries and runs them on
127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO_ROOT / "hack" / "cluster.sh"
CRDS_DIR = REPO_ROOT / "crds"

T = TypeVar("T")


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message includes kubectl's stderr."""

    def __str__(self) -> str:
        args = self.cmd[1:] if isinstance(self.cmd, list) else self.cmd
        return f"kubectl {args} exited {self.returncode}: {(self.stderr or '').strip()}"


def cluster_sh(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run hack/cluster.sh and return its stdout; its progress goes to stderr."""
    proc = subprocess.run(
        [str(CLUSTER_SH), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"hack/cluster.sh {' '.join(args)} failed with exit code {proc.returncode}"
        )
    return proc.stdout


def pinned_versions() -> dict[str, str]:
    """The versions hack/cluster.sh pins, e.g. {"KUBE_VERSION": "v1.34.10", ...}."""
    out = cluster_sh("versions")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def parse_export_line(out: str) -> Path:
    """The kubeconfig path from `hack/cluster.sh up|env` output."""
    lines = [line for line in out.splitlines() if line.startswith("export KUBECONFIG=")]
    if len(lines) != 1:
        raise RuntimeError(f"expected one 'export KUBECONFIG=' line, got: {out!r}")
    return Path(lines[0].removeprefix("export KUBECONFIG=").strip("'\""))


@dataclass(frozen=True)
class Kubectl:
    """A kubectl binary bound to one kubeconfig."""

    binary: Path
    kubeconfig: Path
    default_timeout: float = 120.0

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout or self.default_timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        """Run a read command with `-o json` and decode its output."""
        return json.loads(self(*args, "-o", "json").stdout)

    def exists(self, *args: str) -> bool:
        """Whether `kubectl get ARGS` finds the object (False on NotFound only)."""
        proc = self("get", *args, "-o", "name", check=False)
        if proc.returncode == 0:
            return True
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return False
        raise KubectlError(proc.returncode, ["kubectl", "get", *args], proc.stdout, proc.stderr)

    def reachable(self, attempts: int = 3) -> bool:
        """Whether the API server answers /readyz, allowing for a brief hiccup."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(1)
            try:
                proc = self("get", "--raw", "/readyz", "--request-timeout=5s", check=False)
            except OSError:
                continue
            if proc.returncode == 0:
                return True
        return False

    def server(self) -> str:
        """The API server URL of the current context."""
        cfg = self.json("config", "view", "--minify", "--raw")
        return str(cfg["clusters"][0]["cluster"]["server"])

    def with_token(self, token: str, directory: Path) -> Kubectl:
        """A kubectl that authenticates with only a bearer token.

        `--token` is not enough on its own: kubectl would still present the
        admin kubeconfig's client certificate, and the API server trusts the
        certificate first. So the new kubeconfig keeps only server and CA.
        """
        cluster = self.json("config", "view", "--minify", "--raw")["clusters"][0]
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [
                {"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}
            ],
            "current-context": "token",
        }
        fd, name = tempfile.mkstemp(prefix="token-", suffix=".kubeconfig", dir=directory)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        return Kubectl(self.binary, Path(name), self.default_timeout)


@dataclass(frozen=True)
class Node:
    """A cluster's Ready node and the locally built images its runtime holds."""

    name: str
    busybox_image: str


def is_loopback_server(url: str) -> bool:
    """True for https://127.x.y.z, [::1] or localhost, as kind and hack/cluster.sh use."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def crd_files(directory: Path = CRDS_DIR) -> list[Path]:
    """Every YAML file under crds/, sorted; empty if the folder does not exist yet."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def apply_crds(kubectl: Kubectl, files: Iterable[Path], *, timeout: float = 60) -> list[str]:
    """Server-side apply the files and wait until their CRDs are Established.

    Server-side apply, because client-side apply stores the whole object in
    an annotation, which large upstream CRDs overflow. Returns the CRD names.
    """
    names: list[str] = []
    for path in files:
        out = kubectl(
            "apply", "--server-side", "--force-conflicts", "-o", "name", "-f", str(path)
        ).stdout
        names += [n for n in out.split() if n.startswith("customresourcedefinition")]
    if names:
        kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={timeout:g}s",
            *names,
            timeout=timeout + 30,
        )
    return names


def unique_name(prefix: str, max_len: int = 63) -> str:
    """A DNS-1123 label: the prefix (sanitised, shortened) and a random suffix."""
    clean = "".join(c if c.isalnum() else "-" for c in prefix.lower()).strip("-")
    suffix = secrets.token_hex(3)
    clean = clean[: max_len - len(suffix) - 1].rstrip("-")
    return f"{clean}-{suffix}" if clean else suffix


@dataclass
class Cluster:
    """A running cluster the tests may use, and whether the tests started it."""

    kubectl: Kubectl
    expected_version: str
    started_here: bool
    state_dir: Path | None = None
    crds: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.kubectl.kubeconfig

    @property
    def kubectl_path(self) -> Path:
        return self.kubectl.binary


def manifest(obj: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Objects as kubectl input (JSON is YAML, and needs no extra dependency)."""
    if isinstance(obj, Mapping):
        return json.dumps(obj)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(obj)})


def table(out: str) -> list[dict[str, str]]:
    """kubectl's table as rows of {header: cell}, cut at the headers' columns (cells may
    hold single spaces, and may be empty)."""
    header, *rows = out.splitlines()
    names = re.findall(r"\S+(?: \S+)*", header)
    starts = [header.index(name) for name in names]
    ends = [*starts[1:], None]
    return [{name: row[start:end].strip() for name, start, end in zip(names, starts, ends,
                                                                     strict=True)}
            for row in rows]

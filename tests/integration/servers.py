"""Real servers on 127.0.0.1 for the source integration tests: PostgreSQL, S3 (moto),
Prometheus.

Plain helpers (context managers), no pytest fixtures: the test modules wire them into
fixtures. Each server is a process of its own, from this machine's packages (Debian's
postgresql and prometheus, which hack/install-test-deps.sh installs; moto from PyPI),
listens on a free port of 127.0.0.1, keeps its state in a temporary directory, and is
stopped on exit.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0,
              every: float = 0.2) -> None:
    """Poll ``check`` until it returns True; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def unavailable(message: str) -> None:
    """Skip the test for a tool this machine cannot provide; in CI (CI=true) fail it."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """Terminate a server process we started, and kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def stalled_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a server that accepts connections, reads what comes,
    and never answers: a server that hangs, for time-out tests."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def hold() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL: the superuser and an unprivileged monitoring role."""

    host: str
    port: int
    superuser_password: str
    user: str
    password: str
    database: str

    def url(self, password: str | None = None, *, user: str | None = None,
            database: str | None = None) -> str:
        """The SQLAlchemy URL of the monitoring role (psycopg 3)."""
        pw = urllib.parse.quote(self.password if password is None else password, safe="")
        return (f"postgresql+psycopg://{user or self.user}:{pw}@{self.host}:{self.port}/"
                f"{database or self.database}")

    def execute(self, *statements: str) -> None:
        """Run statements as the superuser in the test database (autocommit)."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres",
                             password=self.superuser_password, dbname=self.database,
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type,unused-ignore]


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs (the newest major version installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run hack/install-test-deps.sh")
    return Path(found[-1]).parent


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """Start a throw-away PostgreSQL with password (scram) authentication."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="modelmon-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    superuser_password = secrets.token_hex(12)
    pwfile = root / "pw"
    pwfile.write_text(superuser_password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres")
    data = root / "data"
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--auth=scram-sha-256", f"--pwfile={pwfile}")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}"
                  " -c fsync=off -c full_page_writes=off -c timezone=UTC", "start")
        server = Postgres("127.0.0.1", port, superuser_password, "monitor",
                          "pw-" + secrets.token_hex(8), "postgres")
        server.execute(f"CREATE ROLE monitor LOGIN PASSWORD '{server.password}'",
                       "CREATE DATABASE predictions OWNER postgres",
                       "GRANT CONNECT ON DATABASE predictions TO monitor")
        server = Postgres(server.host, port, superuser_password, "monitor", server.password,
                          "predictions")
        server.execute("GRANT USAGE ON SCHEMA public TO monitor",
                       "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES "
                       "TO monitor")
        yield server
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r}\n{log}") from None
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, check=False, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------- S3/moto


@dataclass(frozen=True)
class Request:
    """One request the server received, as its recorder wrote it down."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass(frozen=True)
class S3:
    """A moto S3 server (a process of its own), and an IAM user's key pair it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def secret(self) -> dict[str, str]:
        """The keys of a credentialsSecretRef Secret for this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": self.region, "AWS_ENDPOINT_URL": self.endpoint}

    @contextlib.contextmanager
    def unchecked(self) -> Iterator[None]:
        """Within: moto accepts requests whatever their signature.

        moto checks every request's signature and the user's policy, but computes the
        signature from the decoded URL: a listing whose prefix holds '/' (ListObjects with
        ``prefix=events/``, as every s3fs ``find`` sends) or a key holding '='
        (``date=2026-11-24/``) is refused although real S3 accepts it. Only such requests
        run in here.
        """
        _moto_auth_after(self.endpoint, "inf")
        try:
            yield
        finally:
            _moto_auth_after(self.endpoint, "0")

    def reset_requests(self) -> None:
        """Forget the requests recorded so far."""
        _moto_post(self.endpoint, "/moto-api/recorder/reset-recording")

    def requests(self) -> list[Request]:
        """The requests the server received since the last reset (its recorder's log)."""
        text = http_get(f"{self.endpoint}/moto-api/recorder/download-recording").decode()
        out = []
        for line in text.splitlines():
            if line.strip():
                entry = json.loads(line)
                parts = urllib.parse.urlsplit(entry["url"])
                out.append(Request(entry["method"], parts.path, parts.query,
                                   dict(entry["headers"])))
        return out

    def object_reads(self, bucket: str) -> list[Request]:
        """GET Object requests of ``bucket`` (HEADs and listings left out)."""
        return [r for r in self.requests()
                if r.method == "GET" and r.path.startswith(f"/{bucket}/")
                and "list-type" not in r.query and "prefix" not in r.query]


@contextlib.contextmanager
def moto_s3() -> Iterator[S3]:
    """``python -m moto.server`` on 127.0.0.1, checking credentials, with an IAM user
    allowed s3:* on everything, and its recorder on (``S3.requests``)."""
    import boto3

    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="modelmon-moto-"))
    log = (root / "log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "MOTO_RECORDER_FILEPATH": str(root / "recording.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for("moto", lambda: proc.poll() is None
                     and bool(http_get(f"{endpoint}/moto-api/data.json")))
        except TimeoutError:
            log.flush()
            raise RuntimeError("moto did not come up:\n"
                               + (root / "log").read_text()[-2000:]) from None
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="monitor")
        iam.put_user_policy(UserName="monitor", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="monitor")["AccessKey"]
        _moto_auth_after(endpoint, "0")  # from now on every request's credentials count
        _moto_post(endpoint, "/moto-api/recorder/start-recording")
        yield S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _moto_post(endpoint: str, path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(f"{endpoint}{path}", data=body,
                                     headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _moto_auth_after(endpoint: str, count: str) -> None:
    """Make moto check credentials after ``count`` more requests ("inf": never)."""
    _moto_post(endpoint, "/moto-api/reset-auth", count.encode())


# ---------------------------------------------------------------------------- Prometheus


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus server scraping one test exporter every second."""

    url: str
    exporter: str

    def query(self, promql: str) -> list[Any]:
        q = urllib.parse.urlencode({"query": promql})
        answer = json.loads(http_get(f"{self.url}/api/v1/query?{q}"))
        result: list[Any] = answer["data"]["result"]
        return result


@contextlib.contextmanager
def prometheus(registry: Any) -> Iterator[Prometheus]:
    """Debian's prometheus on 127.0.0.1 scraping ``registry`` (prometheus_client) served on
    another port of 127.0.0.1; returns once the exporter has been scraped."""
    from prometheus_client import start_http_server

    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise RuntimeError("prometheus is not installed: run hack/install-test-deps.sh")
    exporter_port = free_port()
    httpd, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    root = Path(tempfile.mkdtemp(prefix="modelmon-prom-"))
    config = root / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "app",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }))
    port = free_port()
    log = (root / "log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{exporter_port}")
    try:
        wait_for("prometheus to be ready",
                 lambda: proc.poll() is None and http_get(f"{server.url}/-/ready") != b"")
        wait_for("the first scrape of the test exporter",
                 lambda: any(r["value"][1] == "1" for r in server.query('up{job="app"}')))
        yield server
    except TimeoutError:
        log.flush()
        raise RuntimeError("prometheus did not come up:\n"
                           + (root / "log").read_text()[-2000:]) from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        httpd.shutdown()
        thread.join(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


"""Real servers on 127.0.0.1 for the source integration tests: PostgreSQL, S3 (moto),
GCS (fake-gcs-server), Prometheus.

Plain helpers (context managers), no pytest fixtures: the test modules wire them into
fixtures. Each server is a process of its own, from this machine's packages (Debian's
postgresql and prometheus, which hack/install-test-deps.sh installs; moto from PyPI;
fake-gcs-server built from the Go module proxy into the cache hack/cluster.sh uses), listens
on a free port of 127.0.0.1, keeps its state in a temporary directory, and is stopped on
exit.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
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
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------- GCS/fake-gcs-server

FAKE_GCS_MODULE = "github.com/fsouza/fake-gcs-server"
FAKE_GCS_VERSION = "v1.56.1"
"""The newest release when pinned; its go.mod has no replace directives, so a plain
``go install module@version`` builds it (it needs go 1.26)."""


def cache_dir() -> Path:
    """The binaries cache hack/cluster.sh uses (``MODELMON_CACHE``, else ~/.cache/modelmon)."""
    return Path(os.environ.get("MODELMON_CACHE") or Path.home() / ".cache" / "modelmon")


class BuildError(RuntimeError):
    """A tool could not be built here (no go, no module proxy, a failed compile)."""


def fake_gcs_server_bin() -> Path:
    """The pinned fake-gcs-server, built once into the shared cache.

    Like hack/cluster.sh: built under the cache's build lock (concurrent runs wait rather
    than build twice), into a temporary GOBIN, and renamed into
    ``bin/fake-gcs-server-<version>/`` last, so that a binary in place is a finished build.
    Raises ``BuildError`` with the log's tail when it cannot be built.
    """
    import fcntl

    cache = cache_dir()
    out = cache / "bin" / f"fake-gcs-server-{FAKE_GCS_VERSION}" / "fake-gcs-server"
    if os.access(out, os.X_OK):
        return out
    go = shutil.which("go")
    if go is None:
        raise BuildError(f"go is not on PATH: it builds {FAKE_GCS_MODULE}@{FAKE_GCS_VERSION}")
    for sub in ("logs", "src", out.parent):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the lock hack/cluster.sh's builds take
        if os.access(out, os.X_OK):  # built by whoever held the lock
            return out
        logfile = cache / "logs" / f"build-fake-gcs-server-{FAKE_GCS_VERSION}.log"
        gobin = Path(tempfile.mkdtemp(prefix="fake-gcs-server-gobin.", dir=cache / "src"))
        env = {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off", "GOBIN": str(gobin),
               "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -p=2".strip()}
        try:
            with logfile.open("wb") as log:
                proc = subprocess.run(
                    [go, "install", "-trimpath", "-ldflags=-s -w",
                     f"{FAKE_GCS_MODULE}@{FAKE_GCS_VERSION}"],
                    cwd=cache, env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
                    timeout=3600)
            if proc.returncode != 0:
                tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
                raise BuildError(f"go install {FAKE_GCS_MODULE}@{FAKE_GCS_VERSION} failed "
                                 f"(exit {proc.returncode}; log: {logfile}):\n{tail}")
            tmp = out.with_name(f"{out.name}.tmp.{os.getpid()}")
            shutil.move(gobin / "fake-gcs-server", tmp)
            tmp.replace(out)
        finally:
            shutil.rmtree(gobin, ignore_errors=True)
    return out


@dataclass(frozen=True)
class Gcs:
    """A running fake-gcs-server (in memory, plain http) and its access log."""

    endpoint: str
    log: Path

    def _call(self, method: str, path: str, body: bytes, content_type: str) -> Any:
        request = urllib.request.Request(f"{self.endpoint}{path}", data=body, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def create_bucket(self, name: str) -> None:
        self._call("POST", "/storage/v1/b", json.dumps({"name": name}).encode(),
                   "application/json")

    def put(self, bucket: str, name: str, data: bytes) -> int:
        """Upload an object (a new generation of it); returns its generation."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        meta = self._call("POST", f"/upload/storage/v1/b/{bucket}/o?{query}", data,
                          "application/octet-stream")
        return int(meta["generation"])

    def mark(self) -> int:
        """A place in the access log; ``media_reads(since=...)`` counts from there."""
        return self.log.stat().st_size

    def media_reads(self, bucket: str, since: int = 0) -> list[str]:
        """Object names whose content (``alt=media``) was served since ``since``, one per
        GET, from the server's own access log; metadata and listings are left out."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        names = []
        for m in re.finditer(r'\\?"GET (/[^ "\\]*) HTTP/[0-9.]+\\?" (\d+)', text):
            parts = urllib.parse.urlsplit(m.group(1))
            if "alt=media" not in parts.query:
                continue
            for prefix in (f"/download/storage/v1/b/{bucket}/o/",
                           f"/storage/v1/b/{bucket}/o/"):
                if parts.path.startswith(prefix):
                    names.append(urllib.parse.unquote(parts.path[len(prefix):]))
        return names


@contextlib.contextmanager
def fake_gcs() -> Iterator[Gcs]:
    """The pinned fake-gcs-server on 127.0.0.1 (built if needed; a test that cannot have it
    is skipped, or failed under CI=true)."""
    try:
        binary = fake_gcs_server_bin()
    except BuildError as exc:
        unavailable(f"fake-gcs-server {FAKE_GCS_VERSION} cannot be built here: {exc}")
        raise  # unreachable: unavailable() raises
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="modelmon-gcs-"))
    log_path = root / "log"
    log = log_path.open("wb")
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1",
         "-port", str(port), "-public-host", f"127.0.0.1:{port}", "-external-url", endpoint,
         "-log-level", "info"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        try:
            wait_for("fake-gcs-server", lambda: proc.poll() is None
                     and b"storage#buckets" in http_get(f"{endpoint}/storage/v1/b"))
        except TimeoutError:
            log.flush()
            raise RuntimeError("fake-gcs-server did not come up:\n"
                               + log_path.read_text()[-2000:]) from None
        yield Gcs(endpoint, log_path)
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class TokenService:
    """An OAuth 2.0 token endpoint for service account keys (the ``token_uri`` of a key):
    issues a bearer token per request, or, with ``refuse``, rejects the key as Google's
    does a revoked one."""

    url: str = ""
    refuse: bool = False
    requests: int = 0


@contextlib.contextmanager
def token_service() -> Iterator[TokenService]:
    import http.server
    import threading

    service = TokenService()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            service.requests += 1
            body: dict[str, str | int]
            if service.refuse:
                status, body = 400, {"error": "invalid_grant",
                                     "error_description": "Invalid JWT Signature."}
            else:
                status, body = 200, {"access_token": f"token-{service.requests}",
                                     "token_type": "Bearer", "expires_in": 3600}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        yield service
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@dataclass
class Front:
    """A pass-through HTTP proxy in front of a server that answers requests for chosen
    names with an error status instead (403 for one object, 503 for another), the way a
    GCS bucket policy or an outage would, with GCS's JSON error body."""

    url: str = ""
    faults: dict[str, int] = field(default_factory=dict)
    """Substring of the unquoted request path -> status to answer with."""


@contextlib.contextmanager
def front(upstream: str) -> Iterator[Front]:
    import http.client
    import http.server
    import threading

    proxy = Front()
    target = urllib.parse.urlsplit(upstream)
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in hop:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urllib.parse.unquote(self.path)
            for needle, status in proxy.faults.items():
                if needle in path:
                    error = {"error": {"code": status, "message": f"fault injected for "
                                       f"{needle}", "errors": []}}
                    self._answer(status, [("Content-Type", "application/json")],
                                 json.dumps(error).encode())
                    return
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                              timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                self._answer(response.status, response.getheaders(), response.read())
            finally:
                conn.close()

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        thread.join()
        server.server_close()

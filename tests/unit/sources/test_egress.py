"""The egress policy: the matcher, and every source's client refusing before it sends a byte.

Servers run on 127.0.0.1 (and 127.0.0.2, also loopback); a policy that refuses them shows
that the check comes before the connection (the server sees none). Nothing here ever
connects to another address: the ``loopback_guard`` fixture fails any attempt to.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import pandas as pd
import pytest

from loopback import HttpServers
from modelmon.api.policy import Egress, Policy
from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, SourceError, egress, load
from modelmon.sources.egress import EgressBlockedError, EgressRefusedError, parse_entry, rules
from modelmon.sources.prometheus import operational_figures
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from modelmon.sources.url import targets as url_module
from netguard import Listener

pytestmark = pytest.mark.usefixtures("loopback_guard")

CSV = b"a,b\n1,x\n2,y\n"


def policy(*allow: str, deny: tuple[str, ...] = ()) -> Policy:
    return replace(Policy.operator(), egress=Egress(allow=allow, deny=deny))


# ---------------------------------------------------------------------------- fake DNS


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    """Names of ``table`` resolve to its addresses (for the policy's resolver only)."""
    real = socket.getaddrinfo

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in table:
            return real(host, port, *args, **kwargs)
        out = []
        for ip in table[host]:
            v6 = ":" in ip
            out.append((socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM,
                        socket.IPPROTO_TCP, "", (ip, int(port), 0, 0) if v6 else (ip, int(port))))
        return out

    monkeypatch.setattr(egress, "getaddrinfo", resolve)


# ----------------------------------------------------------------------------- matcher


def refusal(r: egress.Rules, host: str, *addresses: str) -> str | None:
    """The refusal's message (it names the field), or None when the check passes."""
    message: str | None = None
    try:
        r.check(host, addresses or (host,), "spec.x.url")
    except EgressRefusedError as exc:
        message = str(exc)
    assert message is None or message.startswith("spec.x.url: the operator may not connect ")
    return message


@pytest.mark.parametrize(("address", "family"), [
    ("127.0.0.1", "loopback"), ("127.200.0.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.10.1", "link-local"), ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"), ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:a9fe:a9fe", "cloud metadata"), ("64:ff9b::169.254.169.254", "cloud metadata"),
    ("::169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"), ("168.63.129.16", "cloud metadata"),
])
def test_families_refused_by_default(address: str, family: str) -> None:
    message = refusal(rules(Egress()), address)
    assert message is not None and f"({family} addresses are refused by default" in message
    assert "--egress-allow" in message


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "172.16.5.5", "8.8.8.8",
                                     "2001:db8::1", "::ffff:10.0.0.1", "100.64.0.1"])
def test_other_addresses_pass_without_an_allow_list(address: str) -> None:
    assert refusal(rules(Egress()), address) is None


def test_a_family_opens_only_to_an_allow_network_as_specific_as_it() -> None:
    link_local = rules(Egress(allow=("169.254.0.0/16",)))
    assert refusal(link_local, "169.254.1.1") is None
    assert "cloud metadata" in (refusal(link_local, "169.254.169.254") or "")
    assert refusal(rules(Egress(allow=("169.254.169.254",))), "169.254.169.254") is None
    everything = rules(Egress(allow=("0.0.0.0/0", "::/0")))
    for address in ("127.0.0.1", "169.254.169.254", "::1", "::ffff:169.254.169.254"):
        assert refusal(everything, address) is not None, address
    assert refusal(everything, "10.0.0.1") is None
    loopback = rules(Egress(allow=("127.0.0.0/8",)))
    assert refusal(loopback, "127.0.0.1") is None
    assert "loopback" in (refusal(loopback, "::1") or "")


def test_an_allow_list_admits_its_networks_and_names_only() -> None:
    r = rules(Egress(allow=("10.0.0.0/8", "*.svc.cluster.local", "db.example.com")))
    assert refusal(r, "10.9.9.9") is None
    assert refusal(r, "prom.monitoring.svc.cluster.local", "172.20.0.4") is None
    assert refusal(r, "DB.Example.COM.", "203.0.113.7") is None  # case, final dot
    outside = refusal(r, "svc.cluster.local", "172.20.0.4")  # *. matches below it only
    assert outside is not None and "outside the networks and hosts" in outside
    assert "svc.cluster.local (172.20.0.4)" in outside
    assert refusal(r, "other.example.com", "203.0.113.7") is not None
    # An allowed name does not open an address refused by default.
    assert "cloud metadata" in (refusal(r, "x.svc.cluster.local", "169.254.169.254") or "")


def test_deny_wins_over_allow_for_networks_and_names() -> None:
    r = rules(Egress(allow=("10.0.0.0/8", "*.example.com"),
                     deny=("10.1.0.0/16", "Secret.Example.com", "*.internal")))
    message = refusal(r, "10.1.2.3")
    assert message is not None and "the administrator denies 10.1.0.0/16 with --egress-deny" \
        in message
    assert refusal(r, "10.2.0.1") is None
    assert "denies secret.example.com" in (refusal(r, "SECRET.example.com.", "10.2.0.1") or "")
    assert refusal(r, "open.example.com", "10.2.0.1") is None
    assert "denies *.internal" in (refusal(r, "a.b.internal", "10.2.0.1") or "")
    # The IPv4 address inside an IPv6 one is denied too.
    assert "denies 10.1.0.0/16" in (refusal(r, "::ffff:10.1.0.1") or "")


def test_metadata_host_name_is_refused_even_at_a_fine_address() -> None:
    message = refusal(rules(Egress()), "metadata.google.internal", "10.0.0.1")
    assert message is not None and "cloud metadata hosts are refused" in message
    assert refusal(rules(Egress(allow=("metadata.google.internal", "10.0.0.0/8"))),
                   "metadata.google.internal", "10.0.0.1") is None


def test_every_address_a_name_resolves_to_must_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"mixed.test": ["10.0.0.5", "169.254.169.254"],
                           "fine.test": ["10.0.0.5", "10.0.0.6", "2001:db8::5"],
                           "sixes.test": ["2001:db8::5", "fe80::1"]})
    r = rules(Egress())
    with pytest.raises(EgressRefusedError, match=r"mixed\.test \(169\.254\.169\.254\) "
                                                  r"\(cloud metadata"):
        r.resolve("mixed.test", 80, "spec.x.url")
    with pytest.raises(EgressRefusedError, match="link-local"):
        r.resolve("sixes.test", 80, "spec.x.url")
    got = [info[4][0] for info in r.resolve("fine.test", 80, "spec.x.url")]
    assert got == ["10.0.0.5", "10.0.0.6", "2001:db8::5"]
    with pytest.raises(EgressRefusedError, match="outside"):
        rules(Egress(allow=("10.0.0.0/8",))).resolve("fine.test", 80, "spec.x.url")


@pytest.mark.parametrize(("text", "normal"), [
    ("10.0.0.0/8", "10.0.0.0/8"), (" 10.1.2.3 ", "10.1.2.3/32"), ("fd00::/8", "fd00::/8"),
    ("[::1]", "::1/128"), ("Prom.Monitoring.SVC.", "prom.monitoring.svc"),
    ("*.svc.cluster.local", "*.svc.cluster.local"),
])
def test_entries_are_normalised(text: str, normal: str) -> None:
    assert parse_entry(text) == normal


@pytest.mark.parametrize(("text", "says"), [
    ("10.0.0.1/8", "write the network as 10.0.0.0/8"), ("300.1.1.1", "CIDR"),
    ("a b", "neither a network"), ("*.", "neither"), ("a.*.b", "neither"), ("", "empty"),
    ("http://x", "is a URL; give its host name"),
])
def test_bad_entries_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace(".", r"\.").replace("*", r"\*")):
        parse_entry(text)


# ------------------------------------------------------------------------- http servers


class Server(http.server.ThreadingHTTPServer):
    """Serves /data.csv; /to/HOST:PORT/... redirects GET (and HEAD unless ``head_ok``)
    there; counts every connection it accepts and every request."""

    connections: int
    requests: list[tuple[str, str, str]]
    head_ok: bool

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server
    answers: ClassVar[dict[str, Any]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Host", "")))
        if self.path.startswith("/to/") and (self.command == "GET" or not self.server.head_ok):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path.removeprefix("/to/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(CSV)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if body:
            self.wfile.write(CSV)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append((self.command, self.path, self.headers.get("Host", "")))
        data = b'{"status": "success", "data": {"resultType": "scalar", "result": [0, "1.5"]}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ServerFactory = Callable[..., Server]


@pytest.fixture
def serve(http_servers: HttpServers) -> ServerFactory:
    def start(host: str = "127.0.0.1", head_ok: bool = True) -> Server:
        server = Server((host, 0), Handler)
        server.connections, server.requests, server.head_ok = 0, [], head_ok
        return http_servers.run(server)

    return start


def port(server: Server) -> int:
    return int(server.server_address[1])


def url_ctx(p: Policy) -> LoadContext:
    return LoadContext(role="spec.current.source", retries=0, policy=p)


def test_http_url_source_refused_before_any_byte(serve: ServerFactory) -> None:
    server = serve()
    src = Source(url=f"http://127.0.0.1:{port(server)}/data.csv")
    with pytest.raises(EgressRefusedError) as info:
        load(src, url_ctx(Policy.operator()))
    assert str(info.value) == (
        "spec.current.source.url: the operator may not connect to 127.0.0.1 (loopback "
        "addresses are refused by default; an administrator can allow the network with "
        "--egress-allow)")
    assert not info.value.transient
    with pytest.raises(EgressRefusedError, match=r"denies 127\.0\.0\.1/32 with --egress-deny"):
        load(src, url_ctx(policy("127.0.0.0/8", deny=("127.0.0.1",))))
    assert server.connections == 0 and server.requests == []
    # The same source under a policy that allows it: the server is reached.
    frame = load(src, url_ctx(policy("127.0.0.1/32"))).frame
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert [r[0] for r in server.requests] == ["HEAD", "GET"]


def test_modelmon_checks_policy_enforces_nothing(serve: ServerFactory) -> None:
    server = serve()
    src = Source(url=f"http://127.0.0.1:{port(server)}/data.csv")
    assert len(load(src, LoadContext(policy=Policy.local())).frame) == 2
    assert server.connections >= 1


def test_clients_connect_to_the_checked_address(serve: ServerFactory,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``data.test`` resolves only through the policy's resolver: that both the HEAD
    (urllib) and the reads (aiohttp) get through proves they connect to what was checked
    instead of resolving the name again."""
    server = serve()
    fake_dns(monkeypatch, {"data.test": ["127.0.0.1"]})
    src = Source(url=f"http://data.test:{port(server)}/data.csv")
    assert len(load(src, url_ctx(policy("127.0.0.1/32"))).frame) == 2
    assert [(m, h) for m, _, h in server.requests] == [
        ("HEAD", f"data.test:{port(server)}"), ("GET", f"data.test:{port(server)}")]
    monkeypatch.setattr(egress, "getaddrinfo", lambda *a, **k: [  # rebound
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port(server)))])
    with pytest.raises(EgressRefusedError, match=r"data\.test \(127\.0\.0\.1\) \(loopback"):
        load(src, url_ctx(Policy.operator()))


@pytest.mark.parametrize("head_ok", [False, True], ids=["head-redirected", "get-redirected"])
def test_a_redirect_to_a_refused_address_is_refused(serve: ServerFactory, head_ok: bool
                                                    ) -> None:
    """The first server is allowed; it redirects to one on 127.0.0.2, which is not: the
    HEAD (urllib) or, when only GET is redirected, the read (aiohttp) is refused."""
    second = serve("127.0.0.2")
    first = serve(head_ok=head_ok)
    src = Source(url=f"http://127.0.0.1:{port(first)}/to/127.0.0.2:{port(second)}/data.csv")
    with pytest.raises(EgressRefusedError) as info:
        load(src, url_ctx(policy("127.0.0.1/32")))
    assert str(info.value).startswith("spec.current.source.url: the operator may not connect "
                                      "to 127.0.0.2 (loopback")
    assert second.connections == 0
    assert [r[0] for r in first.requests] == (["HEAD", "GET"] if head_ok else ["HEAD"])
    # Allowed, the redirect is followed.
    assert len(load(src, url_ctx(policy("127.0.0.0/8"))).frame) == 2
    assert second.connections >= 1


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/data.csv",
    "http://[::ffff:169.254.169.254]/data.csv",
    "http://[fd00:ec2::254]/data.csv",
    "http://100.100.100.200/data.csv",
    "http://evil.test/data.csv",
    "http://metadata.google.internal/computeMetadata/v1/data.csv",
])
def test_metadata_addresses_refused_without_traffic(url: str, loopback_guard: list[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"evil.test": ["169.254.169.254"],
                           "metadata.google.internal": ["169.254.169.254"]})
    with pytest.raises(EgressRefusedError, match="cloud metadata") as info:
        load(Source(url=url), url_ctx(Policy.operator()))
    assert str(info.value).startswith("spec.current.source.url: ")
    assert loopback_guard == []


async def test_aiohttp_sessions_refuse_literals_and_names(serve: ServerFactory,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The session fsspec reads through: IP literals (which skip aiohttp's resolver) and
    names are both checked; allowed ones are fetched."""
    server = serve()
    fake_dns(monkeypatch, {"evil.test": ["169.254.169.254"]})
    strict = Egress(allow=("127.0.0.1/32",))
    async with egress.client_session(strict, "spec.x.url") as session:
        for url in ("http://169.254.169.254/", "http://[::ffff:a9fe:a9fe]/",
                    "http://evil.test/", f"http://127.0.0.2:{port(server)}/"):
            with pytest.raises(EgressRefusedError, match=r"spec\.x\.url: the operator may not"):
                await session.get(url)
        async with session.get(f"http://127.0.0.1:{port(server)}/data.csv") as response:
            assert await response.read() == CSV
    assert server.connections == 1


async def test_the_connectors_socket_factory_refuses_again() -> None:
    """The second line: were aiohttp to skip the resolver step, the socket factory still
    refuses denied and default-refused addresses (allow lists need the host name)."""
    r = rules(Egress(allow=("127.0.0.1/32",), deny=("10.0.0.0/8",)))
    connector = egress.connector_class()(r, "spec.x.url")
    try:
        for address in ("169.254.169.254", "10.1.1.1", "127.0.0.2"):
            with pytest.raises(EgressBlockedError, match=f"may not connect to {address}"):
                connector._egress_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                          (address, 80)))
        connector._egress_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                  ("127.0.0.1", 80))).close()
    finally:
        await connector.close()
    await asyncio.sleep(0)


# ---------------------------------------------------------------------------- prometheus


def test_prometheus_source_refused_before_any_byte(serve: ServerFactory) -> None:
    server = serve()
    src = Source.model_validate({"prometheus": {
        "url": f"http://127.0.0.1:{port(server)}", "queries": [{"name": "p95", "query": "up"}]}})
    ctx = LoadContext(role="spec.operational.source", retries=0, policy=Policy.operator())
    with pytest.raises(EgressRefusedError) as info:
        operational_figures(src, ctx)
    assert str(info.value).startswith("spec.operational.source.prometheus.url: the operator "
                                      "may not connect to 127.0.0.1 (loopback")
    assert server.connections == 0
    allowed = replace(ctx, policy=policy("127.0.0.1/32"))
    assert operational_figures(src, allowed)[0].value == 1.5
    assert [r[0] for r in server.requests] == ["POST"]


def test_prometheus_at_the_metadata_address_is_refused(loopback_guard: list[Any]) -> None:
    src = Source.model_validate({"prometheus": {
        "url": "http://169.254.169.254:9090", "queries": [{"name": "p95", "query": "up"}]}})
    with pytest.raises(EgressRefusedError, match="cloud metadata"):
        operational_figures(src, LoadContext(role="spec.operational.source",
                                             policy=Policy.operator()))


# ----------------------------------------------------------------------------------- sql


@pytest.fixture
def listener() -> Iterator[Listener]:
    one = Listener()
    yield one
    one.close()
    dispose_engines()


def sql_load(url: str, p: Policy) -> Any:
    src = Source.model_validate({"sql": {"connectionSecretRef": {"name": "db", "key": "url"},
                                         "query": "SELECT 1 AS x", "timeout": "5s"}})
    ctx = LoadContext(role="spec.current.source", retries=0, policy=p,
                      resolver=LocalResolver({("db", "url"): url}, env={}))
    return load(src, ctx)


def test_sql_host_refused_before_connecting(listener: Listener) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://monitor:pw-123@127.0.0.1:{listener.port}/db"
    with pytest.raises(EgressRefusedError) as info:
        sql_load(url, Policy.operator())
    assert str(info.value).startswith(
        "spec.current.source.sql.connectionSecretRef (Secret 'db' key 'url'): the operator "
        "may not connect to 127.0.0.1 (loopback")
    assert "pw-123" not in str(info.value)
    with pytest.raises(EgressRefusedError, match=r"denies 127\.0\.0\.1/32"):
        sql_load(url, policy("127.0.0.0/8", deny=("127.0.0.1/32",)))
    assert listener.accepted == 0
    # Allowed, the driver does connect (this port speaks no PostgreSQL, so it then fails).
    with pytest.raises(SourceError, match="cannot connect") as failed:
        sql_load(url, policy("127.0.0.1/32"))
    assert not isinstance(failed.value, EgressRefusedError)
    assert listener.accepted >= 1


@pytest.mark.parametrize("query", ["?host=10.0.0.1", "?hostaddr=169.254.169.254",
                                   "?service=prod"])
def test_sql_hosts_the_policy_cannot_see_are_refused(listener: Listener, query: str) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://monitor:pw@db.example:{listener.port}/db{query}"
    with pytest.raises(SourceError, match=r"in the URL's query cannot be checked"):
        sql_load(url, policy("0.0.0.0/0"))
    assert listener.accepted == 0


def test_sql_on_sqlite_is_not_a_network_destination(tmp_path: Any) -> None:
    # Its file is under the local-path rule instead: allowed here.
    policy = replace(Policy.operator(), local_paths=(tmp_path.resolve(),))
    frame = sql_load(f"sqlite:///{tmp_path / 'x.db'}", policy).frame
    assert frame["x"].tolist() == [1]
    dispose_engines()


# ----------------------------------------------------------------------- S3 and GCS hosts

KEY = {"type": "service_account", "project_id": "p", "private_key_id": "kid-1",
       # Not a key: an obviously fake PEM body, split so that scanners see no key either.
       "private_key": ("-----BEGIN " + "PRIVATE KEY-----\nnot-a-key\n"
                       "-----END " + "PRIVATE KEY-----\n"),
       "client_email": "m@p.iam.gserviceaccount.com", "token_uri": "TOKEN"}


def cloud_ctx(values: dict[tuple[str, str], str], p: Policy) -> LoadContext:
    return LoadContext(role="spec.reference.source", policy=p,
                       resolver=LocalResolver(values, env={}))


def test_an_s3_endpoint_from_the_secret_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"minio.test": ["10.0.0.5"], "imds.test": ["169.254.169.254"]})
    src = Source.model_validate({"url": "s3://b/k.csv", "credentialsSecretRef": {"name": "s"}})

    def options(endpoint: str, p: Policy) -> dict[str, Any]:
        values = {("s", "AWS_ACCESS_KEY_ID"): "AKID", ("s", "AWS_SECRET_ACCESS_KEY"): "SECRET",
                  ("s", "AWS_ENDPOINT_URL"): endpoint}
        return url_module._s3_options(src, cloud_ctx(values, p), "spec.reference.source.url")[0]

    for endpoint in ("http://169.254.169.254", "http://imds.test:80", "http://127.0.0.1:9000"):
        with pytest.raises(EgressRefusedError) as info:
            options(endpoint, Policy.operator())
        assert str(info.value).startswith(
            "spec.reference.source.credentialsSecretRef (Secret 's' key AWS_ENDPOINT_URL): "
            "the operator may not connect to ")
    with pytest.raises(EgressRefusedError, match=r"minio\.test \(10\.0\.0\.5\) \(the "
                                                  r"administrator denies 10\.0\.0\.0/8"):
        options("http://minio.test:9000", policy(deny=("10.0.0.0/8",)))
    assert options("http://minio.test:9000", Policy.operator())["endpoint_url"] == \
        "http://minio.test:9000"
    # modelmon check: no policy, nothing resolved.
    assert options("http://169.254.169.254", Policy.local())["endpoint_url"] == \
        "http://169.254.169.254"


def test_a_gcs_keys_token_uri_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"oauth2.test": ["10.0.0.7"]})
    src = Source.model_validate({"url": "gs://b/k.csv", "credentialsSecretRef": {"name": "g"}})

    def options(token_uri: str, p: Policy) -> dict[str, Any]:
        key = json.dumps({**KEY, "token_uri": token_uri})
        return url_module._gcs_options(src, cloud_ctx({("g", "service-account.json"): key}, p),
                                       "spec.reference.source.url")[0]

    with pytest.raises(EgressRefusedError) as info:
        options("http://169.254.169.254/computeMetadata/v1/token", Policy.operator())
    assert str(info.value).startswith(
        "spec.reference.source.credentialsSecretRef (Secret 'g' key service-account.json, "
        "token_uri): the operator may not connect to 169.254.169.254 (cloud metadata")
    assert options("https://oauth2.test/token", Policy.operator())["token"]["token_uri"] == \
        "https://oauth2.test/token"


def test_fixed_endpoints_are_refused_only_by_a_deny_entry() -> None:
    r = rules(Egress(deny=("127.0.0.2", "*.googleapis.com")))
    r.check_fixed("127.0.0.1", "spec.x.url")  # loopback, but chosen by the administrator
    with pytest.raises(EgressRefusedError, match=r"denies 127\.0\.0\.2/32"):
        r.check_fixed("127.0.0.2", "spec.x.url")
    with pytest.raises(EgressRefusedError, match=r"denies \*\.googleapis\.com"):
        r.check_fixed("storage.googleapis.com", "spec.x.url")


def test_a_denied_gcs_emulator_is_refused_before_any_request(
        monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    pytest.importorskip("gcsfs")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.2:9")
    key = json.dumps({**KEY, "private_key": pem,
                      "token_uri": f"http://127.0.0.1:{listener.port}/token"})
    src = Source.model_validate({"url": "gs://b/k.csv", "credentialsSecretRef": {"name": "g"}})
    ctx = cloud_ctx({("g", "service-account.json"): key},
                    policy("127.0.0.1/32", deny=("127.0.0.2",)))
    with pytest.raises(EgressRefusedError, match=r"spec\.reference\.source\.url: the operator "
                                                  r"may not connect to 127\.0\.0\.2 \(the "
                                                  r"administrator denies 127\.0\.0\.2/32"):
        url_module.target(src, ctx)
    assert listener.accepted == 0  # not even a token was asked for

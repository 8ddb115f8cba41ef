"""The prometheus source's HTTP handling against a stub server (auth proxies, odd answers).

The query semantics are tested against a real Prometheus in
tests/integration/test_sources_prometheus.py.
"""

from __future__ import annotations

import http.server
import json
import urllib.parse
from typing import Any, ClassVar

import pytest

from loopback import HttpServers
from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError
from modelmon.sources.prometheus import OperationalFigure, operational_figures
from modelmon.sources.resolvers import LocalResolver
from verdicts import out_of_bounds

TOKEN = "tok-very-secret-123"


class Stub(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, Any]]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        Stub.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                          "form": dict(urllib.parse.parse_qsl(body))})
        status, payload = Stub.answers.pop(0) if Stub.answers else (200, {
            "status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub(http_servers: HttpServers) -> str:
    Stub.answers, Stub.seen = [], []
    return http_servers.start(Stub) + "/prom"


def source(url: str, **extra: Any) -> Source:
    return Source.model_validate({"prometheus": {
        "url": url, "queries": [{"name": "p95", "query": "up", "max": 0.5}], **extra}})


def run(src: Source, **kw: Any) -> list[OperationalFigure]:
    resolver = LocalResolver({("prom", "token"): TOKEN}, env={})
    return operational_figures(src, LoadContext(role="spec.operational.source",
                                                resolver=resolver, retry_delay=0.01, **kw))


def test_bearer_token_and_path_prefix(stub: str) -> None:
    src = source(stub, bearerTokenSecretRef={"name": "prom", "key": "token"})
    got = run(src)
    assert got[0].value == 1.0 and "p95" in out_of_bounds(src, got)
    assert Stub.seen[0]["path"] == "/prom/api/v1/query"
    assert Stub.seen[0]["auth"] == f"Bearer {TOKEN}"
    assert Stub.seen[0]["form"]["query"] == "up" and Stub.seen[0]["form"]["timeout"] == "30s"


def test_basic_auth_from_the_url_is_a_header_not_a_message(stub: str) -> None:
    Stub.answers = [(401, {"status": "error", "error": "unauthorized"})]
    with pytest.raises(SourceError) as info:
        run(source(stub.replace("http://", "http://me:pw-secret@")))
    assert Stub.seen[0]["auth"].startswith("Basic ")
    assert "HTTP 401" in str(info.value) and "pw-secret" not in str(info.value)


def test_refused_token_is_not_retried(stub: str) -> None:
    Stub.answers = [(403, {"status": "error", "error": "forbidden"})] * 3
    with pytest.raises(SourceError, match="bearerTokenSecretRef") as info:
        run(source(stub, bearerTokenSecretRef={"name": "prom", "key": "token"}), retries=2)
    assert TOKEN not in str(info.value) and len(Stub.seen) == 1


def test_server_errors_are_retried(stub: str) -> None:
    Stub.answers = [(503, {"status": "error", "error": "unavailable"}),
                    (502, b"bad gateway")]
    assert run(source(stub), retries=2)[0].value == 1.0 and len(Stub.seen) == 3


def test_query_timeout_and_odd_answers(stub: str) -> None:
    Stub.answers = [(503, {"status": "error", "errorType": "timeout",
                           "error": "query timed out in expression evaluation"})]
    with pytest.raises(SourceError, match=r"queries\[0\]\.query: the query ran longer"):
        run(source(stub), retries=0)
    Stub.answers = [(200, b"<html>not prometheus</html>")]
    with pytest.raises(SourceError, match="did not answer like Prometheus"):
        run(source(stub), retries=0)
    Stub.answers = [(200, {"status": "success",
                           "data": {"resultType": "string", "result": [0, "x"]}})]
    with pytest.raises(DataError, match="returned a string"):
        run(source(stub), retries=0)


def test_missing_token_secret(stub: str) -> None:
    src = source(stub, bearerTokenSecretRef={"name": "other", "key": "token"})
    with pytest.raises(SourceError, match="--secret other/token=VALUE"):
        run(src)


def test_api_rules() -> None:
    with pytest.raises(ValueError, match="names must be unique"):
        Source.model_validate({"prometheus": {"url": "http://p:9090", "queries": [
            {"name": "a", "query": "up"}, {"name": "a", "query": "up"}]}})
    with pytest.raises(ValueError, match="must not exceed max"):
        Source.model_validate({"prometheus": {"url": "http://p:9090", "queries": [
            {"name": "a", "query": "up", "min": 2, "max": 1}]}})
    with pytest.raises(ValueError, match="step: needs range"):
        Source.model_validate({"prometheus": {"url": "http://p:9090", "queries": [
            {"name": "a", "query": "up", "step": "1m"}]}})


SECRET = "planted-not-prometheus-42"  # fake: must never reach a message


@pytest.mark.parametrize("answer", [
    (200, {"status": "error", "error": SECRET}),           # no errorType: not Prometheus'
    (200, {"secret": SECRET}),                              # some other service's JSON
    (500, {"message": SECRET}),
    (400, f"<html>{SECRET}</html>".encode()),
])
def test_an_answer_that_is_not_prometheus_is_never_quoted(
        stub: str, answer: tuple[int, Any]) -> None:
    Stub.answers = [answer]
    with pytest.raises((SourceError, DataError)) as info:
        run(source(stub), retries=0)
    assert SECRET not in str(info.value)
    assert "bytes" in str(info.value) or "answer" in str(info.value), str(info.value)


def test_prometheus_answers_count_against_max_bytes(stub: str) -> None:
    Stub.answers = [(200, {"status": "success", "data": {
        "resultType": "scalar", "result": [0, "1"], "pad": "x" * 5000}})]
    bounded = Source.model_validate({**source(stub).model_dump(by_alias=True,
                                                               exclude_none=True),
                                     "maxBytes": "4Ki"})
    with pytest.raises(DataError) as info:
        run(bounded)
    assert str(info.value).startswith(
        "spec.operational.source.maxBytes: the source has more than 4096 bytes "
        "(Content-Length ")
    assert run(bounded)[0].value == 1.0  # the usual small answer

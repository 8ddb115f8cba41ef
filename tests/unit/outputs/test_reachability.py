"""API server reachability: requests that get no answer, logged once per outage.

The "API server" here is a loopback port that refuses connections, or a socket that accepts
them and never answers (as a stopped process does); no Kubernetes is mocked: the tests
only need a server that does not answer. The real outage is tested in
tests/integration/test_outage.py.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest
from kubernetes import client

from loopback import HttpServers
from modelmon.outputs.kube import ApiUnreachableError, Kube, ObjectRef, Reachability


def api_at(port: int) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    return client.ApiClient(cfg)


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    msgs = [r.getMessage() for r in caplog.records if r.name == "modelmon.outputs.kube"]
    return ([m for m in msgs if m.startswith("the API server is unreachable")],
            [m for m in msgs if m.startswith("the API server is reachable again")])


def test_reachability_logs_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    r = Reachability(clock=lambda: now[0])
    caplog.set_level(logging.INFO)
    r.succeeded()
    for _ in range(5):
        r.failed(ConnectionRefusedError("refused"))
    assert not r.reachable
    now[0] = 142.0
    for _ in range(3):
        r.succeeded()
    assert r.reachable and r.outages == 1
    down, up = outage_lines(caplog)
    assert down == ["the API server is unreachable: ConnectionRefusedError: refused; checks "
                    "keep running, status writes wait"]
    assert up == ["the API server is reachable again after 42 s; writing the statuses held "
                  "meanwhile"]
    assert not any(r.exc_info for r in caplog.records)


def test_requests_to_a_refusing_server_raise_unreachable_and_log_once(
        refused_port: int, caplog: pytest.LogCaptureFixture) -> None:
    kube = Kube(api_at(refused_port))
    caplog.set_level(logging.INFO)
    ref = ObjectRef("ns", "m", "uid")
    for _ in range(3):
        with pytest.raises(ApiUnreachableError, match="Error"):
            kube.patch_status(ref, {"phase": "Healthy"})
    kube.event(ref, "Normal", "Healthy", "no exception escapes an Event")
    assert kube.probe() is False
    assert not kube.reachability.reachable and kube.reachability.outages == 1
    down, up = outage_lines(caplog)
    assert len(down) == 1 and up == []
    assert not any(r.exc_info for r in caplog.records)


def test_a_stalled_server_counts_as_unreachable_within_the_probe_timeout(
        stalled_port: int, caplog: pytest.LogCaptureFixture) -> None:
    kube = Kube(api_at(stalled_port))
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    assert kube.probe() is False
    assert time.monotonic() - started < 5  # the probe's read timeout is 3 s, no retries
    down, _ = outage_lines(caplog)
    assert len(down) == 1 and "ReadTimeoutError" in down[0], down


def test_an_http_error_status_is_an_answer(caplog: pytest.LogCaptureFixture,
                                           http_servers: HttpServers) -> None:
    """A server that answers 404 to everything is reachable: a failed write it is not."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def do_PATCH(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http_servers.run(ThreadingHTTPServer(("127.0.0.1", 0), NotFound))
    kube = Kube(api_at(server.server_address[1]))
    kube.reachability.failed(ConnectionResetError("earlier outage"))
    caplog.set_level(logging.INFO)
    with pytest.raises(client.ApiException) as caught:
        kube.patch_status(ObjectRef("ns", "m", "uid"), {})
    assert caught.value.status == 404
    assert kube.reachability.reachable
    assert kube.probe() is True
    _, up = outage_lines(caplog)
    assert len(up) == 1


def kopf_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 0, message, None, None)


def test_kopf_connection_retries_feed_reachability_instead_of_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    from modelmon.runner import KopfConnectionRetries

    r = Reachability()
    keep = KopfConnectionRetries(r)
    refused = kopf_record(
        "Request attempt #2/9 failed; will retry: GET https://127.0.0.1:6443/apis/x -> "
        "ClientConnectorError(ConnectionKey(host='127.0.0.1', port=6443), "
        "ConnectionRefusedError(111, 'Connect call failed'))")
    caplog.set_level(logging.INFO)
    assert keep.filter(refused) is False and keep.filter(refused) is False
    assert not r.reachable and r.outages == 1
    assert len(outage_lines(caplog)[0]) == 1
    forbidden = kopf_record("Request attempt #2/9 failed; will retry: GET /apis/x -> "
                            "APIForbiddenError('modelmonitors is forbidden')")
    assert keep.filter(forbidden) is True  # an answer that says no stays in the log
    assert keep.filter(kopf_record("Request attempt #9/9 failed; escalating: GET /x -> "
                                   "ClientConnectorError()")) is False
    assert keep.filter(kopf_record("Request attempt #9/9 failed; escalating: GET /x -> "
                                   "APIServerError('etcd')")) is True
    other = logging.LogRecord("modelmon", logging.ERROR, __file__, 0, refused.msg, None, None)
    assert keep.filter(other) is True


def test_a_429_kopf_will_retry_is_not_an_error_line() -> None:
    """Right after a CRD is installed the API server answers 429 "storage is
    (re)initializing" with a retry-after: kopf retries, nothing is wrong, no error line. Only
    if kopf gives up does it reach the log; reachability is not touched either way."""
    from modelmon.runner import KopfConnectionRetries

    r = Reachability()
    keep = KopfConnectionRetries(r)
    retried = kopf_record(
        "Request attempt #1/9 failed; will retry: GET https://127.0.0.1:6443/apis/modelmon.io/"
        "v1alpha1/modelmonitors -> APITooManyRequestsError('storage is (re)initializing', "
        "{'code': 429})")
    assert keep.filter(retried) is False
    assert keep.filter(kopf_record("Request attempt #9/9 failed; escalating: GET /x -> "
                                   "APITooManyRequestsError('storage is (re)initializing')"))
    assert r.reachable and r.outages == 0

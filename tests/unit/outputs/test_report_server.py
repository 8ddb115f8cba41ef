"""The live report's HTTP server (outputs.report.server) on loopback, through aiohttp's test
client: the list and a monitor's page as HTML and JSON, 404s for unknown and malformed
names, escaping, no file served, and the headers every answer carries."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from modelmon.api.v1alpha1 import CheckSummary, ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import CheckResult, run_check_with_shapes
from modelmon.monitor_files import load_monitors
from modelmon.outputs.report.live import LiveReports
from modelmon.outputs.report.server import CSP, ReportServer, report_app
from report_data import ODD_NAME, write_monitor

pytestmark = pytest.mark.timeout(120)

NS = "ml"
Client = TestClient[web.Request, web.Application]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelMonitorSpec, CheckResult]:
    path = write_monitor(tmp_path_factory.mktemp("data"), 6)
    (mon,) = load_monitors(path)
    spec = mon.spec.model_copy(update={"model": mon.spec.model.model_copy(
        update={"name": "<script>alert('model')</script>"})})
    return spec, run_check_with_shapes(spec, base_dir=path.parent)


@pytest.fixture
def store(checked: tuple[ModelMonitorSpec, CheckResult]) -> LiveReports:
    spec, result = checked
    reports = LiveReports()
    last = result.status.last_check
    assert last is not None
    earlier = result.status.model_copy(update={"history": [CheckSummary(
        time=last.time - timedelta(minutes=k), phase="Healthy",
        drift_share=0.0, findings=0, current_rows=900 + k) for k in (20, 10)]})
    reports.seed((NS, "credit"), spec, earlier)
    reports.record((NS, "credit"), spec, result.status, result.shapes, failed=False)
    reports.seed(("other", "broken"), None, ModelMonitorStatus())
    return reports


@pytest.fixture
async def client(store: LiveReports) -> AsyncIterator[Client]:
    async with TestClient(TestServer(report_app(store), host="127.0.0.1")) as running:
        yield running


def assert_guarded(headers: Mapping[str, str]) -> None:
    assert headers.get("Content-Security-Policy") == CSP
    assert headers.get("Cache-Control") == "no-store"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"


async def test_the_list_as_html_names_every_monitor_with_its_figures(
        client: Client, checked: tuple[ModelMonitorSpec, CheckResult]
) -> None:
    _, result = checked
    resp = await client.get("/monitors", headers={"Accept": BROWSER_ACCEPT})
    assert resp.status == 200 and resp.content_type == "text/html"
    assert_guarded(resp.headers)
    page = await resp.text()
    rows = re.findall(r'<tr data-monitor="([^"]+)">(.*?)</tr>', page)
    assert [name for name, _ in rows] == ["ml/credit", "other/broken"]
    credit = rows[0][1]
    drift = result.status.drift
    assert drift is not None
    assert f"{len(drift.drifted)}/{len(drift.features)} ({drift.share:.1%})" in credit
    assert result.status.phase in credit
    critical = sum(f.severity == "critical" for f in result.status.findings)
    assert f"{critical} critical" in credit
    assert f"{len(result.status.findings) - critical} warning" in credit
    assert result.status.last_check is not None
    assert result.status.last_check.time.strftime("%Y-%m-%d %H:%M:%S UTC") in credit
    assert 'href="/monitors/ml/credit"' in credit
    # The model's name is the user's text: escaped, never markup.
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;model&#x27;)" in page


@pytest.mark.parametrize("how", [{"params": {"format": "json"}},
                                 {"headers": {"Accept": "application/json"}}])
async def test_the_list_as_json(client: Client,
                                checked: tuple[ModelMonitorSpec, CheckResult],
                                how: dict[str, dict[str, str]]) -> None:
    _, result = checked
    resp = await client.get("/monitors", **how)  # type: ignore[arg-type]
    assert resp.status == 200 and resp.content_type == "application/json"
    assert_guarded(resp.headers)
    listed = (await resp.json())["monitors"]
    assert [(m["namespace"], m["name"]) for m in listed] == [("ml", "credit"),
                                                              ("other", "broken")]
    credit, broken = listed
    assert credit["phase"] == result.status.phase
    assert credit["driftShare"] == pytest.approx(result.status.drift.share)  # type: ignore[union-attr]
    assert sum(credit["findings"].values()) == len(result.status.findings)
    assert credit["lastCheck"] == result.status.last_check.time.isoformat()  # type: ignore[union-attr]
    assert credit["report"] == "/monitors/ml/credit"
    assert broken["phase"] == "Pending" and broken["lastCheck"] is None


async def test_a_monitor_page_is_the_report_with_trends_and_a_way_back(
        client: Client) -> None:
    resp = await client.get("/monitors/ml/credit")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert_guarded(resp.headers)
    page = await resp.text()
    assert '<a href="/monitors">&larr; all monitors</a>' in page
    assert 'data-monitor="ml/credit"' in page
    assert 'id="m0-trends"' in page and "3 checks" in page  # two seeded, one recorded
    assert 'id="modelmon-charts"' in page  # the plots' data, drawn by the inlined script
    assert "<b>name</b>" not in page and "odd &lt;b&gt;name&lt;/b&gt;" in page
    assert ODD_NAME not in page
    assert "<script>alert" not in page


async def test_a_monitor_as_json_has_its_status_and_history(
        client: Client,
        checked: tuple[ModelMonitorSpec, CheckResult]) -> None:
    _, result = checked
    resp = await client.get("/monitors/ml/credit", params={"format": "json"})
    assert resp.status == 200
    body = json.loads(await resp.text())
    assert body["status"]["phase"] == result.status.phase
    assert [p["currentRows"] for p in body["history"]] == [
        920, 910, result.status.last_check.current_rows]  # type: ignore[union-attr]


async def test_a_monitor_whose_spec_does_not_parse_shows_its_status(
        client: Client) -> None:
    resp = await client.get("/monitors/other/broken")
    assert resp.status == 200
    assert "not checked yet" in await resp.text()


@pytest.mark.parametrize("path", [
    "/monitors/ml/unknown", "/monitors/nope/credit", "/monitors/ML/credit",
    "/monitors/ml/credit/", "/monitors/ml/credit/extra", "/monitors/ml/..",
    "/monitors/%2e%2e/%2e%2e", "/monitors/ml/..%2F..%2Fetc%2Fpasswd",
    "/monitors/ml/-credit", "/monitors/ml/" + "a" * 254, "/monitors/ml/cr%00edit",
    "/etc/passwd", "/../../etc/passwd", "/static/vega.js", "/monitors/ml/%3Cscript%3E",
    "/favicon.ico", "/operator/modelmon/cli.py",
])
async def test_anything_else_is_not_found_and_serves_no_file(
        client: Client, path: str) -> None:
    resp = await client.get(URL(path, encoded=True), allow_redirects=False)
    assert resp.status == 404, path
    assert_guarded(resp.headers)
    text = await resp.text()
    assert "root:" not in text and "import" not in text
    assert "<script" not in text


async def test_only_reads_are_answered(client: Client) -> None:
    assert (await client.post("/monitors")).status == 405
    assert (await client.delete("/monitors/ml/credit")).status == 405
    head = await client.head("/monitors/ml/credit")
    assert head.status == 200


async def test_the_root_leads_to_the_list(client: Client) -> None:
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/monitors"


async def test_a_forgotten_monitor_is_gone(client: Client,
                                           store: LiveReports) -> None:
    store.forget((NS, "credit"))
    assert (await client.get("/monitors/ml/credit")).status == 404
    listed = (await (await client.get("/monitors?format=json")).json())["monitors"]
    assert [m["name"] for m in listed] == ["broken"]


def test_the_server_thread_serves_and_a_taken_port_is_an_error(store: LiveReports,
                                                               tmp_path: Path) -> None:
    import urllib.request

    server = ReportServer(store, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/monitors?format=json",
                                    timeout=10) as resp:
            assert len(json.loads(resp.read())["monitors"]) == 2
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError, match="address already in use"):
                ReportServer(store, "127.0.0.1", taken.getsockname()[1]).start()
    finally:
        server.stop()

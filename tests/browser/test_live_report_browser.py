"""The live report in a real browser: the operator's report server (outputs.report.server),
started in-process on loopback against real check results of a 3- and a 100-feature
monitor with a history, is opened in headless Chromium: /monitors lists both, its link
leads to the monitor's page, and every chart (columns, performance, trends) draws without a
console error, under the server's Content-Security-Policy, loading nothing but the page.

Screenshots go where tests/browser/test_report_browser.py puts its own ($MODELMON_TEST_
ARTIFACTS/browser, else browser-artifacts/ under pytest's base temporary directory):
live-monitors.png (the list), live-<n>-top.png (summary and drift table),
live-<n>-columns.png (the column plots) and live-<n>-trends.png (the history).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from headless import Chromium, chromium
from test_report_browser import CHARTS, NAMED, assert_drawn

from modelmon.api.v1alpha1 import CheckSummary
from modelmon.check import run_check_with_shapes
from modelmon.monitor_files import load_monitors
from modelmon.outputs.report.live import LiveReports
from modelmon.outputs.report.server import ReportServer
from report_data import feature_names, write_monitor
from toolcheck import require

pytestmark = pytest.mark.timeout(300)

SIZES = (3, 100)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MODELMON_TEST_ARTIFACTS")
    folder = (Path(given) / "browser" if given
              else tmp_path_factory.getbasetemp() / "browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The report server with both monitors: a history from their statuses (earlier
    checks) and two real checks each, ten minutes apart."""
    store = LiveReports()
    for features in SIZES:
        name = f"model-{features}"
        path = write_monitor(tmp_path_factory.mktemp(name), features, name=name)
        (mon,) = load_monitors(path)
        first = run_check_with_shapes(mon.spec, base_dir=path.parent)
        last = first.status.last_check
        assert last is not None
        store.seed(("ml", name), mon.spec, first.status.model_copy(update={"history": [
            CheckSummary(time=last.time - timedelta(minutes=10 * k), phase="Healthy",
                         drift_share=0.05 * k, findings=k, current_rows=1000 - 20 * k)
            for k in range(6, 0, -1)]}))
        for minutes in (0, 10):
            result = run_check_with_shapes(mon.spec, base_dir=path.parent,
                                           now=last.time + timedelta(minutes=minutes))
            store.record(("ml", name), mon.spec, result.status, result.shapes, failed=False)
    server = ReportServer(store, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    binary = require("chromium")
    async with chromium(binary) as running:
        yield running


async def test_the_list_of_monitors(browser: Chromium, served: str, artifacts: Path) -> None:
    page = await browser.new_page()
    await page.goto(f"{served}/monitors")
    rows = await page.evaluate("""Array.from(document.querySelectorAll(
        'table.monitors tbody tr')).map(function (tr) {
          return {monitor: tr.getAttribute('data-monitor'),
                  cells: Array.from(tr.cells).map(function (td) { return td.innerText; }),
                  href: tr.querySelector('a').getAttribute('href')}; })""")
    assert [r["monitor"] for r in rows] == ["ml/model-100", "ml/model-3"]
    for row in rows:
        namespace, name, model, phase, drifted, findings, last, _ = row["cells"]
        assert (namespace, name, model) == ("ml", row["monitor"][3:], "generated")
        assert phase in ("Drifting", "Degraded") and "/" in drifted and "%" in drifted
        assert "critical" in findings and last.endswith("UTC")
        assert row["href"] == f"/monitors/{row['monitor']}"
    assert page.log.errors() == [] and page.log.exceptions == []
    assert page.log.requests == [f"{served}/monitors"]
    await page.screenshot(artifacts / "live-monitors.png")
    assert (artifacts / "live-monitors.png").stat().st_size > 5_000


@pytest.mark.parametrize("features", SIZES)
async def test_a_monitor_page_draws_every_column_and_its_trends(
        browser: Chromium, served: str, artifacts: Path, features: int) -> None:
    page = await browser.new_page()
    await page.goto(f"{served}/monitors")
    # Follow the list's link, as a user would.
    href = await page.evaluate(
        f"document.querySelector('tr[data-monitor=\"ml/model-{features}\"] a').href")
    assert href == f"{served}/monitors/ml/model-{features}"
    await page.goto(href)
    drawn = int(await page.wait_for("document.body.getAttribute('data-charts-drawn')",
                                    timeout=120))
    failed = int(await page.evaluate("document.body.getAttribute('data-charts-failed')"))
    assert failed == 0, page.log.errors()
    assert page.log.errors() == [] and page.log.exceptions == []
    assert page.log.requests == [f"{served}/monitors", href]  # nothing else loaded

    charts = await page.evaluate(CHARTS)
    assert_drawn(charts, drawn)
    columns = {*feature_names(features), "prediction", "target"}
    assert {c["column"] for c in charts if c["column"]} == columns
    named = await page.evaluate(NAMED)
    assert {attr for attr, _ in named["cards"]} == columns
    assert all(attr == heading for attr, heading in named["cards"])
    trends = await page.evaluate("""Array.from(document.querySelectorAll(
        '#m0-trends div.chart')).map(function (el) {
          return el.querySelectorAll('svg g.role-mark').length; })""")
    assert len(trends) >= 4 and all(marks > 0 for marks in trends)
    said = await page.evaluate("document.querySelector('#m0-trends p').innerText")
    assert said.startswith("8 checks")  # six from the status, two recorded
    back = await page.evaluate("document.querySelector('header.top a').getAttribute('href')")
    assert back == "/monitors"

    await page.screenshot(artifacts / f"live-{features}-top.png", max_height=1800)
    await page.screenshot(artifacts / f"live-{features}-columns.png", "#m0-columns",
                          max_height=2400)
    await page.screenshot(artifacts / f"live-{features}-trends.png", "#m0-trends")
    assert (artifacts / f"live-{features}-trends.png").stat().st_size > 10_000

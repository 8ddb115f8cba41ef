"""The HTML report in a real browser: headless Chromium (Debian's package) opens the file
that `modelmon report` wrote, with no network, and every chart draws without a console error.

Screenshots are written as test artifacts under $MODELMON_TEST_ARTIFACTS/browser when that
is set, else under pytest's base temporary directory (browser-artifacts/, e.g.
/tmp/pytest-of-root/pytest-current/browser-artifacts): the top of each page (summary and
drift table), its column plots, its performance section and, for the page with a history,
its trend charts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headless import Chromium, Page, chromium

from modelmon.api.v1alpha1 import CheckSummary
from modelmon.check import run_check_with_shapes
from modelmon.cli import main
from modelmon.monitor_files import load_monitors
from modelmon.outputs.report import HistoryPoint, MonitorReport, render_report
from report_data import feature_names, write_monitor
from toolcheck import require

pytestmark = pytest.mark.timeout(300)

#: Per chart: its SVG's size and how many marks (bars, points, lines) it drew, and the
#: text it wrote (axis titles name the column).
CHARTS = """
Array.from(document.querySelectorAll('div.chart')).map(function (el) {
  var svg = el.querySelector('svg');
  var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  var marks = svg ? svg.querySelectorAll(
      'g.role-mark path, g.role-mark line, g.role-mark circle, g.role-mark rect').length : 0;
  var card = el.closest('[data-column]');
  return {id: el.id, width: box.width, height: box.height, marks: marks,
          canvas: el.querySelectorAll('canvas').length,
          text: svg ? Array.from(svg.querySelectorAll('text')).map(
              function (t) { return t.textContent; }) : [],
          column: card ? card.getAttribute('data-column') : null};
})
"""

NAMED = """({
  cards: Array.from(document.querySelectorAll('[data-column]')).map(
      function (c) { return [c.getAttribute('data-column'), c.querySelector('h3').innerText]; }),
  table: Array.from(document.querySelectorAll('table.drift tbody tr td:first-child')).map(
      function (td) { return td.innerText; })
})"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MODELMON_TEST_ARTIFACTS")
    folder = (Path(given) / "browser" if given
              else tmp_path_factory.getbasetemp() / "browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    binary = require("chromium")
    async with chromium(binary) as running:
        yield running


async def open_report(browser: Chromium, path: Path) -> tuple[Page, int]:
    """The page once every chart has drawn (or failed): its chart count."""
    page = await browser.new_page()
    await page.goto(path.resolve().as_uri())
    drawn = int(await page.wait_for("document.body.getAttribute('data-charts-drawn')",
                                    timeout=120))
    failed = int(await page.evaluate("document.body.getAttribute('data-charts-failed')"))
    assert failed == 0, page.log.errors()
    return page, drawn


def assert_quiet_and_offline(page: Page, path: Path) -> None:
    assert page.log.errors() == []
    assert page.log.exceptions == []
    assert set(page.log.requests) == {path.resolve().as_uri()}  # nothing else was loaded


def assert_drawn(charts: list[dict[str, Any]], drawn: int) -> None:
    assert len(charts) == drawn > 0
    for chart in charts:
        assert chart["width"] > 50 and chart["height"] > 30, chart["id"]
        assert chart["marks"] > 0, chart["id"]
        if chart["column"] is not None:  # a column's plot is titled with its name
            assert chart["column"] in chart["text"], (chart["column"], chart["text"][:8])


@pytest.mark.parametrize("features", [3, 100])
async def test_file_report_draws_every_column(browser: Chromium, tmp_path: Path,
                                              artifacts: Path, features: int) -> None:
    monitor = write_monitor(tmp_path / "data", features)
    report = tmp_path / f"report-{features}.html"
    assert main(["report", str(monitor), "-o", str(report)]) in (0, 1)
    page, drawn = await open_report(browser, report)
    assert_quiet_and_offline(page, report)

    charts = await page.evaluate(CHARTS)
    assert_drawn(charts, drawn)
    columns = {*feature_names(features), "prediction", "target"}
    assert {c["column"] for c in charts if c["column"]} == columns  # each column plotted
    named = await page.evaluate(NAMED)
    assert {attr for attr, _ in named["cards"]} == columns
    assert all(attr == heading for attr, heading in named["cards"])  # shown as written
    assert set(named["table"]) == columns
    performance = [c for c in charts if c["column"] is None]
    assert performance  # performance (realized and estimated) and class shares drew too

    await page.screenshot(artifacts / f"report-{features}-top.png", max_height=1800)
    await page.screenshot(artifacts / f"report-{features}-columns.png", "#m0-columns",
                          max_height=2400)
    await page.screenshot(artifacts / f"report-{features}-performance.png",
                          "#m0-performance")
    assert (artifacts / f"report-{features}-top.png").stat().st_size > 10_000


async def test_trend_charts_draw_from_a_history(browser: Chromium, tmp_path: Path,
                                                artifacts: Path) -> None:
    path = write_monitor(tmp_path / "data", 3)
    (mon,) = load_monitors(path)
    result = run_check_with_shapes(mon.spec, base_dir=path.parent)
    latest = HistoryPoint.from_status(result.status)
    assert latest is not None
    earlier = [HistoryPoint.from_summary(CheckSummary(
        time=latest.time - timedelta(minutes=10 * k), phase="Healthy", drift_share=0.0,
        findings=0, current_rows=950 + k)) for k in range(5, 0, -1)]
    report = tmp_path / "history.html"
    report.write_text(render_report([MonitorReport(
        name=mon.metadata.name, spec=mon.spec, status=result.status, shapes=result.shapes,
        history=[*earlier, latest])]))
    page, drawn = await open_report(browser, report)
    assert_quiet_and_offline(page, report)
    charts = await page.evaluate(CHARTS)
    assert_drawn(charts, drawn)
    trends = await page.evaluate(
        "document.querySelectorAll('#m0-trends div.chart svg g.role-mark').length")
    assert trends > 0
    await page.screenshot(artifacts / "history-trends.png", "#m0-trends")

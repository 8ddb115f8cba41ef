"""outputs.report: what the HTML report holds, read back with an HTML parser.

The reports are made the way `modelmon report` makes them: a check with shapes
(check.run_check_with_shapes) of a generated monitor (tests/report_data.py), rendered by
render_report. The browser tests (tests/browser) draw the same pages in Chromium.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from modelmon.api.v1alpha1 import CheckSummary, ModelMonitorStatus
from modelmon.check import run_check_with_shapes
from modelmon.evaluation import CheckError, failed_status
from modelmon.monitor_files import load_monitors
from modelmon.outputs.report import HistoryPoint, MonitorReport, bundle, drift_rows, render_report
from modelmon.outputs.report.page import RANKS
from report_data import ODD_NAME, feature_names, write_monitor

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NONE = "\N{EN DASH}"  # what a table shows for a figure that is not there


class Parsed(HTMLParser):
    """Elements' attributes, the text under each id'd section and the scripts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.text_by_section: dict[str, list[str]] = {}
        self.drift_rows: list[list[str]] = []
        self._stack: list[str] = []
        self._section: str | None = None
        self._script: dict[str, str] | None = None
        self._in_drift = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.elements.append((tag, found))
        if tag == "section":
            self._section = found.get("id")
            self.text_by_section.setdefault(self._section or "", [])
        if tag == "script":
            self._script = found
            self._script_text: list[str] = []
        if tag == "table" and "drift" in found.get("class", "").split():
            self._in_drift = True
        if self._in_drift and tag == "tr":
            self._row = []
        if self._row is not None and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None
        if tag == "section":
            self._section = None
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self.drift_rows.append(self._row)
            self._row = None
        if tag == "table":
            self._in_drift = False

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
            return
        if self._section is not None:
            self.text_by_section[self._section].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def section_text(self, anchor: str) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_by_section.get(anchor, [])))

    def charts(self) -> dict[str, Any]:
        (data,) = [text for attrs, text in self.scripts if attrs.get("id") == "modelmon-charts"]
        loaded: dict[str, Any] = json.loads(data)
        return loaded


def checked(folder: Path, features: int) -> MonitorReport:
    path = write_monitor(folder, features)
    (mon,) = load_monitors(path)
    result = run_check_with_shapes(mon.spec, base_dir=folder, now=NOW)
    assert result.status.phase != "Failing", result.status.conditions
    return MonitorReport(name=mon.metadata.name, namespace=mon.metadata.namespace,
                         spec=mon.spec, status=result.status, shapes=result.shapes)


@pytest.fixture(scope="module")
def report100(tmp_path_factory: pytest.TempPathFactory) -> MonitorReport:
    return checked(tmp_path_factory.mktemp("report100"), 100)


@pytest.fixture(scope="module")
def report3(tmp_path_factory: pytest.TempPathFactory) -> MonitorReport:
    return checked(tmp_path_factory.mktemp("report3"), 3)


@pytest.fixture(scope="module")
def page100(report100: MonitorReport) -> tuple[str, Parsed]:
    text = render_report([report100])
    return text, Parsed(text)


def test_every_column_is_named_in_the_table_and_has_a_plot(
        report100: MonitorReport, page100: tuple[str, Parsed]) -> None:
    _, parsed = page100
    columns = [*feature_names(100), "prediction", "target"]
    table = [row[0] for row in parsed.drift_rows]
    assert sorted(table) == sorted(columns)
    cards = [a["data-column"] for tag, a in parsed.elements if "data-column" in a]
    assert sorted(cards) == sorted(columns)
    plotted = {a["id"] for tag, a in parsed.elements if a.get("class") == "chart"}
    charts = parsed.charts()["charts"]
    assert plotted == set(charts)
    titles = {spec["encoding"].get("x", {}).get("title") for spec in charts.values()
              if "encoding" in spec} | {spec["encoding"].get("y", {}).get("title")
                                        for spec in charts.values() if "encoding" in spec}
    assert set(columns) <= titles  # each column's chart is titled with its name
    assert report100.shapes.keys() == set(columns)


def test_drift_table_is_worst_first_then_by_effect(page100: tuple[str, Parsed]) -> None:
    _, parsed = page100
    header_effect, header_verdict = 6, 8  # no correction: no adjusted p-value column
    ranks = [(RANKS[row[header_verdict]],
              float(row[header_effect]) if row[header_effect] != NONE else -1.0)
             for row in parsed.drift_rows]
    assert len(ranks) == 102
    assert ranks == sorted(ranks, key=lambda r: (r[0], -r[1]))
    verdicts = {row[header_verdict] for row in parsed.drift_rows}
    assert {"warning", "drifted", "ok"} <= verdicts  # the order is tested across kinds


def test_drift_rows_put_own_findings_first(report3: MonitorReport) -> None:
    rows = drift_rows(report3.status)
    ranks = [r.rank for r in rows]
    assert ranks == sorted(ranks)
    own = {f.name for f in report3.status.findings}
    for row in rows:
        if row.verdict in ("critical", "warning"):
            assert (f"drift.{row.role}" in own or f"drift.feature.{row.column.name}" in own)


def test_sections_present_and_trends_only_with_history(report3: MonitorReport) -> None:
    parsed = Parsed(render_report([report3]))
    sections = {a["id"] for tag, a in parsed.elements if tag == "section"}
    assert sections == {"m0-summary", "m0-drift", "m0-columns", "m0-performance",
                        "m0-confidence", "m0-quality"}
    summary = parsed.section_text("m0-summary")
    status = report3.status
    assert status.phase in summary and "1,000 current · 1,000 reference" in summary
    assert f"{sum(f.severity == 'warning' for f in status.findings)} warning" in summary
    assert "every row of the current source" in summary  # the spec sets no window
    for finding in status.findings:
        assert finding.name in summary
    performance = parsed.section_text("m0-performance")
    assert "accuracy" in performance and "estimated" in performance
    assert "f000" in parsed.section_text("m0-quality")

    earlier = [HistoryPoint.from_summary(CheckSummary(
        time=NOW - timedelta(hours=h), phase="Healthy", drift_share=0.0, findings=0,
        current_rows=900)) for h in (3, 2)]
    latest = HistoryPoint.from_status(status)
    assert latest is not None
    history = [*earlier, latest]
    parsed = Parsed(render_report([MonitorReport(**{**vars_of(report3), "history": history})]))
    assert any(a.get("id") == "m0-trends" for _, a in parsed.elements)
    trend_text = parsed.section_text("m0-trends")
    assert "3 checks" in trend_text
    labels = {a.get("aria-label") for _, a in parsed.elements}
    assert {"share of drifted features over time", "performance metrics over time",
            "drifted features by check"} <= labels


def vars_of(report: MonitorReport) -> dict[str, Any]:
    return {name: getattr(report, name) for name in report.__dataclass_fields__}


def test_history_points_from_a_status(report3: MonitorReport) -> None:
    point = HistoryPoint.from_status(report3.status)
    assert point is not None and report3.status.drift is not None
    assert point.drift_share == report3.status.drift.share
    assert point.findings == len(report3.status.findings)
    assert point.drifted == tuple(report3.status.drift.drifted)
    assert set(point.estimated) == set(report3.status.estimated_performance)
    assert HistoryPoint.from_status(ModelMonitorStatus()) is None


def test_hundred_features_stay_under_5_mb_and_self_contained(
        page100: tuple[str, Parsed]) -> None:
    text, parsed = page100
    assert len(text.encode()) < 5 * 2**20
    for tag, attrs in parsed.elements:
        assert "src" not in attrs or attrs["src"].startswith("data:"), (tag, attrs)
        assert tag not in {"link", "iframe"}
        assert not attrs.get("href", "#").startswith(("http:", "https:", "//")), attrs
    # One script holds the charts, one the plotting library, one draws.
    assert [a.get("type") for a, _ in parsed.scripts] == ["application/json", None, None]
    assert "vegaEmbed" in parsed.scripts[1][1] and "vegaEmbed(" in parsed.scripts[2][1]


def test_names_from_the_data_are_escaped(report3: MonitorReport) -> None:
    text = render_report([report3])
    assert ODD_NAME not in text  # neither as markup nor raw inside the JSON
    parsed = Parsed(text)
    assert ODD_NAME in [a.get("data-column") for _, a in parsed.elements]
    assert ODD_NAME in parsed.section_text("m0-drift")
    chart_titles = json.dumps(parsed.charts())
    assert json.dumps(ODD_NAME)[1:-1] in chart_titles


def test_histogram_shares_are_the_counts(report3: MonitorReport) -> None:
    parsed = Parsed(render_report([report3]))
    spec = next(s for s in parsed.charts()["charts"].values()
                if s["encoding"]["x"].get("title") == "f002")
    shape = report3.shapes["f002"].shape
    assert shape is not None
    rows = [v for v in spec["data"]["values"] if v["side"] == "current"]
    assert [v["rows"] for v in rows] == shape.current.tolist()
    drawn = sum(v["rows"] for v in rows)
    assert sum(v["share"] for v in rows) == pytest.approx(
        drawn / shape.current_side.present, abs=1e-4)


def test_new_and_vanished_categories_are_named(report100: MonitorReport) -> None:
    parsed = Parsed(render_report([report100]))
    columns = parsed.section_text("m0-columns")
    assert "New in the current window: c6" in columns
    assert "Vanished from the current window: c0" in columns
    labels = {v["category"] for s in parsed.charts()["charts"].values()
              for v in s.get("data", {}).get("values", []) if "category" in v}
    assert {"c6 (new)", "c0 (vanished)"} <= labels


def test_a_failed_check_reports_its_reason_without_plots(report3: MonitorReport) -> None:
    status = failed_status(ModelMonitorStatus(), CheckError("the source is down"), NOW, None)
    parsed = Parsed(render_report([MonitorReport(name="down", spec=report3.spec,
                                                 status=status)]))
    summary = parsed.section_text("m0-summary")
    assert "Failing" in summary and "the source is down" in summary
    assert not any(a.get("class") == "chart" for _, a in parsed.elements)
    assert not parsed.scripts  # no charts, no plotting library
    assert ("data-charts-drawn", "0") in [
        (k, v) for tag, a in parsed.elements if tag == "body" for k, v in a.items()]


def test_several_monitors_share_one_page(report3: MonitorReport) -> None:
    second = MonitorReport(**{**vars_of(report3), "name": "second"})
    parsed = Parsed(render_report([report3, second]))
    articles = [a.get("data-monitor") for tag, a in parsed.elements if tag == "article"]
    assert articles == ["ml/report-test", "ml/second"]
    ids = [a["id"] for _, a in parsed.elements if "id" in a]
    assert len(ids) == len(set(ids))


def test_bundle_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vl_convert

    calls: list[str] = []

    def fake(snippet: str, vl_version: str | None = None) -> str:
        calls.append(snippet)
        return "var x = 1;" + snippet.replace(" ", "")

    monkeypatch.setattr(vl_convert, "javascript_bundle", fake)
    first = bundle.load(tmp_path)
    second = bundle.load(tmp_path)
    assert first == second and len(calls) == 1
    (cached,) = tmp_path.glob("vega-bundle-*.js")
    cached.write_text("damaged")
    assert bundle.load(tmp_path) == first and len(calls) == 2
    assert bundle.load(None) == first and len(calls) == 3
    monkeypatch.setenv("MODELMON_CACHE_DIR", str(tmp_path / "mine"))
    assert bundle.cache_dir() == tmp_path / "mine"

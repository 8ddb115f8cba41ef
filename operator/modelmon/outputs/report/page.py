"""The report page: one self-contained HTML document from one or more monitors' checks.

Part of ``outputs.report``. Every figure is written as HTML (tables readable without
JavaScript); the charts (``charts``) are Vega-Lite specifications in one JSON element that
the inlined plotting script (``bundle``) draws on load. Nothing is loaded from anywhere:
styles, data and scripts are all in the file. Every name from the data (columns,
categories, messages) is escaped; the JSON is escaped so that no ``<`` can end its element.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelmon import __version__
from modelmon.api.v1alpha1 import (
    FeatureDriftResult,
    ModelMonitorStatus,
    parse_duration,
)
from modelmon.outputs.report import bundle, charts
from modelmon.outputs.report.inputs import MonitorReport
from modelmon.stats.dataset import CategoricalShape, ColumnShape, NumericShape

#: Columns' verdicts from worst to best: a column with a finding of its own, a drifted
#: one (counted in the share), one within its threshold, one not scored.
RANKS = {"critical": 0, "warning": 1, "drifted": 2, "ok": 3, "not scored": 4}

#: Findings listed before the rest are folded away; critical first, then by kind.
FINDINGS_SHOWN = 12
FINDING_ORDER = {"drift": 0, "performance": 1, "estimatedPerformance": 2, "confidence": 3,
                 "dataQuality": 4, "operational": 5, "check": 6}

#: How many names a caption lists before "and N more".
NAMES_SHOWN = 10


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: float | None, digits: int = 4) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}g}"


def pct(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.1%}"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One line of the drift table: a column's result and how bad it is."""

    column: FeatureDriftResult
    role: str
    verdict: str
    """A key of ``RANKS``."""
    effect: float | None
    """The test's effect size, or a distance's statistic (itself a size of the change)."""

    @property
    def rank(self) -> tuple[int, float]:
        return RANKS[self.verdict], -(self.effect if self.effect is not None else -1.0)


def drift_rows(status: ModelMonitorStatus) -> list[DriftRow]:
    """Every scored column, worst first: by verdict (own finding's severity, drifted, ok,
    not scored), then by effect size, largest first."""
    drift = status.drift
    if drift is None:
        return []
    severity = {f.name: f.severity for f in status.findings}
    columns = [*(("feature", c) for c in drift.features),
               *((role, c) for role, c in (("prediction", drift.prediction),
                                           ("target", drift.target)) if c is not None)]
    rows = []
    for role, column in columns:
        own = severity.get(f"drift.feature.{column.name}" if role == "feature"
                           else f"drift.{role}")
        if column.statistic is None:
            verdict = "not scored"
        elif column.drifted:
            verdict = own or "drifted"
        else:
            verdict = "ok"
        effect = column.effect_size if column.p_value is not None else column.statistic
        rows.append(DriftRow(column, role, verdict, effect))
    return sorted(rows, key=lambda r: r.rank)


class Page:
    """Collects the HTML of the sections and the charts they hold."""

    def __init__(self) -> None:
        self.charts: dict[str, charts.Spec] = {}

    def chart(self, spec: charts.Spec | None, label: str) -> str:
        """A placeholder the script draws ``spec`` into ("" without a spec)."""
        if spec is None:
            return ""
        key = f"chart-{len(self.charts)}"
        self.charts[key] = spec
        return (f'<div class="chart" id="{key}" role="img" aria-label="{esc(label)}">'
                "</div>")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of cells already escaped (a cell may carry attributes: ``(attrs, html)``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f'<table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


# ------------------------------------------------------------------------------ summary


def _window(report: MonitorReport) -> str:
    last = report.status.last_check
    window = report.spec.current.window
    if last is None:
        return "no check has run to the end"
    if window is None:
        return f"every row of the current source, read at {esc(when(last.time))}"
    start = last.time - parse_duration(window)
    return (f"{esc(when(start))} → {esc(when(last.time))} "
            f"(the last {esc(window)}, spec.current.window)")


def summary(report: MonitorReport) -> str:
    status, spec = report.status, report.spec
    critical = sum(f.severity == "critical" for f in status.findings)
    warning = len(status.findings) - critical
    last = status.last_check
    facts = [
        ("Phase", _badge(status.phase, status.phase.lower())),
        ("Findings", f'<span class="sev critical">{critical} critical</span> · '
                     f'<span class="sev warning">{warning} warning</span>'),
        ("Window", _window(report)),
        ("Rows", "&ndash;" if last is None else
         f"{last.current_rows:,} current · {last.reference_rows:,} reference"),
    ]
    drift = status.drift
    if drift is not None:
        facts.append(("Drift", f"{len(drift.drifted)} of {len(drift.features)} features "
                               f"drifted ({pct(drift.share)}); dataset drift: "
                               f"{'yes' if drift.dataset_drift else 'no'} (alert at "
                               f"{pct(spec.drift.dataset_drift_share)})"))
    if last is not None:
        facts.append(("Check", f"{esc(when(last.time))}, took {last.duration_seconds:.3f} s"))
    model = esc(spec.model.name) + (f" {esc(spec.model.version)}" if spec.model.version else "")
    facts.insert(0, ("Model", f"{model} ({esc(spec.model.task)})"))
    out = ['<dl class="facts">'
           + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"]
    ready = status.condition("Ready")
    if ready is not None and ready.status != "True":
        out.append(f'<p class="reason"><strong>{esc(ready.reason)}</strong>: '
                   f"{esc(ready.message)}</p>")
    if status.findings:
        ordered = sorted(status.findings, key=lambda f: (
            f.severity != "critical", FINDING_ORDER.get(f.name.split(".")[0], 9), f.name))
        rows = [[_badge(f.severity, f.severity), esc(f.name), fmt(f.value), fmt(f.bound),
                 esc(f.message)] for f in ordered]
        header = ["severity", "finding", "value", "bound", "message"]
        out.append(_table(header, rows[:FINDINGS_SHOWN], "findings"))
        if len(rows) > FINDINGS_SHOWN:
            out.append(f"<details><summary>{len(rows) - FINDINGS_SHOWN} more findings"
                       f"</summary>{_table(header, rows[FINDINGS_SHOWN:], 'findings')}"
                       "</details>")
    else:
        out.append("<p>No findings.</p>")
    if status.not_checked:
        out.append("<h3>Not checked</h3>" + _table(
            ["bound", "field", "why"],
            ([esc(n.bound), esc(n.field), esc(n.reason)] for n in status.not_checked)))
    return "".join(out)


# -------------------------------------------------------------------------------- drift


def drift_table(rows: Sequence[DriftRow], prefix: str) -> str:
    if not rows:
        return "<p>No drift figures: the check did not score the window.</p>"
    adjusted = any(r.column.adjusted_p_value is not None for r in rows)
    header = ["column", "role", "kind", "method", "statistic", "p-value",
              *(["adj. p-value"] if adjusted else []), "effect", "threshold", "verdict",
              "note"]
    body = []
    for index, row in enumerate(rows):
        column = row.column
        learned = " (learned)" if column.threshold_source == "learned" else ""
        body.append([
            f'<a href="#{prefix}-col-{index}">{esc(column.name)}</a>', esc(row.role),
            esc(column.kind),
            esc(column.method), fmt(column.statistic), fmt(column.p_value),
            *([fmt(column.adjusted_p_value)] if adjusted else []), fmt(row.effect),
            fmt(column.threshold) + learned,
            _badge(row.verdict, row.verdict.replace(" ", "-")), esc(column.message or "")])
    note = ("<p class=\"note\">Worst first: columns with a finding of their own (by "
            "severity), then drifted, within threshold and unscored ones; within each, by "
            "effect size (a test's effect size, a distance's value), largest first.</p>")
    return _table(header, body, "drift") + note


def _names(names: Sequence[str], count: int) -> str:
    shown = ", ".join(f"<code>{esc(n)}</code>" for n in names[:NAMES_SHOWN])
    more = count - min(len(names), NAMES_SHOWN)
    return shown + (f" and {more} more" if more > 0 else "")


def _caption(shape: ColumnShape) -> str:
    parts = []
    plotted = shape.shape
    if isinstance(plotted, CategoricalShape):
        if plotted.new_count:
            parts.append(f"<strong>New</strong> in the current window: "
                         f"{_names(plotted.new, plotted.new_count)}.")
        if plotted.vanished_count:
            parts.append(f"<strong>Vanished</strong> from the current window: "
                         f"{_names(plotted.vanished, plotted.vanished_count)}.")
    if isinstance(plotted, NumericShape):
        for side, counts in (("reference", plotted.reference_side),
                             ("current", plotted.current_side)):
            if counts.below or counts.above:
                parts.append(f"{counts.below + counts.above:,} {side} values beyond the "
                             f"plotted range ({counts.below:,} below, {counts.above:,} "
                             "above) are counted, not drawn.")
    if plotted is not None and (plotted.reference_side.missing
                                or plotted.current_side.missing):
        ref, cur = plotted.reference_side, plotted.current_side
        parts.append(f"Missing: {ref.missing:,} of {ref.present + ref.missing:,} reference, "
                     f"{cur.missing:,} of {cur.present + cur.missing:,} current rows.")
    return "<p class=\"caption\">" + " ".join(parts) + "</p>" if parts else ""


def column_cards(page: Page, report: MonitorReport, rows: Sequence[DriftRow],
                 prefix: str) -> str:
    """One card per monitored column, in the drift table's order, then any profiled
    column the table lacks."""
    listed = [(r.column.name, r) for r in rows]
    seen = {name for name, _ in listed}
    extra = [(name, None) for name in report.shapes if name not in seen]
    cards = []
    for index, (name, row) in enumerate([*listed, *extra]):
        shape = report.shapes.get(name)
        head = f"<h3>{esc(name)}</h3>"
        if row is not None:
            column = row.column
            stat = (f"{esc(column.method)} {fmt(column.statistic)}"
                    + (f", p {fmt(column.p_value)}" if column.p_value is not None else "")
                    + f", threshold {fmt(column.threshold)}")
            head += (f'<div class="meta">{_badge(row.verdict, row.verdict.replace(" ", "-"))}'
                     f" {esc(row.role)} · {esc(column.kind)} · {stat}</div>")
        if shape is None:
            body = '<p class="none">No plot: this check kept no shape of the column.</p>'
        elif shape.shape is None:
            body = f'<p class="none">No plot: {esc(shape.reason or "no values")}.</p>'
        elif isinstance(shape.shape, NumericShape):
            body = page.chart(charts.numeric_chart(name, shape.shape),
                              f"histograms of {name}, reference and current")
        else:
            body = page.chart(charts.categorical_chart(name, shape.shape),
                              f"category shares of {name}, reference and current")
        caption = _caption(shape) if shape is not None else ""
        cards.append(f'<div class="card" id="{prefix}-col-{index}" data-column="{esc(name)}">'
                     f"{head}{body}{caption}</div>")
    if not cards:
        return "<p>No columns were scored.</p>"
    return ('<p class="legend"><span class="key reference"></span> reference '
            '<span class="key current"></span> current window</p>'
            f'<div class="cards">{"".join(cards)}</div>')


# ------------------------------------------------------------------- the other figures


def performance(page: Page, report: MonitorReport) -> str:
    status, spec = report.status, report.spec
    realized, estimated = status.performance, status.estimated_performance
    out = []
    if realized or estimated:
        names = [*realized, *(k for k in estimated if k not in realized)]
        rows = []
        for metric in names:
            figure = estimated.get(metric)
            band = (f"{fmt(figure.lower)} &ndash; {fmt(figure.upper)}"
                    if figure and figure.lower is not None and figure.upper is not None
                    else "&ndash;")
            rows.append([esc(metric), fmt(realized.get(metric)),
                         *([fmt(figure.value) if figure else "&ndash;", band]
                           if estimated else [])])
        out.append(_table(["metric", "realized", *(["estimated", "band"] if estimated
                                                    else [])], rows))
        bounds = [*spec.performance.metrics, *spec.performance.estimated.metrics]
        out.append(page.chart(charts.performance_chart(realized, estimated, bounds),
                              "performance metrics"))
        if estimated:
            out.append('<p class="note">Estimated without labels from the reference; the '
                       "band is what sampling alone gives for a window this size.</p>")
    if status.estimation_reason:
        out.append(f"<p>Estimated performance not computed: "
                   f"{esc(status.estimation_reason)}</p>")
    labels = status.labels
    if labels is not None and labels.missing_since is not None:
        out.append(f"<p>Labels missing since {esc(when(labels.missing_since))} "
                   f"({labels.missing_seconds:,.0f} s): {esc(labels.reason or '')}</p>")
    if not out:
        return "<p>No performance figures: the window has no labels and nothing is " \
               "estimated.</p>"
    return "".join(out)


def confidence(page: Page, report: MonitorReport) -> str | None:
    conf = report.status.confidence
    if conf is None:
        return None
    if conf.reason is not None:
        return f"<p>Not computed: {esc(conf.reason)}</p>"
    rows = [["mean confidence (top class probability)", fmt(conf.mean_confidence)],
            [f"share below {fmt(conf.low_confidence_below)}", pct(conf.low_confidence_share)],
            ["rows", f"{conf.rows or 0:,}"
             + (f" ({conf.renormalised_rows:,} renormalised)" if conf.renormalised_rows
                else "")]]
    return (_table(["figure", "value"], rows)
            + page.chart(charts.class_share_chart(conf) if conf.class_shares else None,
                         "share of predictions by class"))


QUALITY = (("missingFraction", "missing"), ("outlierFraction", "outliers"),
           ("outOfRangeFraction", "out of range"), ("newCategories", "new categories"))


def data_quality(report: MonitorReport) -> str:
    quality = report.status.data_quality
    if quality is None:
        return "<p>No data-quality figures: the check did not read the window.</p>"
    flagged = {f.name for f in report.status.findings}

    def cell(check: str, column: str, text: str) -> str:
        if f"dataQuality.{check}.{column}" in flagged:
            return f'<span class="flag">{text}</span>'
        return text

    rows = [[esc(c.name), cell("missingFraction", c.name, pct(c.missing_fraction)),
             cell("outlierFraction", c.name, pct(c.outlier_fraction)),
             cell("outOfRangeFraction", c.name, pct(c.out_of_range_fraction)),
             cell("newCategories", c.name,
                  "&ndash;" if c.new_categories is None else str(c.new_categories))]
            for c in quality.columns]
    out = [_table(["column", *(label for _, label in QUALITY)], rows, "quality"),
           '<p class="note">Outliers: beyond the reference\'s quartiles ± 1.5 IQR; out of '
           "range: beyond the reference's minimum and maximum. Figures with a finding are "
           "marked.</p>"]
    if quality.missing_columns:
        out.append("<p>Missing from the current window: "
                   + ", ".join(f"<code>{esc(n)}</code>" for n in quality.missing_columns)
                   + "</p>")
    if quality.type_changes:
        out.append(_table(["column", "reference", "current"],
                          ([esc(t.name), esc(t.reference), esc(t.current)]
                           for t in quality.type_changes)))
    return "".join(out)


def operational(report: MonitorReport) -> str | None:
    figures = report.status.operational
    if not figures:
        return None
    return _table(["query", "value"], ([esc(k), fmt(v)] for k, v in figures.items()))


def trends(page: Page, report: MonitorReport) -> str | None:
    history = list(report.history)
    if not history:
        return None
    spec = report.spec
    parts = [
        f"<p>{len(history)} checks, {esc(when(history[0].time))} to "
        f"{esc(when(history[-1].time))}.</p>",
        page.chart(charts.trend_chart(history, "drift_share", "drifted share", percent=True,
                                      bound=spec.drift.dataset_drift_share),
                   "share of drifted features over time"),
        page.chart(charts.trend_chart(history, "findings", "findings", legend=False),
                   "findings over time"),
        page.chart(charts.trend_chart(history, "current_rows", "current rows", legend=False),
                   "current rows over time"),
        page.chart(charts.metric_trend_chart(history), "performance metrics over time"),
        page.chart(charts.drift_map_chart(history), "drifted features by check"),
    ]
    return '<div class="trends">' + "".join(parts) + "</div>"


# ---------------------------------------------------------------------------- the page


def monitor_article(page: Page, report: MonitorReport, prefix: str) -> str:
    rows = drift_rows(report.status)
    title = (f"{report.namespace}/{report.name}" if report.namespace else report.name)
    sections = [
        ("summary", "Summary", summary(report)),
        ("drift", "Drift", drift_table(rows, prefix)),
        ("columns", "Reference and current, column by column",
         column_cards(page, report, rows, prefix)),
        ("performance", "Performance", performance(page, report)),
        ("confidence", "Confidence", confidence(page, report)),
        ("quality", "Data quality", data_quality(report)),
        ("operational", "Operational figures", operational(report)),
        ("trends", "Trends", trends(page, report)),
    ]
    shown = [(a, t, b) for a, t, b in sections if b is not None]
    nav = " ".join(f'<a href="#{prefix}-{a}">{esc(t.split(",")[0])}</a>' for a, t, _ in shown)
    body = "".join(_section(f"{prefix}-{a}", t, b) for a, t, b in shown)
    return (f'<article id="{prefix}" data-monitor="{esc(title)}">'
            f"<h1>{esc(title)} {_badge(report.status.phase, report.status.phase.lower())}</h1>"
            f'<nav>{nav}</nav>{body}</article>')


def _json(data: Any) -> str:
    """JSON that cannot end the ``<script>`` element it sits in."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


DRAW = """
(function () {
  var data = JSON.parse(document.getElementById('modelmon-charts').textContent);
  var ids = Object.keys(data.charts);
  var jobs = ids.map(function (id) {
    return vegaEmbed('#' + id, data.charts[id], {
      actions: false, renderer: 'svg', mode: 'vega-lite', config: data.config
    }).catch(function (err) {
      console.error('modelmon: chart ' + id + ' failed: ' + err);
      document.getElementById(id).textContent = 'This chart could not be drawn: ' + err;
      throw err;
    });
  });
  Promise.allSettled(jobs).then(function (done) {
    var failed = done.filter(function (d) { return d.status === 'rejected'; }).length;
    document.body.setAttribute('data-charts-drawn', String(done.length - failed));
    document.body.setAttribute('data-charts-failed', String(failed));
  });
})();
"""

STYLE = """
:root { --fg:#202124; --muted:#5f6368; --line:#dadce0; --bg:#f8f9fa; --ref:#7f8fa6;
  --cur:#e8710a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
header.top { background:#fff; border-bottom:1px solid var(--line); padding:10px 24px;
  color:var(--muted); }
article { max-width:1280px; margin:0 auto; padding:8px 24px 32px; }
h1 { font-size:22px; margin:18px 0 6px; } h2 { font-size:17px; margin:0 0 10px; }
h3 { font-size:14px; margin:0 0 4px; word-break:break-all; }
nav { margin:0 0 12px; } nav a { margin-right:14px; color:#1a73e8; text-decoration:none; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 18px;
  margin:12px 0; overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; margin:6px 0; }
th, td { text-align:left; padding:4px 10px; border-bottom:1px solid var(--line);
  vertical-align:top; white-space:nowrap; }
td:last-child { white-space:normal; }
details summary { cursor:pointer; color:#1a73e8; margin:6px 0; }
th { color:var(--muted); font-weight:600; background:var(--bg); position:sticky; top:0; }
td:nth-child(n+5) { font-variant-numeric:tabular-nums; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0 0 10px; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
  font-weight:600; background:#e8eaed; color:#3c4043; vertical-align:middle; }
.badge.healthy, .badge.ok { background:#e6f4ea; color:#137333; }
.badge.drifting, .badge.warning, .badge.drifted { background:#fef7e0; color:#b06000; }
.badge.degraded, .badge.critical, .badge.failing { background:#fce8e6; color:#c5221f; }
.sev.critical { color:#c5221f; font-weight:600; } .sev.warning { color:#b06000;
  font-weight:600; }
.reason { background:#fce8e6; padding:8px 12px; border-radius:6px; }
.flag { color:#c5221f; font-weight:600; }
.note, .caption, .legend, .meta { color:var(--muted); font-size:12px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(400px,1fr)); gap:12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 12px; min-width:0; }
.card .meta { margin-bottom:6px; }
.none { color:var(--muted); font-style:italic; }
.key { display:inline-block; width:12px; height:12px; border-radius:2px;
  vertical-align:middle; }
.key.reference { background:var(--ref); } .key.current { background:var(--cur); }
.trends { display:grid; grid-template-columns:repeat(auto-fill,minmax(540px,1fr));
  gap:14px; align-items:start; }
.trends > p { grid-column:1 / -1; margin:0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:16px; }
code { font-size:12px; background:var(--bg); padding:0 3px; border-radius:3px; }
@media print { section { break-inside:avoid; } nav { display:none; } }
"""


#: The attributes the drawing script sets on <body> when done, for a page without charts.
NO_CHARTS = ' data-charts-drawn="0" data-charts-failed="0"'


def render_report(reports: Sequence[MonitorReport], *, title: str | None = None,
                  top: str = "") -> str:
    """One self-contained HTML document with a report of each monitor's check. ``top``:
    HTML (already escaped) above the reports, e.g. the live report's link back to its
    list of monitors."""
    if not reports:
        raise ValueError("a report needs at least one monitor")
    page = Page()
    articles = [monitor_article(page, r, f"m{i}") for i, r in enumerate(reports)]
    names = ", ".join(r.name for r in reports)
    title = title or f"modelmon report: {names}"
    libraries = bundle.versions()
    versions = ", ".join(f"{k} {v}" for k, v in libraries.items())
    index = ""
    if len(reports) > 1:
        index = ('<header class="top">' + " · ".join(
            f'<a href="#m{i}">{esc(r.name)}</a>' for i, r in enumerate(reports)) + "</header>")
    scripts = ""
    if page.charts:
        data = _json({"config": charts.CONFIG, "charts": page.charts})
        scripts = (f'<script type="application/json" id="modelmon-charts">{data}</script>'
                   f"<script>{bundle.script()}</script><script>{DRAW}</script>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="modelmon ' + esc(__version__) + '">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body{'' if page.charts else NO_CHARTS}>"
        f"{top}{index}{''.join(articles)}"
        "<noscript><p>The charts need JavaScript; every figure is also in the tables."
        "</p></noscript>"
        f"<footer>modelmon {esc(__version__)} · charts: {esc(versions)} (inlined; this file "
        "loads nothing from the network)</footer>"
        f"{scripts}</body></html>\n")

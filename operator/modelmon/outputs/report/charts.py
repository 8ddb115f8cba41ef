"""The report's charts as Vega-Lite specifications (plain dicts, data inline).

Part of ``outputs.report``: each function turns figures a check computed into one chart;
``page`` embeds them and vega-embed draws them in the browser. Field names are fixed
words; column and category names only ever appear as data values or titles, never inside
a Vega expression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelmon.api.v1alpha1 import ConfidenceStatus, EstimatedMetric, MetricBound
from modelmon.outputs.report.inputs import HistoryPoint
from modelmon.stats.dataset import CategoricalShape, NumericShape

Spec = dict[str, Any]

REFERENCE, CURRENT = "reference", "current"
SIDE_COLORS = {"domain": [REFERENCE, CURRENT], "range": ["#7f8fa6", "#e8710a"]}
PHASE_COLORS = {"domain": ["Healthy", "Pending", "Drifting", "Degraded", "Failing"],
                "range": ["#1e8e3e", "#80868b", "#e8710a", "#d93025", "#a50e0e"]}
#: Width of the charts in the per-column grid (pixels); vega-embed keeps it.
COLUMN_WIDTH = 300

#: Shared by every chart (vega-embed's ``config`` option), so each spec stays small.
CONFIG: Spec = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "grid": True, "gridColor": "#eceff1"},
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "top"},
    "title": {"fontSize": 13, "anchor": "start"},
}


def num(value: float | None, digits: int = 6) -> float | None:
    """A figure rounded for the page (JSON has no NaN or infinity: those are null)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _share(counts: np.ndarray[Any, Any], total: int) -> list[float | None]:
    return [num(float(c) / total) if total else 0.0 for c in counts]


def _side_color() -> Spec:
    """Reference grey, current orange; the page explains the colours once."""
    return {"field": "side", "type": "nominal", "scale": SIDE_COLORS, "legend": None}


def numeric_chart(name: str, shape: NumericShape) -> Spec:
    """Overlaid histograms of both sides, as shares of each side's finite values."""
    values: list[Spec] = []
    edges = [num(float(e)) for e in shape.edges]
    for side, counts, total in ((REFERENCE, shape.reference, shape.reference_side.present),
                                (CURRENT, shape.current, shape.current_side.present)):
        for step, (count, share) in enumerate(zip(counts, _share(counts, total), strict=True)):
            values.append({"side": side, "x0": edges[step], "x1": edges[step + 1],
                           "share": share, "rows": int(count)})
    return {
        "width": COLUMN_WIDTH, "height": 140,
        "data": {"values": values},
        "mark": {"type": "bar", "opacity": 0.55, "binSpacing": 0},
        "encoding": {
            "x": {"field": "x0", "type": "quantitative", "bin": {"binned": True},
                  "title": name, "axis": {"format": "~s", "tickCount": 6}},
            "x2": {"field": "x1"},
            "y": {"field": "share", "type": "quantitative", "stack": None,
                  "title": "share of rows", "axis": {"format": "~%"}},
            "color": _side_color(),
            "tooltip": [{"field": "side"}, {"field": "x0", "title": "from", "format": ".4~g"},
                        {"field": "x1", "title": "to", "format": ".4~g"},
                        {"field": "rows", "title": "rows"},
                        {"field": "share", "format": ".2%"}],
        },
    }


def categorical_chart(name: str, shape: CategoricalShape) -> Spec:
    """Side-by-side bars of each side's share of the most common categories; categories
    only one side has are labelled (new) or (vanished), the rest added up as (other)."""
    new, vanished = set(shape.new), set(shape.vanished)
    labels = [f"{c} (new)" if c in new else f"{c} (vanished)" if c in vanished else c
              for c in shape.categories]
    ref_counts = [*shape.reference.tolist()]
    cur_counts = [*shape.current.tolist()]
    if shape.reference_other or shape.current_other:
        labels.append("(other categories)")
        ref_counts.append(shape.reference_other)
        cur_counts.append(shape.current_other)
    values: list[Spec] = []
    for side, counts, total in ((REFERENCE, ref_counts, shape.reference_side.present),
                                (CURRENT, cur_counts, shape.current_side.present)):
        for label, count in zip(labels, counts, strict=True):
            values.append({"side": side, "category": label, "rows": int(count),
                           "share": num(count / total) if total else 0.0})
    return {
        "width": COLUMN_WIDTH, "height": {"step": 9},
        "data": {"values": values},
        "mark": {"type": "bar"},
        "encoding": {
            "y": {"field": "category", "type": "nominal", "sort": None, "title": name,
                  "axis": {"labelLimit": 140}},
            "yOffset": {"field": "side", "sort": [REFERENCE, CURRENT]},
            "x": {"field": "share", "type": "quantitative", "title": "share of rows",
                  "axis": {"format": "~%"}},
            "color": _side_color(),
            "tooltip": [{"field": "side"}, {"field": "category"}, {"field": "rows"},
                        {"field": "share", "format": ".2%"}],
        },
    }


def performance_chart(realized: Mapping[str, float],
                      estimated: Mapping[str, EstimatedMetric],
                      bounds: Sequence[MetricBound]) -> Spec:
    """Each metric's realized value and estimate (with its sampling band as an error bar),
    beside the spec's bounds as ticks."""
    values: list[Spec] = []
    for metric, value in realized.items():
        values.append({"metric": metric, "kind": "realized", "value": num(value)})
    for metric, figure in estimated.items():
        values.append({"metric": metric, "kind": "estimated", "value": num(figure.value),
                       "lower": num(figure.lower), "upper": num(figure.upper)})
    for bound in bounds:
        for end, limit in (("min", bound.min), ("max", bound.max)):
            if limit is not None and (bound.name in realized or bound.name in estimated):
                values.append({"metric": bound.name, "kind": "bound", "end": end,
                               "value": num(limit)})
    colours = {"realized": "#1a73e8", "estimated": "#e8710a", "bound": "#d93025"}
    present = [k for k in colours if any(v["kind"] == k for v in values)]
    kinds = {"domain": present, "range": [colours[k] for k in present]}
    metric_axis = {"field": "metric", "type": "nominal", "title": None}
    return {
        "width": 420, "height": {"step": 26},
        "data": {"values": values},
        "layer": [
            {"transform": [{"filter": "isValid(datum.lower) && isValid(datum.upper)"}],
             "mark": {"type": "rule", "strokeWidth": 3, "opacity": 0.5,
                      "color": "#e8710a"},
             "encoding": {"y": metric_axis, "x": {"field": "lower", "type": "quantitative"},
                          "x2": {"field": "upper"}}},
            {"transform": [{"filter": "datum.kind == 'bound'"}],
             "mark": {"type": "tick", "thickness": 2, "size": 18},
             "encoding": {"y": metric_axis, "x": {"field": "value", "type": "quantitative"},
                          "color": {"field": "kind", "type": "nominal", "scale": kinds,
                                    "title": None},
                          "tooltip": [{"field": "metric"}, {"field": "end", "title": "bound"},
                                      {"field": "value", "format": ".4~g"}]}},
            {"transform": [{"filter": "datum.kind != 'bound'"}],
             "mark": {"type": "point", "filled": True, "size": 70},
             "encoding": {
                 "y": metric_axis,
                 "x": {"field": "value", "type": "quantitative", "title": "value",
                       "scale": {"zero": False}},
                 "color": {"field": "kind", "type": "nominal", "scale": kinds,
                           "title": None},
                 "tooltip": [{"field": "metric"}, {"field": "kind"},
                             {"field": "value", "format": ".4~g"},
                             {"field": "lower", "format": ".4~g"},
                             {"field": "upper", "format": ".4~g"}]}},
        ],
    }


def class_share_chart(confidence: ConfidenceStatus) -> Spec:
    """The share of rows predicted as each class."""
    values = [{"class": k, "share": num(v)} for k, v in confidence.class_shares.items()]
    return {
        "width": 300, "height": {"step": 18},
        "data": {"values": values},
        "mark": {"type": "bar", "color": "#1a73e8"},
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": None, "title": "class"},
            "x": {"field": "share", "type": "quantitative", "title": "share of predictions",
                  "axis": {"format": "~%"}},
            "tooltip": [{"field": "class"}, {"field": "share", "format": ".2%"}],
        },
    }


def _time(point: HistoryPoint) -> str:
    return point.time.isoformat()


def _time_axis() -> Spec:
    return {"field": "time", "type": "temporal", "title": None,
            "axis": {"format": "%m-%d %H:%M", "labelAngle": 0, "tickCount": 5}}


def trend_chart(history: Sequence[HistoryPoint], field: str, title: str,
                percent: bool = False, bound: float | None = None,
                legend: bool = True) -> Spec:
    """One figure of every past check over time, each point coloured by the phase the
    check ended in; ``bound``: a dashed rule at the figure's limit."""
    values = [{"time": _time(p), "phase": p.phase, "value": num(_figure(p, field))}
              for p in history]
    axis = {"format": "~%"} if percent else {"format": "~s"}
    layers: list[Spec] = [
        {"mark": {"type": "line", "color": "#9aa0a6"},
         "encoding": {"x": _time_axis(),
                      "y": {"field": "value", "type": "quantitative", "title": title,
                            "axis": axis}}},
        {"mark": {"type": "point", "filled": True, "size": 45},
         "encoding": {"x": _time_axis(), "y": {"field": "value", "type": "quantitative"},
                      "color": {"field": "phase", "type": "nominal", "scale": PHASE_COLORS,
                                "title": "phase", **({} if legend else {"legend": None})},
                      "tooltip": [{"field": "time", "type": "temporal",
                                   "format": "%Y-%m-%d %H:%M:%S"},
                                  {"field": "phase"}, {"field": "value"}]}},
    ]
    if bound is not None:
        layers.append({"data": {"values": [{"bound": bound}]},
                       "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#d93025"},
                       "encoding": {"y": {"field": "bound", "type": "quantitative"}}})
    return {"width": 420, "height": 120, "data": {"values": values}, "layer": layers}


def _figure(point: HistoryPoint, field: str) -> float | None:
    value = getattr(point, field)
    return None if value is None else float(value)


def metric_trend_chart(history: Sequence[HistoryPoint]) -> Spec | None:
    """Every metric over time: realized as a line, estimated as a line in its band."""
    values: list[Spec] = []
    for point in history:
        for metric, value in point.performance.items():
            values.append({"time": _time(point), "metric": metric, "kind": "realized",
                           "value": num(value)})
        for metric, (value, lower, upper) in point.estimated.items():
            values.append({"time": _time(point), "metric": metric, "kind": "estimated",
                           "value": num(value), "lower": num(lower), "upper": num(upper)})
    if not values:
        return None
    kinds = {"domain": ["realized", "estimated"], "range": ["#1a73e8", "#e8710a"]}
    return {
        "data": {"values": values},
        "facet": {"row": {"field": "metric", "type": "nominal", "title": None}},
        "resolve": {"scale": {"y": "independent"}},
        "spec": {
            "width": 420, "height": 90,
            "layer": [
                {"transform": [{"filter": "isValid(datum.lower) && isValid(datum.upper)"}],
                 "mark": {"type": "area", "opacity": 0.2, "color": "#e8710a"},
                 "encoding": {"x": _time_axis(),
                              "y": {"field": "lower", "type": "quantitative"},
                              "y2": {"field": "upper"}}},
                {"mark": {"type": "line", "point": True},
                 "encoding": {"x": _time_axis(),
                              "y": {"field": "value", "type": "quantitative", "title": None,
                                    "scale": {"zero": False}},
                              "color": {"field": "kind", "type": "nominal", "scale": kinds,
                                        "title": None},
                              "tooltip": [{"field": "time", "type": "temporal",
                                           "format": "%Y-%m-%d %H:%M:%S"},
                                          {"field": "kind"},
                                          {"field": "value", "format": ".4~g"}]}},
            ],
        },
    }


def drift_map_chart(history: Sequence[HistoryPoint]) -> Spec | None:
    """Which feature drifted at which check: one row per feature, one cell per check."""
    known = [p for p in history if p.drifted is not None]
    if not known:
        return None
    features = list(dict.fromkeys(f for p in known for f in p.features))
    values = [{"time": _time(p), "feature": f, "drifted": f in set(p.drifted or ())}
              for p in known for f in p.features]
    return {
        "width": 420, "height": {"step": 10},
        "data": {"values": values},
        "mark": {"type": "rect"},
        "encoding": {
            "x": {"field": "time", "type": "ordinal", "title": "check",
                  "timeUnit": "yearmonthdatehoursminutesseconds",
                  "axis": {"labelAngle": -45, "format": "%m-%d %H:%M"}},
            "y": {"field": "feature", "type": "nominal", "sort": features, "title": None,
                  "axis": {"labelLimit": 140}},
            "color": {"field": "drifted", "type": "nominal",
                      "scale": {"domain": [False, True], "range": ["#e6f4ea", "#e8710a"]},
                      "title": "drifted"},
            "tooltip": [{"field": "feature"}, {"field": "time", "type": "temporal",
                                               "format": "%Y-%m-%d %H:%M:%S"},
                        {"field": "drifted"}],
        },
    }

"""The Grafana dashboard's PromQL, for the tests: every query, ready for promtool.

Grafana expands variables before Prometheus sees a query; promtool knows none of them, so
`promql()` substitutes what Grafana would (a regex for `$namespace`, a range for
`$__rate_interval`) and refuses variables it does not know. `metric_names()` reads the
metric names a query selects, which the tests compare with what the operator exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "helm" / "modelmon" / "files" / "modelmon-dashboard.json"

#: Grafana's built-in variables the dashboard may use, with what Grafana puts in their place.
BUILTINS = {"__rate_interval": "2m", "__interval": "1m", "__range": "1h"}

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Words that are not metric names: aggregations, functions, keywords, and what follows
# `by`/`without`/`on`/`ignoring`/`group_*` (label lists) or sits in braces (matchers).
_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "time", "rate", "irate", "increase", "delta",
    "idelta", "deriv", "histogram_quantile", "abs", "clamp", "clamp_min", "clamp_max",
    "label_replace", "label_join", "vector", "scalar", "absent", "absent_over_time",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "last_over_time",
    "changes", "resets", "round", "sort", "sort_desc", "timestamp", "inf", "nan",
}


@dataclass(frozen=True)
class Query:
    """One PromQL query of the dashboard and where it is."""

    where: str
    expr: str


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    """Panel targets and the metric selectors of `label_values(...)` variable queries."""
    out = [Query(f"panel {p.get('title')!r} target {t.get('refId')}", t["expr"])
           for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        if match is None:
            raise ValueError(f"variable {var['name']}: not a label_values() query: {query}")
        out.append(Query(f"variable {var['name']}", match.group(1)))
    return out


def variables(dashboard: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dashboard.get("templating", {}).get("list", [])}


def promql(expr: str, defined: set[str]) -> str:
    """The query as Prometheus receives it; KeyError for an undefined variable."""

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in defined:
            return ".*"  # "All" of a multi-value variable, as allValue says
        raise KeyError(f"undefined Grafana variable ${name} in: {expr}")

    return _VARIABLE.sub(substitute, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a query selects (identifiers outside strings, braces, label lists)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors [5m]
    text = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?[smhdwy]?\b", "", text)  # numbers, durations
    return {w for w in _IDENT.findall(text) if w.lower() not in _KEYWORDS}

"""The ``prometheus`` source: operational figures (latency, error rate, throughput).

Part of ``sources`` (second stop on the data line). Unlike the other kinds it yields no
rows to compare: each query becomes one number, an ``OperationalFigure``, that evaluation
holds against its ``min``/``max`` like every other figure, and outputs export the same way.

Semantics of a query (``spec.operational.source.prometheus.queries[i]``):

- without ``range``: an instant query (``/api/v1/query``) at the end of the window (the
  check's time);
- with ``range``: a range query (``/api/v1/query_range``) over ``[end - range, end]`` at
  ``step`` (default ``range / 60``, at least 1s), reduced to one number by ``aggregate``
  (``mean``, ``min``, ``max`` or ``last`` of the finite samples);
- the result must be a scalar or exactly one series: several series fail with
  ``DataError`` naming the query and some of the label sets (aggregate them in PromQL,
  e.g. ``sum(...)`` or ``max(...)``). No series, or only NaN/Inf, gives a figure without a
  value and a note: no data is not a breach.

Failures: an unreachable server, HTTP 5xx and network time-outs are ``SourceError``
(transient, retried by ``retrying``); 401/403 are ``SourceError`` pointing at
``bearerTokenSecretRef``; a query Prometheus rejects is ``DataError`` naming the query.
The bearer token and any user info in the URL never appear in messages, nor does a
server's answer unless it is Prometheus' own error (``status: error`` with an
``errorType``): anything else is described by its size. The answers of one source count
against its ``maxBytes`` (a Content-Length over it is refused before the body is read). A
server the administrator's egress policy refuses (``sources.egress``) fails at once, before
anything is sent, naming ``prometheus.url``.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import Source
from modelmon.api.v1alpha1 import parse_duration as duration
from modelmon.sources import egress
from modelmon.sources.base import (
    CHUNK,
    Budget,
    DataError,
    LoadContext,
    Loaded,
    SourceError,
    budget,
    first_line,
    register,
    retrying,
    scrub,
)
from modelmon.sources.egress import UNRESTRICTED, urlopen
from modelmon.sources.url import redact_url

if TYPE_CHECKING:
    from modelmon.api.v1alpha1 import PrometheusQuery, PrometheusSource

MAX_SHOWN_SERIES = 3


@dataclass(frozen=True, slots=True)
class OperationalFigure:
    """One query's number (evaluation holds it against the query's bounds)."""

    name: str
    value: float | None
    """None when the query returned no data (see ``note``)."""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class _Client:
    base: str
    shown: str
    headers: dict[str, str]
    secrets: list[str]
    timeout: float
    where: str
    budget: Budget
    egress: Egress = UNRESTRICTED
    """Where the connections may go (``LoadContext.policy.egress``)."""


def _client(spec: PrometheusSource, ctx: LoadContext, where: str,
            budget_: Budget) -> _Client:
    parts = urllib.parse.urlsplit(spec.url)
    headers = {"Accept": "application/json", "User-Agent": "modelmon"}
    secrets: list[str] = []
    if parts.username or parts.password:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
        secrets += [password, basic]
    ref = spec.bearer_token_secret_ref
    if ref is not None:
        token = ctx.need_resolver(f"{where}.bearerTokenSecretRef").secret(ref.name, ref.key)
        headers["Authorization"] = f"Bearer {token.strip()}"
        secrets.append(token.strip())
    host = egress.netloc_host(parts.hostname or "")
    netloc = f"{host}:{parts.port}" if parts.port else host
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return _Client(base, redact_url(spec.url), headers, secrets,
                   duration(spec.timeout).total_seconds(), where, budget_,
                   ctx.policy.egress)


def _read(response: Any, budget_: Budget) -> bytes:
    """The body, refused at once from a Content-Length over the budget, and counted."""
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        budget_.declare(int(length), "Content-Length")
    parts = []
    while chunk := response.read(CHUNK):
        budget_.take(len(chunk))
        parts.append(chunk)
    return b"".join(parts)


def _prometheus_error(answer: Any) -> str | None:
    """Prometheus' own error text, when the answer has its shape (status error, errorType,
    error); None for anything else, which is never quoted."""
    if (isinstance(answer, dict) and answer.get("status") == "error"
            and isinstance(answer.get("errorType"), str)
            and isinstance(answer.get("error"), str)):
        return str(answer["error"])[:300]
    return None


def _call(client: _Client, api: str, params: dict[str, str], query_field: str) -> Any:
    """POST one API call; the ``data`` of a successful answer."""
    body = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(f"{client.base}/api/v1/{api}", data=body,
                                     headers=client.headers, method="POST")
    # Give the server's own timeout a moment to answer before the socket gives up.
    try:
        with urlopen(request, client.timeout + 5, client.egress,
                     f"{client.where}.url") as response:
            payload = _read(response, client.budget)
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc)
        if exc.code in (401, 403):
            raise SourceError(
                f"{client.where}: {client.shown} refused the request (HTTP {exc.code}); "
                "check the token in bearerTokenSecretRef and what it may read") from None
        if exc.code in (400, 422):
            raise DataError(f"{query_field}: Prometheus rejected the query: "
                            f"{scrub(detail, client.secrets)}") from None
        if exc.code == 404:
            raise SourceError(f"{client.where}.url: {client.shown} has no Prometheus "
                              "query API (HTTP 404); point url at the server's base") from None
        if exc.code == 503 and ("timeout" in detail.lower() or "timed out" in detail.lower()):
            raise SourceError(f"{query_field}: the query ran longer than the timeout at "
                              f"{client.shown}; simplify it or raise {client.where}.timeout"
                              ) from None
        raise SourceError(f"{client.where}: {client.shown} answered HTTP {exc.code}: "
                          f"{scrub(detail, client.secrets)}",
                          transient=exc.code >= 500 or exc.code == 429) from None
    except TimeoutError:
        raise SourceError(f"{client.where}: no answer from {client.shown} within "
                          f"{client.timeout:g}s", transient=True) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{client.where}: cannot reach {client.shown}: "
                          f"{scrub(first_line(reason), client.secrets)}",
                          transient=True) from None
    unlike = (f"{client.where}: {client.shown} did not answer like Prometheus (a JSON object "
              f"with status success and data; got {len(payload)} bytes)")
    try:
        answer = json.loads(payload)
    except ValueError:
        raise SourceError(unlike) from None
    error = _prometheus_error(answer)
    if error is not None:
        raise SourceError(f"{client.where}: {client.shown} answered with an error: "
                          f"{scrub(error, client.secrets)}")
    if not isinstance(answer, dict) or answer.get("status") != "success" \
            or not isinstance(answer.get("data"), dict):
        raise SourceError(unlike)
    return answer["data"]


def _error_text(exc: urllib.error.HTTPError) -> str:
    """Prometheus' error text, or only the size of any other error body."""
    try:
        body = exc.read(CHUNK + 1)
    except OSError:
        return f"HTTP {exc.code}"
    try:
        error = _prometheus_error(json.loads(body))
    except ValueError:
        error = None
    return error if error is not None else f"a {len(body)}-byte answer that is not Prometheus'"


def _labels(series: dict[str, Any]) -> str:
    metric = series.get("metric") or {}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _one_series(result: list[dict[str, Any]], query: PrometheusQuery,
                field: str) -> dict[str, Any] | None:
    if len(result) > 1:
        shown = ", ".join(_labels(s) for s in result[:MAX_SHOWN_SERIES])
        more = ", ..." if len(result) > MAX_SHOWN_SERIES else ""
        raise DataError(f"{field}: query {query.name!r} returned {len(result)} series "
                        f"({shown}{more}); it must return one: aggregate it, e.g. with "
                        "sum(...) or max(...)")
    return result[0] if result else None


def _aggregate(values: list[float], how: str) -> float:
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    if how == "last":
        return values[-1]
    return math.fsum(values) / len(values)


def _figure(query: PrometheusQuery, value: float | None, note: str | None
            ) -> OperationalFigure:
    if value is not None and not math.isfinite(value):
        value, note = None, f"the query returned {value}"
    return OperationalFigure(query.name, value, note)


def query_figure(client: _Client, query: PrometheusQuery, field: str,
                 end: datetime) -> OperationalFigure:
    """Run one query and reduce it to one figure."""
    timeout = f"{client.timeout:g}s"
    if query.range is None:
        data = _call(client, "query", {"query": query.query, "time": f"{end.timestamp():.3f}",
                                       "timeout": timeout}, field)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return _figure(query, float(result[1]), None)
        if kind != "vector":
            raise DataError(f"{field}: query {query.name!r} returned a {kind}; it must "
                            "return a number (a scalar or one series)")
        series = _one_series(result, query, field)
        if series is None:
            return _figure(query, None, "no data: the query returned no series")
        return _figure(query, float(series["value"][1]), None)
    span = duration(query.range)
    step = duration(query.step) if query.step else max(span / 60, timedelta(seconds=1))
    data = _call(client, "query_range", {
        "query": query.query, "start": f"{(end - span).timestamp():.3f}",
        "end": f"{end.timestamp():.3f}", "step": f"{step.total_seconds():g}",
        "timeout": timeout}, field)
    series = _one_series(data.get("result") or [], query, field)
    if series is None:
        return _figure(query, None, f"no data in the last {query.range}")
    values = [float(v) for _, v in series.get("values") or []]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return _figure(query, None, f"no finite values in the last {query.range}")
    return _figure(query, _aggregate(finite, query.aggregate), None)


def _figures(source: Source, ctx: LoadContext, *, retry: bool) -> list[OperationalFigure]:
    spec = source.prometheus
    if spec is None:
        raise DataError(f"{ctx.role}: operational figures need a prometheus source")
    where = f"{ctx.role}.prometheus"
    client = _client(spec, ctx, where, budget(source, ctx))
    end = ctx.window_end or datetime.now(UTC)
    figures = []
    for index, query in enumerate(spec.queries):
        field = f"{where}.queries[{index}].query"
        if retry:
            figures.append(retrying(partial(query_figure, client, query, field, end), ctx))
        else:
            figures.append(query_figure(client, query, field, end))
    return figures


def operational_figures(source: Source, ctx: LoadContext) -> list[OperationalFigure]:
    """Every query of a ``prometheus`` source as a figure, at ``ctx.window_end`` (or now).

    Each query's transient failures are retried (``ctx.retries``); the first lasting
    failure raises ``SourceError`` or ``DataError`` for the whole source.
    """
    return _figures(source, ctx, retry=True)


def figures_frame(figures: list[OperationalFigure]) -> pd.DataFrame:
    """Figures as rows: name, value, note."""
    return pd.DataFrame.from_records([(f.name, f.value, f.note) for f in figures],
                                     columns=["name", "value", "note"])


@register("prometheus")
def load_prometheus(source: Source, ctx: LoadContext) -> Loaded:
    """The figures as a small frame (one row per query); no version: never cached."""
    figures = _figures(source, ctx, retry=False)  # load() retries the whole
    end = ctx.window_end or datetime.now(UTC)
    return Loaded(frame=figures_frame(figures), version=f"at:{end.isoformat()}")

"""``sql.pushdown``: a window (or, fitting it, the reference) as aggregates the database
computes, not rows.

Part of ``sources`` (second stop on the data line), beside ``sources.sql``, whose
connection, binding, read-only transaction, statement timeout, egress and scrubbed messages
it reuses unchanged. ``aggregate`` wraps the author's query as a subquery (SQLAlchemy's
expression language; the author's text stays a bound ``text()``), filters it to the window
by ``columns.timestamp`` with the window's ends as parameters, and, in one read-only
transaction (repeatable read on PostgreSQL, so that all see one snapshot), sends a probe
that returns no row (the query's columns and their types), then what
``sources.pushdown_statements`` builds:

1. one row of counts and sums per monitored numeric column: missing, infinite and finite
   counts, counts per reference bin, beyond the reference's range and IQR fences, min,
   max, sums; for a regression the error sums;
2. ``GROUP BY GROUPING SETS``: the counts of each categorical column's values (on
   PostgreSQL first one plain ``GROUP BY`` of them all, summed here per column, when its
   combinations are few);
3. for a classifier, ``GROUP BY`` (label, prediction): each pair's count and probability
   sums;
4. the quantile grid of each numeric column scored by ks or wasserstein: the rows whose
   ``ROW_NUMBER()`` among the column's finite values is a grid rank (about 1,000 rows);
   on PostgreSQL one row of ``percentile_disc`` arrays (the same order statistics);
5. for a regression, the labels' spread about their mean.

On PostgreSQL and DuckDB these go as ONE statement (``Builder.single``: the counts' row
with every other part's rows aggregated into arrays beside it), one round trip after the
probe; the other dialects (compile-checked only) and the url engine's passes over files
send them one by one. ``opened`` gives a ``Session`` whose ``run`` can send several
requests in the one transaction (``aggregates.fit_from_aggregates`` fits a reference so).

Nothing here knows the statistics: the caller (``check``) says what to count in an
``AggregateRequest`` (edges and bounds are numbers) and turns the ``Aggregates`` into
``stats.sketch`` sketches or a reference profile. Values come back as the driver returns
them and are read as row mode reads rows (``sql._normalise``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from modelmon.api.v1alpha1 import Source
from modelmon.sources.base import DataError, LoadContext, SourceError, retrying
from modelmon.sources.base import budget as source_budget
from modelmon.sources.pushdown_statements import (
    EPS,
    AggregateRequest,
    Builder,
    LabelRequest,
    NumericRequest,
    grid_ranks,
    statements,
    window_rows,
)
from modelmon.sources.sql import (
    _bound,
    _connection,
    _normalise,
    _sqlalchemy,
    read_only,
)

__all__ = [
    "BACKENDS",
    "COMBINATIONS",
    "EPS",
    "WORK_MEM",
    "AggregateRequest",
    "Aggregates",
    "CategoryCounts",
    "LabelCounts",
    "LabelRequest",
    "NumericCounts",
    "NumericRequest",
    "RegressionSums",
    "Session",
    "aggregate",
    "grid_ranks",
    "opened",
    "run",
    "statements",
    "window_rows",
]

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Backends the aggregate statements run on (tested live: postgresql, duckdb; the
#: statements compile for the others, ``tests/unit/sources/test_pushdown_dialects.py``).
BACKENDS = ("postgresql", "duckdb", "trino", "spark", "databricks", "bigquery", "snowflake")
#: PostgreSQL type OIDs whose values psycopg returns as numbers (int2, int4, int8, oid,
#: float4, float8, numeric): row mode reads such columns as numeric.
#: The most ``work_mem`` pushdown asks of PostgreSQL (the source's byte budget, if lower):
#: the memory its sorts and hash tables take instead of the rows the check would hold.
WORK_MEM = 256 * 2**20
#: The most combinations of the categorical columns' values read back from one plain
#: ``GROUP BY`` of them all (PostgreSQL); more, and ``GROUPING SETS`` counts them.
COMBINATIONS = 10_000
#: Whether PostgreSQL and DuckDB get every statement of a request as one (``Builder.single``).
SINGLE = True
PG_NUMERIC_OIDS = frozenset({20, 21, 23, 26, 700, 701, 1700})
DUCKDB_NUMERIC = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL"
                            r"|DECIMAL.*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NumericCounts:
    """The counts and sums of one numeric column of the window."""

    nulls: int
    """NULL and NaN."""
    finite: int
    pos_inf: int
    neg_inf: int
    bins: tuple[int, ...]
    below_range: int
    above_range: int
    below_fence: int
    above_fence: int
    minimum: float
    maximum: float
    total: float
    squares: float
    grid: tuple[float, ...] | None = None
    """The order statistics of ranks ``max(1, ceil(k * finite / G))``, ``k = 0..G``."""
    order: dict[int, float] = field(default_factory=dict)
    """The order statistics of ``NumericRequest.ranks``, by rank."""
    distinct: int = 0
    centred: float = 0.0


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """The distinct values of a column in the window (as row mode reads them) with their
    counts; NULL and NaN counted apart."""

    values: pd.Series
    counts: tuple[int, ...]
    missing: int


@dataclass(frozen=True, slots=True)
class LabelCounts:
    """A classifier's labelled rows grouped by (label, prediction or score >= 0.5)."""

    labels: pd.Series
    predictions: pd.Series
    counts: tuple[int, ...]
    log_loss_positive: tuple[float, ...] = ()
    log_loss_negative: tuple[float, ...] = ()
    brier_positive: tuple[float, ...] = ()
    brier_negative: tuple[float, ...] = ()
    score_min: float | None = None
    score_max: float | None = None


@dataclass(frozen=True, slots=True)
class RegressionSums:
    rows: int
    absolute: float
    squared: float
    percentage: float
    centred: float
    centred_squared: float
    label_min: float
    label_max: float


@dataclass(slots=True)
class Aggregates:
    """What the database returned for one window."""

    rows: int
    kinds: dict[str, str]
    """Each column of the query's result: numeric (numbers), categorical, or unknown
    (a driver whose types are not read here)."""
    nulls: dict[str, int] = field(default_factory=dict)
    """Missing values (NULL, and NaN in numeric columns) of each requested column."""
    numeric: dict[str, NumericCounts] = field(default_factory=dict)
    categories: dict[str, CategoryCounts] = field(default_factory=dict)
    labels: LabelCounts | None = None
    regression: RegressionSums | None = None


# --------------------------------------------------------------------------- running


def _available(labels: LabelRequest | None, present: set[str]) -> LabelRequest | None:
    """The label request with the prediction columns the window has (as row mode uses the
    ones its frame has); None without the target or any prediction."""
    if labels is None or labels.target not in present:
        return None
    prediction = labels.prediction if labels.prediction in present else None
    probability = labels.probability if labels.probability in present else None
    if prediction is None and probability is None:
        return None
    return dataclasses.replace(labels, prediction=prediction, probability=probability)


def _kinds(result: Any, backend: str) -> dict[str, str]:
    """numeric or categorical for each column of a probe's result, from its types;
    unknown where the driver's types are not read here."""
    out: dict[str, str] = {}
    description = result.cursor.description or []
    for entry in description:
        name, code = str(entry[0]), entry[1]
        if backend == "postgresql" and isinstance(code, int):
            out[name] = "numeric" if code in PG_NUMERIC_OIDS else "categorical"
        elif backend == "duckdb":
            out[name] = "numeric" if DUCKDB_NUMERIC.match(str(code)) else "categorical"
        else:
            out[name] = "unknown"
    return out


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _values(raw: Sequence[Any]) -> pd.Series:
    """Values as row mode reads them: a column of the rows' objects, numbers and UUIDs
    converted as ``sql._normalise`` converts them."""
    frame = _normalise(pd.DataFrame.from_records([(v,) for v in raw], columns=["v"]))
    return frame["v"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def aggregate(source: Source, ctx: LoadContext, request: AggregateRequest) -> Aggregates:
    """Run the request's statements against the current source's database (retrying
    transient failures as ``load`` does)."""
    return retrying(lambda: _aggregate(source, ctx, request), ctx)


def _aggregate(source: Source, ctx: LoadContext, request: AggregateRequest) -> Aggregates:
    with opened(source, ctx, request.timestamp) as session:
        return session.run(request)


@dataclass(slots=True)
class Session:
    """An open read-only transaction on a source's database, its query probed: ``run``
    runs a request's statements over the query's rows (in the window, when there is one)
    in it; every run sees one snapshot on PostgreSQL."""

    connection: Connection
    query: Any
    columns: list[str]
    kinds: dict[str, str]
    params: dict[str, Any]
    windowed: bool
    where: str
    limit: int
    backend: str
    limit_field: str | None = None

    def run(self, request: AggregateRequest) -> Aggregates:
        native = self.backend == "postgresql"
        return run(self.connection, request, self.query, self.columns, self.kinds,
                   self.params, self.windowed, self.where, self.limit, self.limit_field,
                   ordered=native, filtered=native, single=SINGLE)


@contextmanager
def opened(source: Source, ctx: LoadContext, timestamp: str | None) -> Iterator[Session]:
    """A ``Session`` on the source's database (``ctx.role`` names the source in messages;
    the window filters ``timestamp`` when ``ctx`` has one and ``timestamp`` is set)."""
    spec = source.sql
    assert spec is not None
    where = f"{ctx.role}.sql"
    _sqlalchemy()
    from sqlalchemy import literal_column, select

    conn_info = _connection(spec, ctx, where)
    backend = conn_info.url.get_backend_name()
    if backend not in BACKENDS:
        raise SourceError(f"{where}.pushdown: {backend} is not supported (the aggregates "
                          "need GROUPING SETS and window functions); use "
                          f"{', '.join(BACKENDS)}, or turn pushdown off")
    # The query becomes a subquery: a trailing semicolon would end the statement.
    stmt, params = _bound(spec.model_copy(update={"query": spec.query.strip().rstrip(";")}),
                          ctx, where, backend)
    windowed = timestamp is not None and ctx.window_start is not None \
        and ctx.window_end is not None
    bound: dict[str, Any] = dict(params)
    if windowed:
        bound.update(modelmon_window_start=ctx.window_start, modelmon_window_end=ctx.window_end)
    # One snapshot for every statement of the window on PostgreSQL.
    isolation = "REPEATABLE READ" if backend == "postgresql" else None
    with read_only(conn_info, spec, where, backend, ctx.policy.egress,
                   isolation) as connection:
        if backend == "postgresql":
            _tune(connection, min(source_budget(source, ctx).limit, WORK_MEM))
        probe: Any = connection.execute(select(literal_column("*")).select_from(
            stmt.columns().subquery("modelmon_p")).limit(0), bound)
        columns = [str(k) for k in probe.keys()]  # noqa: SIM118 (a Result)
        kinds = _kinds(probe, backend)
        probe.close()
        yield Session(connection, stmt, columns, kinds, bound, windowed, where,
                      spec.max_rows, backend)


def _tune(connection: Connection, memory: int) -> None:
    """PostgreSQL settings for this transaction only (``set_config(..., true)``, as
    ``SET LOCAL``): no JIT (the statements' per-row expressions cost more to compile than
    to interpret: off, a 1,000,000-row window's statements took 4.2 s instead of 6.7 s),
    and ``work_mem`` raised to ``memory`` bytes where it is lower, so that the grids' sorts
    and the counts' hash tables stay in memory longer (never lowered)."""
    from sqlalchemy import text

    connection.execute(text("SELECT set_config('jit', 'off', true), "
                            "set_config('work_mem', greatest(pg_size_bytes(current_setting("
                            "'work_mem')), :bytes) / 1024 || 'kB', true)"),
                       {"bytes": memory})


class Executes(Protocol):
    """What ``run`` needs of a connection: SQLAlchemy's ``Connection.execute``."""

    def execute(self, statement: Any, parameters: Any = ..., /) -> Any: ...


def run(connection: Connection | Executes, request: AggregateRequest, stmt: Any,
        columns: list[str], kinds: dict[str, str], params: dict[str, Any], windowed: bool,
        where: str, limit: int, limit_field: str | None = None,
        ordered: bool = False, filtered: bool = False, single: bool = False) -> Aggregates:
    """The request's statements over ``stmt``'s rows (the probe's ``columns`` and
    ``kinds``), run one by one on ``connection``, read back as ``Aggregates``. More
    distinct values than ``limit`` fail naming ``limit_field`` (default: maxRows).
    ``ordered``: the grids by ordered-set aggregates (``Builder.ordered_grids``; a
    backend with ``percentile_disc`` over an array of fractions), not ``ROW_NUMBER``, and
    the categories from one plain ``GROUP BY`` where they combine in few ways
    (``Builder.crossed``);
    ``filtered``: counts by ``FILTER (WHERE ...)``; ``single``: every statement as one
    (``Builder.single``: one round trip; the categories' ``GROUPING SETS`` only follow
    when their plain ``GROUP BY`` has too many combinations)."""
    twice = sorted({k for k in columns if columns.count(k) > 1})
    if twice:
        raise DataError(f"{where}.query: the query returns column {', '.join(twice)} more "
                        "than once; give each column its own name (AS ...)")
    if request.timestamp is not None and windowed and request.timestamp not in columns:
        raise DataError(f"spec.columns.timestamp: the current window has no column "
                        f"{request.timestamp!r}")
    present = set(columns)
    # Columns the window lacks or holds as another kind are asked nothing numeric; where
    # the driver's types are unknown, the reference's kind is trusted.
    numeric = {name for name, kind in kinds.items() if kind == "numeric"} | {
        a.name for a in request.numeric if kinds.get(a.name) == "unknown"}
    asked = AggregateRequest(
        numeric=tuple(a for a in request.numeric if a.name in numeric),
        categorical=tuple(c for c in request.categorical if c in present),
        columns=tuple(c for c in request.columns if c in present),
        timestamp=request.timestamp, labels=_available(request.labels, present),
        grid=request.grid)
    labels = asked.labels
    if (labels is not None and labels.task == "regression"
            and not {labels.target, labels.prediction} <= numeric):
        labels = None
        asked = dataclasses.replace(asked, labels=None)
    builder = Builder(window_rows(stmt, columns, request.timestamp, windowed), asked,
                       numeric, filtered)
    arrays: dict[str, Any] = {}
    if single:
        combined, names, parts = builder.single(limit, ordered, COMBINATIONS)
        packed = tuple(connection.execute(combined, params).one())
        arrays = dict(zip(parts, packed[len(names):], strict=True))
        row = packed[:len(names)]
    else:
        counts_stmt, names = builder.counts()
        row = connection.execute(counts_stmt, params).one()
    figures = dict(zip(names, row, strict=True))
    result = Aggregates(rows=_int(figures["rows"]), kinds=kinds,
                        nulls={name: _int(figures[f"{name}\0isnull"]) for name in asked.columns
                               if f"{name}\0isnull" in figures})
    for ask in asked.numeric:
        key = ask.name

        def value(label: str, key: str = key) -> Any:
            return figures.get(f"{key}\0{label}")

        seen, pos_inf, neg_inf = (_int(value(k)) for k in ("finite", "pos_inf", "neg_inf"))
        result.numeric[key] = NumericCounts(
            nulls=result.rows - seen - pos_inf - neg_inf, finite=seen,
            pos_inf=pos_inf, neg_inf=neg_inf,
            bins=_bins([_int(value(f"below{j}")) for j in range(len(ask.edges))], seen,
                       neg_inf),
            below_range=_int(value("below_range")), above_range=_int(value("above_range")),
            below_fence=_int(value("below_fence")), above_fence=_int(value("above_fence")),
            minimum=_float(value("minimum")), maximum=_float(value("maximum")),
            total=_float(value("total")) if value("total") is not None else 0.0,
            squares=_float(value("squares")) if value("squares") is not None else 0.0,
            distinct=_int(value("distinct")),
            centred=_float(value("centred")) if value("centred") is not None else 0.0)
    result.nulls = {name: result.nulls[name] if name in result.nulls
                    else result.numeric[name].nulls for name in asked.columns}
    # Distinct values are what a GROUP BY returns: as many as maxRows, no more.
    fetched: dict[str, Sequence[Any]] = {}
    budget = limit + 1
    groups = builder.groups()
    crossed = builder.crossed() if ordered else None
    if crossed is not None:
        # At most COMBINATIONS combinations (few rows to sum here), else GROUPING SETS;
        # the LIMIT keeps the others in the database (the driver would buffer them all).
        cap = min(limit, COMBINATIONS)
        rows = (_unpacked(arrays, "crossed") if single
                else connection.execute(crossed.limit(cap + 1), params).mappings().all())
        if len(rows) <= cap:
            fetched["groups"] = _marginals(rows, asked)
            budget -= len(fetched["groups"])
            groups = None
    for key, statement in (("groups", groups), ("pairs", builder.pairs())):
        if statement is not None and budget > 0:
            fetched[key] = (_unpacked(arrays, key)[:budget]
                            if single and (key == "pairs" or crossed is None)
                            else connection.execute(statement, params).mappings()
                            .fetchmany(budget))
            budget -= len(fetched[key])
    if budget <= 0:
        raise DataError(f"{limit_field or where + '.maxRows'}: the window's "
                        f"categorical columns (and label pairs) have more than {limit} "
                        "distinct values together; exclude identifier columns "
                        "(spec.columns.exclude)"
                        + (" or raise maxRows" if limit_field is None else ""))
    if fetched:
        _read_groups(fetched.get("groups", []), fetched.get("pairs", []), asked, result)
    finite = {name: counts.finite for name, counts in result.numeric.items()}
    if ordered:
        statement, ranks = builder.ordered_grids(finite)
        if statement is not None:
            row = (tuple(arrays[f"ordered\0{position}"] for position in ranks) if single
                   else connection.execute(statement, params).one())
            _read_grids([(position, rank, value)
                         for (position, wanted), values in zip(ranks.items(), row, strict=True)
                         for rank, value in zip(wanted, values or (), strict=False)],
                        asked, result, where)
    elif single:
        _read_grids([(r["c"], r["r"], r["v"]) for r in _unpacked(arrays, "grids")], asked,
                    result, where)
    elif (grids := builder.grids(finite)) is not None:
        _read_grids(connection.execute(grids, params).all(), asked, result, where)
    if labels is not None and labels.task == "regression":
        rows = _int(figures["reg\0rows"])
        centre = _float(figures["reg\0label_sum"]) / rows if rows else 0.0
        spread = ((arrays["spread\0s1"], arrays["spread\0s2"]) if single
                  else connection.execute(builder.spread(centre), params).one())
        result.regression = RegressionSums(
            rows=rows, absolute=_float(figures["reg\0absolute"]) if rows else 0.0,
            squared=_float(figures["reg\0squared"]) if rows else 0.0,
            percentage=_float(figures["reg\0percentage"]) if rows else 0.0,
            centred=_float(spread[0]) if rows else 0.0,
            centred_squared=_float(spread[1]) if rows else 0.0,
            label_min=_float(figures["reg\0label_min"]),
            label_max=_float(figures["reg\0label_max"]))
    return result


def _unpacked(arrays: dict[str, Any], part: str) -> list[dict[str, Any]]:
    """The rows of one part of ``Builder.single``'s statement from its arrays (one per
    column, NULL for no rows)."""
    mine = {name.split("\0", 1)[1]: list(values or ())
            for name, values in arrays.items() if name.startswith(part + "\0")}
    size = max((len(v) for v in mine.values()), default=0)
    return [{name: values[i] for name, values in mine.items()} for i in range(size)]


def _marginals(rows: Sequence[Any], request: AggregateRequest) -> list[dict[str, Any]]:
    """The rows ``GROUPING SETS`` would have returned, from the counts of each combination
    of the categorical columns' values: per column, each value's count."""
    out: list[dict[str, Any]] = []
    names = request.categorical
    for index in range(len(names)):
        counts: dict[Any, int] = {}
        for row in rows:
            value = row[f"k{index}"]
            counts[value] = counts.get(value, 0) + int(row["n"])
        for value, count in counts.items():
            entry: dict[str, Any] = {f"k{j}": value if j == index else None
                                     for j in range(len(names))}
            entry.update({f"g{j}": 0 if j == index else 1 for j in range(len(names))})
            entry["n"] = count
            out.append(entry)
    return out


def _bins(below: list[int], finite: int, neg_inf: int) -> tuple[int, ...]:
    """The finite values per bin from the counts below each edge (which hold -inf too):
    the first bin is below the first edge, the last at or above the last edge."""
    bounds = [neg_inf, *below, finite + neg_inf]
    return tuple(hi - lo for lo, hi in itertools.pairwise(bounds))


def _signature(request: AggregateRequest, grouped: str) -> tuple[int, ...]:
    """The GROUPING() marks of the rows of ``grouped``'s grouping set (0: grouped by)."""
    return tuple(0 if name == grouped else 1 for name in request.categorical)


def _marks(row: Any, request: AggregateRequest) -> tuple[int, ...]:
    return tuple(int(row[f"g{i}"]) for i in range(len(request.categorical)))


def _read_groups(rows: Sequence[Any], pairs: Sequence[Any], request: AggregateRequest,
                 result: Aggregates) -> None:
    for index, name in enumerate(request.categorical):
        wanted = _signature(request, name)
        mine = [r for r in rows if _marks(r, request) == wanted]
        kept = [(r[f"k{index}"], int(r["n"])) for r in mine if not _missing(r[f"k{index}"])]
        missing = sum(int(r["n"]) for r in mine if _missing(r[f"k{index}"]))
        result.categories[name] = CategoryCounts(_values([v for v, _ in kept]),
                                                 tuple(n for _, n in kept), missing)
    if request.labels is None or request.labels.task == "regression":
        return
    labels = request.labels
    mine = [r for r in pairs if _int(r["ln"]) > 0]
    binary = labels.task == "binaryClassification" and labels.probability is not None
    result.labels = LabelCounts(
        labels=_values([r["lt"] for r in mine]), predictions=_values([r["lp"] for r in mine]),
        counts=tuple(_int(r["ln"]) for r in mine),
        log_loss_positive=tuple(_float(r["llp"]) for r in mine) if binary else (),
        log_loss_negative=tuple(_float(r["lln"]) for r in mine) if binary else (),
        brier_positive=tuple(_float(r["lbp"]) for r in mine) if binary else (),
        brier_negative=tuple(_float(r["lbn"]) for r in mine) if binary else (),
        score_min=min(_float(r["lmin"]) for r in mine) if binary and mine else None,
        score_max=max(_float(r["lmax"]) for r in mine) if binary and mine else None)


def _read_grids(rows: Sequence[Any], request: AggregateRequest, result: Aggregates,
                where: str) -> None:
    by_column: dict[int, dict[int, float]] = {}
    for position, rank, value in rows:
        by_column.setdefault(int(position), {})[int(rank)] = float(value)
    for position, ask in enumerate(request.numeric):
        counts = result.numeric.get(ask.name)
        if not (ask.grid or ask.ranks) or counts is None or counts.finite == 0:
            continue
        ranked = by_column.get(position, {})
        try:
            grid = (tuple(ranked[r] for r in grid_ranks(counts.finite, request.grid))
                    if ask.grid else None)
            order = {r: ranked[r] for r in ask.ranks}
        except KeyError:
            raise SourceError(f"{where}.query: the window's rows changed between the "
                              "aggregate queries; the next check reads them again",
                              transient=True) from None
        result.numeric[ask.name] = dataclasses.replace(counts, grid=grid, order=order)

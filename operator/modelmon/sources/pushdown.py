"""``sql.pushdown``: the current window as aggregates the database computes, not rows.

Part of ``sources`` (second stop on the data line), beside ``sources.sql``, whose
connection, binding, read-only transaction, statement timeout, egress and scrubbed messages
it reuses unchanged. ``aggregate`` wraps the author's query as a subquery (SQLAlchemy's
expression language; the author's text stays a bound ``text()``), filters it to the window
by ``columns.timestamp`` with the window's ends as parameters, and runs a few statements in
one read-only transaction (repeatable read on PostgreSQL, so that all see one snapshot):

1. a probe that returns no row: the query's columns and their types;
2. one row of counts and sums per monitored numeric column: missing, infinite and finite
   counts, counts per reference bin, beyond the reference's range and IQR fences, min,
   max, sums; for a regression the error sums;
3. ``GROUP BY GROUPING SETS``: the counts of each categorical column's values (on
   PostgreSQL first one plain ``GROUP BY`` of them all, summed here per column, when its
   combinations are few);
4. for a classifier, ``GROUP BY`` (label, prediction): each pair's count and probability
   sums;
5. the quantile grid of each numeric column scored by ks or wasserstein: the rows whose
   ``ROW_NUMBER()`` among the column's finite values is a grid rank (about 1,000 rows);
   on PostgreSQL one row of ``percentile_disc`` arrays (the same order statistics);
6. for a regression, the labels' spread about their mean (bound as a parameter).

Nothing here knows the statistics: the caller (``check``) says what to count in an
``AggregateRequest`` (edges and bounds are numbers) and turns the ``Aggregates`` into
``stats.sketch`` sketches. Values come back as the driver returns them and are read as
row mode reads rows (``sql._normalise``). ``statement`` builds the statements for any
SQLAlchemy dialect; they are run live on PostgreSQL and DuckDB and compiled for the
others by the tests.
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
from modelmon.sources.sql import (
    _bound,
    _connection,
    _normalise,
    _sqlalchemy,
    read_only,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import ColumnElement, Select

#: Backends the aggregate statements run on (tested live: postgresql, duckdb; the
#: statements compile for the others, ``tests/unit/sources/test_pushdown_dialects.py``).
BACKENDS = ("postgresql", "duckdb", "trino", "spark", "databricks", "bigquery", "snowflake")
#: scikit-learn's epsilon: log loss clips probabilities to [EPS, 1 - EPS], MAPE divides
#: by at least it.
EPS = 2.220446049250313e-16
#: PostgreSQL type OIDs whose values psycopg returns as numbers (int2, int4, int8, oid,
#: float4, float8, numeric): row mode reads such columns as numeric.
#: The most ``work_mem`` pushdown asks of PostgreSQL (the source's byte budget, if lower):
#: the memory its sorts and hash tables take instead of the rows the check would hold.
WORK_MEM = 256 * 2**20
#: The most combinations of the categorical columns' values read back from one plain
#: ``GROUP BY`` of them all (PostgreSQL); more, and ``GROUPING SETS`` counts them.
COMBINATIONS = 10_000
PG_NUMERIC_OIDS = frozenset({20, 21, 23, 26, 700, 701, 1700})
DUCKDB_NUMERIC = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL"
                            r"|DECIMAL.*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NumericRequest:
    """What to count of a numeric column."""

    name: str
    edges: tuple[float, ...]
    """The reference's interior bin edges: a value equal to an edge counts in the bin
    above it."""
    bounds: tuple[float, float, float, float] | None
    """(minimum, maximum, lower fence, upper fence) of the reference; None when it has no
    values."""
    grid: bool
    """Whether the column's quantile grid is needed (ks, wasserstein)."""
    ranks: tuple[int, ...] = ()
    """Order statistics of the finite values to return, by 1-based rank (fitting a
    reference: ``NumericCounts.order``)."""
    distinct: bool = False
    """Whether to count the distinct finite values (``NumericCounts.distinct``)."""
    centre: float | None = None
    """Sum the squared deviations of the finite values about this (``NumericCounts.centred``)."""


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """The performance metrics' columns."""

    task: str
    target: str
    prediction: str | None
    probability: str | None
    """Binary classifiers: the positive class's probability (log loss, brier; the
    predicted class when ``prediction`` is None)."""


@dataclass(frozen=True, slots=True)
class AggregateRequest:
    """Everything the check needs of a window."""

    numeric: tuple[NumericRequest, ...] = ()
    categorical: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    """Every column whose missing values are counted (``Aggregates.nulls``)."""
    timestamp: str | None = None
    """The column the window filters on (``columns.timestamp``; None: no window)."""
    labels: LabelRequest | None = None
    grid: int = 1000


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


# ------------------------------------------------------------------------ statements


def grid_ranks(count: int, grid: int) -> list[int]:
    """``max(1, ceil(k * count / grid))`` for ``k = 0..grid``: the 1-based ranks of the
    grid's order statistics (``stats.sketch.quantile_ranks``)."""
    return [max(1, -((-k * count) // grid)) for k in range(grid + 1)]


@dataclass(slots=True)
class _Builder:
    """The statements of one request over one subquery, for any dialect."""

    base: Any
    """The window's rows: the author's query as a subquery, filtered to the window."""
    request: AggregateRequest
    numeric_kinds: set[str]
    filtered: bool = False
    """Counts as ``count(*) FILTER (WHERE ...)`` (PostgreSQL), not ``sum(CASE ...)``."""

    def col(self, name: str) -> Any:
        return self.base.c[name]

    def num(self, name: str) -> ColumnElement[float]:
        from sqlalchemy import Double, cast

        return cast(self.col(name), Double())

    @staticmethod
    def inf(sign: str = "") -> ColumnElement[float]:
        from sqlalchemy import Double, String, cast, literal

        return cast(literal(f"{sign}Infinity", String()), Double())

    @staticmethod
    def nan() -> ColumnElement[float]:
        from sqlalchemy import Double, String, cast, literal

        return cast(literal("NaN", String()), Double())

    def finite(self, value: ColumnElement[float]) -> ColumnElement[bool]:
        # inf - inf and NaN - NaN are NaN, equal to nothing (PostgreSQL and DuckDB hold
        # NaN equal to NaN but not to 0); NULL stays NULL.
        return (value - value) == 0

    def known(self, value: ColumnElement[float]) -> ColumnElement[bool]:
        """Neither NULL nor NaN."""
        from sqlalchemy import or_

        if self.filtered:
            # PostgreSQL orders NaN above every number, infinity included: one comparison.
            below_nan: ColumnElement[bool] = value < self.nan()
            return below_nan
        known: ColumnElement[bool] = or_(self.finite(value), value == self.inf(),
                                         value == self.inf("-"))
        return known

    def present(self, name: str) -> ColumnElement[bool]:
        """Not missing as row mode's ``dropna`` reads it: not NULL, and not NaN when
        numeric."""
        if name in self.numeric_kinds:
            return self.known(self.num(name))
        not_null: ColumnElement[bool] = self.col(name).is_not(None)
        return not_null

    def count(self, condition: ColumnElement[bool]) -> ColumnElement[int]:
        from sqlalchemy import case, func

        if self.filtered:
            filtered: ColumnElement[int] = func.count().filter(condition)
            return filtered
        return func.sum(case((condition, 1), else_=0))

    @staticmethod
    def where(condition: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
        from sqlalchemy import case

        return case((condition, value))

    def counts(self) -> tuple[Select[Any], list[str]]:
        """Statement 2: one row of counts and sums, and the names of its columns."""
        from sqlalchemy import Double, and_, bindparam, distinct, func, literal_column, select

        out: list[Any] = [func.count().label("a0")]
        names = ["rows"]

        def add(name: str, expr: Any) -> None:
            out.append(expr.label(f"a{len(out)}"))
            names.append(name)

        for position, ask in enumerate(self.request.numeric):
            value = self.num(ask.name)
            finite = self.finite(value)
            known = self.known(value)
            key = ask.name

            def edge(value: float, slot: str, position: int = position) -> Any:
                return bindparam(f"e{position}_{slot}", value, type_=Double())

            # Every row is NULL or NaN, finite, +inf or -inf: the missing are the rest.
            add(f"{key}\0finite", self.count(finite))
            add(f"{key}\0pos_inf", self.count(value == self.inf()))
            add(f"{key}\0neg_inf", self.count(value == self.inf("-")))
            # One comparison a row per edge: the values below it (-inf among them; NULL and
            # NaN never, NaN being unordered or above all in every backend). The bins are
            # their differences (``_bins``).
            for cell, cut in enumerate(ask.edges):
                add(f"{key}\0below{cell}", self.count(value < edge(cut, f"b{cell}")))
            if ask.bounds is not None:
                low, high, lower_fence, upper_fence = ask.bounds
                for label, bound, below in (("below_range", low, True),
                                            ("above_range", high, False),
                                            ("below_fence", lower_fence, True),
                                            ("above_fence", upper_fence, False)):
                    if math.isinf(bound):  # nothing is beyond an infinite bound
                        add(f"{key}\0{label}", self.count(literal_column("1") == 0))
                        continue
                    param = edge(bound, label)
                    # Below a bound: never NULL or NaN (see the edges); above it, NaN
                    # compares greater in PostgreSQL, DuckDB, Spark and Snowflake.
                    add(f"{key}\0{label}", self.count(value < param) if below
                        else self.count(and_(known, value > param)))
            add(f"{key}\0minimum", func.min(self.where(finite, value)))
            add(f"{key}\0maximum", func.max(self.where(finite, value)))
            add(f"{key}\0total", func.sum(self.where(finite, value)))
            add(f"{key}\0squares", func.sum(self.where(finite, value * value)))
            if ask.distinct:
                add(f"{key}\0distinct", func.count(distinct(self.where(finite, value))))
            if ask.centre is not None:
                centre = edge(ask.centre, "centre")
                add(f"{key}\0centred", func.sum(self.where(
                    finite, (value - centre) * (value - centre))))
        counted = {ask.name for ask in self.request.numeric}
        for name in self.request.columns:
            if name in counted:  # the missing are the rest of its counts (``run``)
                continue
            add(f"{name}\0isnull", self.count(~self.present(name) | self.col(name).is_(None)))
        labels = self.request.labels
        if labels is not None and labels.task == "regression" and labels.prediction:
            truth, guess = self.num(labels.target), self.num(labels.prediction)
            both = and_(self.known(truth), self.known(guess))
            error = func.abs(truth - guess)
            add("reg\0rows", self.count(both))
            add("reg\0absolute", func.sum(self.where(both, error)))
            add("reg\0squared", func.sum(self.where(both, (truth - guess) * (truth - guess))))
            add("reg\0percentage", func.sum(self.where(
                both, error / func.greatest(func.abs(truth), bindparam("eps", EPS,
                                                                   type_=Double())))))
            add("reg\0label_sum", func.sum(self.where(both, truth)))
            add("reg\0label_min", func.min(self.where(both, truth)))
            add("reg\0label_max", func.max(self.where(both, truth)))
        return select(*out).select_from(self.base), names

    def groups(self) -> Select[Any] | None:
        """Statement 3: the counts of each categorical column's values, one grouping set
        each (nothing else is summed here: every aggregate of a ``GROUPING SETS`` statement
        is computed once per set, and PostgreSQL runs it in one process)."""
        from sqlalchemy import func, select

        if not self.request.categorical:
            return None
        sets = [self.col(name) for name in self.request.categorical]
        keys: list[Any] = [self.col(name).label(f"k{i}")
                           for i, name in enumerate(self.request.categorical)]
        marks: list[Any] = [func.grouping(self.col(name)).label(f"g{i}")
                            for i, name in enumerate(self.request.categorical)]
        return (select(*keys, *marks, func.count().label("n")).select_from(self.base)
                .group_by(func.grouping_sets(*sets)))

    def crossed(self) -> Select[Any] | None:
        """Statement 3 on PostgreSQL, tried first with two categorical columns or more: a
        plain ``GROUP BY`` of all of them (which PostgreSQL runs in parallel, where it runs
        ``GROUPING SETS`` in one process), each combination's count; ``_marginals`` sums
        them per column."""
        from sqlalchemy import func, select

        names = self.request.categorical
        if len(names) < 2:
            return None
        keys: list[Any] = [self.col(name).label(f"k{i}") for i, name in enumerate(names)]
        return (select(*keys, func.count().label("n")).select_from(self.base)
                .group_by(*[self.col(name) for name in names]))

    def pairs(self) -> Select[Any] | None:
        """Statement 4: a classifier's (label, prediction) pairs, each with its count and
        probability sums (a plain ``GROUP BY``, which PostgreSQL runs in parallel)."""
        from sqlalchemy import Double, and_, bindparam, case, func, literal_column, select

        labels = self.request.labels
        if labels is None or labels.task == "regression":
            return None
        target = self.col(labels.target)
        present = [self.present(labels.target)]
        probability = None
        if labels.probability is not None:
            probability = self.num(labels.probability)
            present.append(self.known(probability))
        if labels.prediction is not None:
            second: Any = self.col(labels.prediction)
            present.append(self.present(labels.prediction))
        else:
            assert probability is not None
            # Constants as literals: the grouped expression is selected as written.
            second = case((probability >= literal_column("0.5"), literal_column("1")),
                          else_=literal_column("0"))
        both = and_(*present)
        out: list[Any] = [target.label("lt"), second.label("lp"),
                          self.count(both).label("ln")]
        if probability is not None and labels.task == "binaryClassification":
            eps: Any = bindparam("eps", EPS, type_=Double())
            one: Any = bindparam("one", 1.0, type_=Double())
            clip = func.least(func.greatest(probability, eps), one - eps)
            other = func.least(func.greatest(one - probability, eps), one - eps)
            out += [func.sum(self.where(both, -func.ln(clip))).label("llp"),
                    func.sum(self.where(both, -func.ln(other))).label("lln"),
                    func.sum(self.where(both, (one - probability) * (one - probability))
                             ).label("lbp"),
                    func.sum(self.where(both, probability * probability)).label("lbn"),
                    func.min(self.where(both, probability)).label("lmin"),
                    func.max(self.where(both, probability)).label("lmax")]
        return select(*out).select_from(self.base).group_by(target, second)

    def grids(self, finite: dict[str, int]) -> Select[Any] | None:
        """Statement 5: each gridded column's values at the grid's ranks (``UNION ALL`` of
        one ``ROW_NUMBER()`` per column)."""
        from sqlalchemy import Double, Integer, cast, func, literal, or_, select, union_all

        grid = self.request.grid
        parts = []
        for position, ask in enumerate(self.request.numeric):
            count = finite.get(ask.name, 0)
            if not (ask.grid or ask.ranks) or count == 0:
                continue
            value = self.num(ask.name)
            ranked = (select(value.label("v"), func.row_number().over(order_by=value).label("r"))
                      .select_from(self.base).where(self.finite(value))
                      .subquery(f"r{position}"))
            rank: Any = cast(ranked.c.r, Double())
            # A rank is the grid's when ceil(k n / G) = r for some k: floor(r G / n)
            # steps past floor((r - 1) G / n) (exact in doubles for these sizes).
            steps = [or_(ranked.c.r == 1,
                         func.floor(rank * grid / count)
                         != func.floor((rank - 1) * grid / count))] if ask.grid else []
            if ask.ranks:
                steps.append(ranked.c.r.in_(list(ask.ranks)))
            step = or_(*steps)
            parts.append(select(literal(position, Integer()).label("c"), ranked.c.r,
                                ranked.c.v).where(step))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else union_all(*parts)  # type: ignore[return-value]

    def ordered_grids(self, finite: dict[str, int]) -> tuple[Select[Any] | None,
                                                              dict[int, list[int]]]:
        """Statement 5 on PostgreSQL and DuckDB: one ordered-set aggregate per gridded
        column, ``percentile_disc(fractions) WITHIN GROUP (ORDER BY value)`` over the
        finite values (NULL is skipped), one row for all columns; and each column's
        distinct grid ranks, in the order of its array. Both engines return the value of
        rank ``ceil(f * n)`` (at least 1); the fraction ``(r - 1/2) / n`` of rank ``r``
        is half a rank from either ceiling, so the grid is ``grids``' exactly."""
        from sqlalchemy import ARRAY, Double, bindparam, func, select

        columns: list[Any] = []
        ranks: dict[int, list[int]] = {}
        for position, ask in enumerate(self.request.numeric):
            count = finite.get(ask.name, 0)
            if not (ask.grid or ask.ranks) or count == 0:
                continue
            value = self.num(ask.name)
            wanted = sorted((set(grid_ranks(count, self.request.grid)) if ask.grid else set())
                            | set(ask.ranks))
            fractions: Any = bindparam(f"q{position}", [(r - 0.5) / count for r in wanted],
                                  type_=ARRAY(Double()))
            columns.append(func.percentile_disc(fractions).within_group(
                self.where(self.finite(value), value)).label(f"q{position}"))
            ranks[position] = wanted
        if not columns:
            return None, ranks
        return select(*columns).select_from(self.base), ranks

    def spread(self, centre: float) -> Select[Any]:
        """Statement 6: a regression's labels about ``centre``."""
        from sqlalchemy import Double, and_, bindparam, func, select

        labels = self.request.labels
        assert labels is not None
        assert labels.prediction is not None
        truth, guess = self.num(labels.target), self.num(labels.prediction)
        both = and_(self.known(truth), self.known(guess))
        centred: Any = bindparam("centre", centre, type_=Double())
        return select(func.sum(self.where(both, truth - centred)).label("s1"),
                      func.sum(self.where(both, (truth - centred) * (truth - centred))).label("s2")
                      ).select_from(self.base)


def window_rows(query: Any, columns: Sequence[str], timestamp: str | None,
                windowed: bool) -> Any:
    """The author's query (a bound ``text()``) as a subquery with its columns, filtered to
    ``[:modelmon_window_start, :modelmon_window_end)`` on ``timestamp`` when ``windowed``."""
    from sqlalchemy import DateTime, and_, bindparam, column, select

    rows = query.columns(*[column(name) for name in columns]).subquery("modelmon_q")
    if not windowed or timestamp is None:
        return rows
    stamp = rows.c[timestamp]
    start = bindparam("modelmon_window_start", type_=DateTime(timezone=True))
    end = bindparam("modelmon_window_end", type_=DateTime(timezone=True))
    return select(rows).where(and_(stamp >= start, stamp < end)).subquery("modelmon_w")


def statements(request: AggregateRequest, query: Any, columns: Sequence[str],
               numeric: set[str], finite: dict[str, int] | None = None,
               windowed: bool = True) -> list[Any]:
    """The aggregate statements of a request (for compiling them in another dialect;
    ``aggregate`` builds and runs them one by one). ``finite``: each numeric column's
    finite count, which the grids need (default: 1,000,000)."""
    builder = _Builder(window_rows(query, columns, request.timestamp, windowed), request,
                       numeric)
    counts = finite or {ask.name: 1_000_000 for ask in request.numeric}
    out: list[Any] = [builder.counts()[0], builder.groups(), builder.pairs(),
                      builder.grids(counts)]
    if request.labels is not None and request.labels.task == "regression":
        out.append(builder.spread(0.0))
    return [s for s in out if s is not None]


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
                   ordered=native, filtered=native)


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
        ordered: bool = False, filtered: bool = False) -> Aggregates:
    """The request's statements over ``stmt``'s rows (the probe's ``columns`` and
    ``kinds``), run one by one on ``connection``, read back as ``Aggregates``. More
    distinct values than ``limit`` fail naming ``limit_field`` (default: maxRows).
    ``ordered``: the grids by ordered-set aggregates (``_Builder.ordered_grids``; a
    backend with ``percentile_disc`` over an array of fractions), not ``ROW_NUMBER``, and
    the categories from one plain ``GROUP BY`` where they combine in few ways
    (``_Builder.crossed``);
    ``filtered``: counts by ``FILTER (WHERE ...)``."""
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
    builder = _Builder(window_rows(stmt, columns, request.timestamp, windowed), asked,
                       numeric, filtered)
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
        rows = connection.execute(crossed.limit(cap + 1), params).mappings().all()
        if len(rows) <= cap:
            fetched["groups"] = _marginals(rows, asked)
            budget -= len(fetched["groups"])
            groups = None
    for key, statement in (("groups", groups), ("pairs", builder.pairs())):
        if statement is not None and budget > 0:
            fetched[key] = connection.execute(statement, params).mappings().fetchmany(budget)
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
            row = connection.execute(statement, params).one()
            _read_grids([(position, rank, value)
                         for (position, wanted), values in zip(ranks.items(), row, strict=True)
                         for rank, value in zip(wanted, values or (), strict=False)],
                        asked, result, where)
    elif (grids := builder.grids(finite)) is not None:
        _read_grids(connection.execute(grids, params).all(), asked, result, where)
    if labels is not None and labels.task == "regression":
        rows = _int(figures["reg\0rows"])
        centre = _float(figures["reg\0label_sum"]) / rows if rows else 0.0
        spread = connection.execute(builder.spread(centre), params).one()
        result.regression = RegressionSums(
            rows=rows, absolute=_float(figures["reg\0absolute"]) if rows else 0.0,
            squared=_float(figures["reg\0squared"]) if rows else 0.0,
            percentage=_float(figures["reg\0percentage"]) if rows else 0.0,
            centred=_float(spread[0]) if rows else 0.0,
            centred_squared=_float(spread[1]) if rows else 0.0,
            label_min=_float(figures["reg\0label_min"]),
            label_max=_float(figures["reg\0label_max"]))
    return result


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

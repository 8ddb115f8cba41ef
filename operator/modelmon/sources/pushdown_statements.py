"""The statements of ``sql.pushdown``: a request's aggregates over the query's rows.

Part of ``sources`` (second stop on the data line), the statement half of
``sources.pushdown``, which runs them and reads what they return. ``Builder`` builds, for
any SQLAlchemy dialect, from an ``AggregateRequest`` (what to count of which column: edges
and bounds are numbers) and the window's rows (``window_rows``: the author's query as a
subquery filtered to the window), the statements ``sources.pushdown`` describes, one by one
or, on PostgreSQL and DuckDB, all as one (``Builder.single``); ``statements`` lists them for
compiling in another dialect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.sql import ColumnElement, Select

#: scikit-learn's epsilon: log loss clips probabilities to [EPS, 1 - EPS], MAPE divides
#: by at least it.
EPS = 2.220446049250313e-16


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


def grid_ranks(count: int, grid: int) -> list[int]:
    """``max(1, ceil(k * count / grid))`` for ``k = 0..grid``: the 1-based ranks of the
    grid's order statistics (``stats.sketch.quantile_ranks``)."""
    return [max(1, -((-k * count) // grid)) for k in range(grid + 1)]


@dataclass(slots=True)
class Builder:
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
        from sqlalchemy import Integer, func, literal, select, union_all

        parts = []
        for position, ask in enumerate(self.request.numeric):
            count = finite.get(ask.name, 0)
            if not (ask.grid or ask.ranks) or count == 0:
                continue
            value = self.num(ask.name)
            ranked = (select(value.label("v"), func.row_number().over(order_by=value).label("r"))
                      .select_from(self.base).where(self.finite(value))
                      .subquery(f"r{position}"))
            parts.append(select(literal(position, Integer()).label("c"), ranked.c.r,
                                ranked.c.v).where(self._step(ranked, ask, count)))
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

    def spread(self, centre: float | ColumnElement[Any]) -> Select[Any]:
        """Statement 6: a regression's labels about ``centre`` (a number, or an expression
        of the counts' row in ``single``)."""
        from sqlalchemy import Double, and_, bindparam, func, select

        labels = self.request.labels
        assert labels is not None
        assert labels.prediction is not None
        truth, guess = self.num(labels.target), self.num(labels.prediction)
        both = and_(self.known(truth), self.known(guess))
        centred: Any = (bindparam("centre", centre, type_=Double())
                        if isinstance(centre, float) else centre)
        return select(func.sum(self.where(both, truth - centred)).label("s1"),
                      func.sum(self.where(both, (truth - centred) * (truth - centred))).label("s2")
                      ).select_from(self.base)


    def single(self, limit: int, ordered: bool, combinations: int
               ) -> tuple[Select[Any], list[str], list[str]]:
        """Every statement as one (PostgreSQL and DuckDB): the counts' row, and beside it,
        each in a derived table of one row, every other statement's rows aggregated into
        one array per column (``array_agg``, in one order), LIMITed as ``run`` reads them
        (the plain ``GROUP BY`` of the categories at ``combinations`` + 1); the grids and a
        regression's spread ``LATERAL``, from the counts' own finite counts and label
        sums. The statement, the counts' names, and the names
        (``part\\0column``) of the arrays after them. ``ordered``: PostgreSQL's forms
        (``percentile_disc`` grids, the categories by a plain ``GROUP BY`` first)."""
        from sqlalchemy import (
            ARRAY,
            BigInteger,
            Double,
            bindparam,
            cast,
            func,
            literal_column,
            select,
            true,
            union,
            union_all,
        )
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        counts, names = self.counts()
        main = counts.subquery("modelmon_a")
        named = dict(zip(names, main.c, strict=True))
        joined: Any = main
        out: list[Any] = list(main.c)
        parts: list[str] = []

        def gather(part: str, statement: Any, correlated: bool = False) -> None:
            nonlocal joined
            rows = statement.subquery(f"modelmon_{part}")
            arrays: Any = select(*[func.array_agg(c).label(f"{part}_{c.name}")
                                   for c in rows.c]).select_from(rows)
            derived = arrays.lateral(f"modelmon_{part}s") if correlated else arrays.subquery(
                f"modelmon_{part}s")
            joined = joined.join(derived, true())
            out.extend(derived.c)
            parts.extend(f"{part}\0{c.name}" for c in rows.c)

        crossed = self.crossed() if ordered else None
        if crossed is not None:
            gather("crossed", crossed.limit(min(limit, combinations) + 1))
        elif (groups := self.groups()) is not None:
            gather("groups", groups.limit(limit + 1))
        if (pairs := self.pairs()) is not None:
            gather("pairs", pairs.limit(limit + 1))
        grid = self.request.grid
        wanted = [(p, a) for p, a in enumerate(self.request.numeric) if a.grid or a.ranks]
        if wanted and ordered:
            columns: list[Any] = []
            for position, ask in wanted:
                value = self.num(ask.name)
                finite = named[f"{ask.name}\0finite"]
                steps = func.generate_series(0, grid).table_valued("k").render_derived()
                sets: list[Any] = []
                if ask.grid:
                    sets.append(select(func.greatest(
                        1, (steps.c.k * cast(finite, BigInteger) + (grid - 1)) // grid
                    ).label("r")).select_from(steps).correlate(main))
                if ask.ranks:
                    sets.append(select(func.unnest(bindparam(
                        f"x{position}", list(ask.ranks), type_=ARRAY(BigInteger()))).label("r")))
                # Distinct ranks (a grid of more steps than values repeats them), in
                # the order ``ordered_grids`` lists them.
                both: Any = union(*sets) if len(sets) > 1 else sets[0].distinct()
                ranks = both.subquery(f"modelmon_r{position}")
                fraction = ((cast(ranks.c.r, Double()) - literal_column("0.5"))
                            / cast(func.nullif(finite, 0), Double()))
                fractions = (select(func.array_agg(aggregate_order_by(fraction, ranks.c.r)))
                             .select_from(ranks).correlate(main).scalar_subquery())
                columns.append(func.percentile_disc(fractions).within_group(
                    self.where(self.finite(value), value)).label(f"q{position}"))
            derived = select(*columns).select_from(self.base).lateral("modelmon_qs")
            joined = joined.join(derived, true())
            out.extend(derived.c)
            parts.extend(f"ordered\0{position}" for position, _ in wanted)
        elif wanted:
            selects = []
            for position, ask in wanted:
                value = self.num(ask.name)
                ranked = (select(value.label("v"),
                                 func.row_number().over(order_by=value).label("r"),
                                 func.count().over().label("n"))
                          .select_from(self.base).where(self.finite(value))
                          .subquery(f"r{position}"))
                selects.append(select(literal_column(str(position)).label("c"), ranked.c.r,
                                      ranked.c.v).where(self._step(ranked, ask)))
            gather("grids", selects[0] if len(selects) == 1 else union_all(*selects))
        labels = self.request.labels
        if labels is not None and labels.task == "regression" and labels.prediction:
            labelled: Any = cast(func.nullif(named["reg\0rows"], 0), Double())
            centre: Any = named["reg\0label_sum"] / labelled
            spread = self.spread(centre).lateral("modelmon_s")
            joined = joined.join(spread, true())
            out.extend(spread.c)
            parts.extend(["spread\0s1", "spread\0s2"])
        return select(*out).select_from(joined), names, parts

    def _step(self, ranked: Any, ask: NumericRequest, count: int | None = None) -> Any:
        """Whether a row of ``ranked`` (``r``: its rank among the finite values; ``n``:
        their count, unless ``count`` is given) is one of ``ask``'s: a grid rank (``r =
        ceil(k n / G)`` for some ``k``: ``floor(r G / n)`` steps past ``floor((r - 1) G /
        n)``, exact in doubles for these sizes) or one of its ``ranks``."""
        from sqlalchemy import Double, cast, func, or_

        grid = self.request.grid
        rank: Any = cast(ranked.c.r, Double())
        size: Any = count if count is not None else cast(ranked.c.n, Double())
        steps = [or_(ranked.c.r == 1, func.floor(rank * grid / size)
                     != func.floor((rank - 1) * grid / size))] if ask.grid else []
        if ask.ranks:
            steps.append(ranked.c.r.in_(list(ask.ranks)))
        return or_(*steps)


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
    builder = Builder(window_rows(query, columns, request.timestamp, windowed), request,
                       numeric)
    counts = finite or {ask.name: 1_000_000 for ask in request.numeric}
    out: list[Any] = [builder.counts()[0], builder.groups(), builder.pairs(),
                      builder.grids(counts)]
    if request.labels is not None and request.labels.task == "regression":
        out.append(builder.spread(0.0))
    return [s for s in out if s is not None]

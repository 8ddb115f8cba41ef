"""sql.pushdown's PostgreSQL forms on a real PostgreSQL: the ordered-set grids
(``percentile_disc`` over an array of fractions) return the very order statistics of the
``ROW_NUMBER`` statement every other dialect gets, for windows of any size, with ties,
NULL, NaN and infinities among the values; and the transaction's settings (no JIT, a
``work_mem`` from the source's byte budget, never lowered)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
from servers import Postgres, postgres

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext
from modelmon.sources.pushdown import (
    WORK_MEM,
    AggregateRequest,
    LabelRequest,
    NumericRequest,
    aggregate,
    run,
)
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from modelmon.stats.sketch import quantile_ranks

SIZES = (1, 2, 7, 999, 1000, 1001, 2503)
VALUES: dict[int, dict[str, np.ndarray]] = {}


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        server.execute("CREATE TABLE grid_values (n integer, v double precision, "
                       "w double precision)", "GRANT SELECT ON grid_values TO monitor")
        rng = np.random.default_rng(21)
        rows: list[str] = []
        for n in SIZES:
            values = rng.normal(size=n)
            ties = np.round(rng.normal(size=n), 1)
            VALUES[n] = {"v": np.sort(values), "w": np.sort(ties)}
            for v, w in zip(values.tolist(), ties.tolist(), strict=True):
                rows.append(f"({n}, {v!r}, {w!r})")
            rows += [f"({n}, NULL, 'NaN')", f"({n}, 'NaN', 'Infinity')",
                     f"({n}, '-Infinity', NULL)"]
        server.execute(f"INSERT INTO grid_values VALUES {', '.join(rows)}")
        yield server


def grids(server: Postgres, n: int, grid: int, *, ordered: bool) -> dict[str, object]:
    from sqlalchemy import create_engine, text

    request = AggregateRequest(numeric=tuple(NumericRequest(name, (), None, True)
                                             for name in ("v", "w")), grid=grid)
    engine = create_engine(server.url())
    try:
        with engine.connect() as connection:
            result = run(connection, request,
                         text("SELECT v, w FROM grid_values WHERE n = :n"),
                         ["v", "w"], {"v": "numeric", "w": "numeric"}, {"n": n}, False,
                         "current.sql", 1000, ordered=ordered)
    finally:
        engine.dispose()
    return {name: counts.grid for name, counts in result.numeric.items()}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("grid", [1, 10, 1000])
def test_ordered_grid_equals_row_number_grid(pg: Postgres, n: int, grid: int) -> None:
    ordered = grids(pg, n, grid, ordered=True)
    numbered = grids(pg, n, grid, ordered=False)
    assert ordered == numbered
    ranks = quantile_ranks(n, grid) - 1
    for name in ("v", "w"):
        assert ordered[name] == tuple(VALUES[n][name][ranks].tolist()), name


@pytest.mark.parametrize(("max_bytes", "admin", "expected"),
                         [(None, 64 * 2**20, "64MB"), ("16Mi", 64 * 2**20, "16MB"),
                          ("1Mi", 64 * 2**20, "4MB"), (None, 2**40, f"{WORK_MEM // 2**20}MB")])
def test_transaction_settings(pg: Postgres, max_bytes: str | None, admin: int,
                              expected: str) -> None:
    # The author's query reads the settings it runs under: its values are counted.
    source = Source.model_validate({"sql": {
        "connectionSecretRef": {"name": "db", "key": "url"}, "pushdown": True,
        "query": "SELECT current_setting('jit') AS jit, current_setting('work_mem') AS mem"},
        **({"maxBytes": max_bytes} if max_bytes else {})})
    ctx = LoadContext(role="spec.current.source", retries=0,
                      policy=dataclasses.replace(Policy.local(), max_bytes=admin),
                      resolver=LocalResolver({("db", "url"): pg.url()}, env={}))
    try:
        result = aggregate(source, ctx, AggregateRequest(categorical=("jit", "mem")))
    finally:
        dispose_engines()
    assert result.categories["jit"].values.tolist() == ["off"]
    assert result.categories["mem"].values.tolist() == [expected]


def categories(server: Postgres) -> dict[str, tuple[list[object], tuple[int, ...], int]]:
    from sqlalchemy import create_engine, text

    request = AggregateRequest(categorical=("a", "b", "c"))
    query = text("SELECT (n % 3)::text AS a, CASE WHEN v > 0 THEN 'x' END AS b, w AS c "
                 "FROM grid_values")
    engine = create_engine(server.url())
    try:
        with engine.connect() as connection:
            result = run(connection, request, query, ["a", "b", "c"],
                         {"a": "categorical", "b": "categorical", "c": "numeric"}, {}, False,
                         "current.sql", 100_000, ordered=True)
    finally:
        engine.dispose()
    return {name: (sorted(counts.values.tolist(), key=repr), tuple(sorted(counts.counts)),
                   counts.missing) for name, counts in result.categories.items()}


def test_categories_from_combinations_equal_grouping_sets(
        pg: Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelmon.sources import pushdown

    crossed = categories(pg)  # about 300 combinations: one GROUP BY, summed per column
    monkeypatch.setattr(pushdown, "COMBINATIONS", 10)  # too many: GROUPING SETS
    assert categories(pg) == crossed
    assert crossed["b"][0] == ["x"] and crossed["b"][2] > 0  # NULL counted apart
    assert crossed["c"][2] == len(SIZES) * 2  # NULL and NaN


def window(server: Postgres, n: int, *, single: bool) -> tuple[object, int]:
    """Counts, grids (one with order statistics too), categories and label pairs of
    ``n``'s rows (none for an ``n`` without rows), and the aggregate statements sent."""
    from sqlalchemy import create_engine, event, text

    request = AggregateRequest(
        numeric=(NumericRequest("v", (0.0,), (-1.0, 1.0, -0.5, 0.5), True),
                 NumericRequest("w", (0.0,), (-1.0, 1.0, -0.5, 0.5), True, ranks=(1,),
                                distinct=True, centre=0.25)),
        categorical=("a", "b"), columns=("v", "w", "a", "b"),
        labels=LabelRequest("binaryClassification", "a", None, "p"))
    query = text("SELECT v, w, (n % 2)::text AS a, CASE WHEN v > 0 THEN 'x' END AS b, "
                 "1 / (1 + exp(-least(greatest(v, -30), 30))) AS p "
                 "FROM grid_values WHERE n = :n")
    engine = create_engine(server.url())
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: sent.append(statement))
    try:
        with engine.connect() as connection:
            result = run(connection, request, query, ["v", "w", "a", "b", "p"],
                         {"v": "numeric", "w": "numeric", "a": "categorical",
                          "b": "categorical", "p": "numeric"}, {"n": n}, False,
                         "current.sql", 1000, ordered=True, filtered=True, single=single)
    finally:
        engine.dispose()
    labels = result.labels
    return ((result.rows, result.nulls, result.numeric,
             {k: (sorted(map(str, c.values.tolist())), sorted(c.counts), c.missing)
              for k, c in result.categories.items()},
             None if labels is None else sorted(zip(
                 labels.labels.tolist(), labels.predictions.tolist(), labels.counts,
                 labels.log_loss_positive, labels.brier_negative, strict=True)),
             labels and (labels.score_min, labels.score_max)),
            sum(1 for s in sent if "grid_values" in s))


@pytest.mark.parametrize("n", [*SIZES, -1])
def test_one_statement_equals_several(pg: Postgres, n: int) -> None:
    one, sent = window(pg, n, single=True)
    several, apart = window(pg, n, single=False)
    assert sent == 1 and apart >= 3
    assert one == several

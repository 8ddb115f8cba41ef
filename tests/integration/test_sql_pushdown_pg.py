"""sql.pushdown against a real PostgreSQL (Debian's package, started here): the check from
aggregates against row mode on the same tables, and the source's boundaries kept."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from servers import Postgres, postgres

from modelmon.api.v1alpha1 import ModelMonitorStatus
from modelmon.check import reference, run_check
from modelmon.sources import LoadContext, SourceError
from modelmon.sources.pushdown import AggregateRequest, aggregate
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from pushdown_data import (
    COLUMNS,
    METHODS,
    NOW,
    WINDOW_ROWS,
    assert_same,
    assert_same_profiles,
    current_rows,
    monitor,
    reference_pushed,
    reference_rows,
)

TABLE = ("(ts timestamptz, income double precision, age bigint, amount numeric(10, 2), "
         "region text, flag boolean, score double precision, approved integer, "
         "defaulted integer, cls text, pred_cls text, y double precision, "
         "yhat double precision)")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    import psycopg

    with postgres() as server:
        server.execute(f"CREATE TABLE reference_log {TABLE}", f"CREATE TABLE current_log {TABLE}",
                       "CREATE SEQUENCE counter", "GRANT USAGE, SELECT, UPDATE ON counter TO "
                       "monitor")
        with psycopg.connect(host=server.host, port=server.port, user="postgres",
                             password=server.superuser_password, dbname=server.database,
                             autocommit=True) as conn:
            for name, frame in (("reference_log", reference_rows()),
                                ("current_log", current_rows())):
                rows = [tuple(None if isinstance(v, float) and math.isnan(v) and c != "income"
                              else v for c, v in zip(COLUMNS, r, strict=True))
                        for r in frame[list(COLUMNS)].itertuples(index=False)]
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {name} VALUES ({', '.join(['%s'] * 13)})",
                                    rows)
        yield server
    dispose_engines()


def check(server: Postgres, task: str, numeric: str, categorical: str, pushdown: bool,
          **queries: str) -> ModelMonitorStatus:
    resolver = LocalResolver({("db", "url"): server.url()}, env={})
    return run_check(monitor(task, numeric, categorical, pushdown=pushdown, **queries),
                     now=NOW, resolver=resolver)


@pytest.mark.parametrize(("numeric", "categorical"), METHODS)
def test_binary_pushdown_equals_row_mode(pg: Postgres, numeric: str, categorical: str) -> None:
    rows = check(pg, "binaryClassification", numeric, categorical, False)
    pushed = check(pg, "binaryClassification", numeric, categorical, True)
    bounds = assert_same(rows, pushed)
    if numeric in ("ks", "wasserstein"):
        assert bounds and all(b > 0 for b in bounds)


@pytest.mark.parametrize("task", ["multiclassClassification", "regression"])
def test_other_tasks_pushdown_equals_row_mode(pg: Postgres, task: str) -> None:
    assert_same(check(pg, task, "hellinger", "tvd", False),
                check(pg, task, "hellinger", "tvd", True))


def test_pushdown_queries_run_read_only_with_the_timeout(pg: Postgres) -> None:
    # Writing from the author's query fails as in row mode, naming the query field.
    status = check(pg, "binaryClassification", "psi", "psi", True,
                   current_query="SELECT *, nextval('counter') AS n FROM current_log")
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase == "Failing" and "runs read-only" in ready.message
    assert "spec.current.source.sql.query" in ready.message
    # The statement timeout holds for the aggregates.
    # A volatile condition: evaluated for every row (2880 x 5 ms) in each statement.
    slow = "SELECT * FROM current_log WHERE pg_sleep(0.005) IS NOT NULL"
    spec = monitor("binaryClassification", "psi", "psi", pushdown=True, current_query=slow)
    sql = spec.current.source.sql
    assert sql is not None
    spec = spec.model_copy(update={"current": spec.current.model_copy(update={
        "source": spec.current.source.model_copy(update={
            "sql": sql.model_copy(update={"timeout": "1s"})})})})
    status = run_check(spec, now=NOW,
                       resolver=LocalResolver({("db", "url"): pg.url()}, env={}))
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert "longer than 1s" in ready.message and pg.password not in ready.message


def test_window_is_bound_not_formatted(pg: Postgres) -> None:
    # The author's query may use the window too; both bindings coexist.
    query = ("SELECT * FROM current_log WHERE ts >= :window_start - interval '1 day' "
             "AND ts < :window_end")
    rows = check(pg, "binaryClassification", "psi", "psi", False, current_query=query)
    pushed = check(pg, "binaryClassification", "psi", "psi", True, current_query=query)
    assert pushed.last_check is not None and rows.last_check is not None
    assert pushed.last_check.current_rows == rows.last_check.current_rows == WINDOW_ROWS


def test_a_wrong_password_is_reported_without_secrets(pg: Postgres) -> None:
    spec = monitor("binaryClassification", "psi", "psi", pushdown=True)
    ctx = LoadContext(role="spec.current.source", retries=0,
                      resolver=LocalResolver({("db", "url"): pg.url("not-the-password")},
                                             env={}))
    with pytest.raises(SourceError) as info:
        aggregate(spec.current.source, ctx, AggregateRequest(columns=("income",)))
    text = str(info.value)
    assert "spec.current.source.sql.connectionSecretRef" in text
    assert "authentication failed" in text
    assert "not-the-password" not in text and pg.password not in text


@pytest.mark.parametrize("query", ["SELECT * FROM reference_log",
                                   # fewer finite values than the grid has steps: exact
                                   "SELECT * FROM reference_log WHERE age < 35"])
@pytest.mark.parametrize(("task", "numeric"), [("binaryClassification", "psi"),
                                               ("regression", "ks")])
def test_reference_from_aggregates_equals_the_rows(pg: Postgres, query: str, task: str,
                                                   numeric: str) -> None:
    spec = monitor(task, numeric, "auto", pushdown=True, reference_query=query)
    ctx = LoadContext(role="spec.reference.source",
                      resolver=LocalResolver({("db", "url"): pg.url()}, env={}))
    assert_same_profiles(reference(spec, ctx).profile,
                         reference(reference_pushed(spec), ctx).profile)


@pytest.mark.parametrize(("numeric", "categorical"), METHODS)
def test_both_sides_pushed_down_equal_row_mode(pg: Postgres, numeric: str,
                                               categorical: str) -> None:
    resolver = LocalResolver({("db", "url"): pg.url()}, env={})
    spec = monitor("binaryClassification", numeric, categorical, pushdown=True)
    rows = check(pg, "binaryClassification", numeric, categorical, False)
    bounds = assert_same(rows, run_check(reference_pushed(spec), now=NOW, resolver=resolver))
    if numeric in ("ks", "wasserstein"):
        alone = assert_same(rows, run_check(spec, now=NOW, resolver=resolver))
        assert bounds and all(b > a for b, a in zip(bounds, alone, strict=True))

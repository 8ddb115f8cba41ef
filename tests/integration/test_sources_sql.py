"""The sql source against a real PostgreSQL on 127.0.0.1 (Debian's package, started here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from servers import Postgres, free_port, postgres

from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, ReferenceCache, SourceError, load
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CURRENT = "spec.current.source"
WINDOWED = ("SELECT ts, score, amount, region, id FROM predictions "
            "WHERE ts >= :window_start AND ts < :window_end ORDER BY ts")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        server.execute(
            "CREATE TABLE predictions (ts timestamptz NOT NULL, score double precision, "
            "amount numeric(10, 2), region text, id uuid DEFAULT gen_random_uuid())",
            # 30 rows, one every 10 minutes from 07:10 to 12:00 (the last at NOW - 0).
            "INSERT INTO predictions (ts, score, amount, region) "
            "SELECT timestamptz '2026-11-24 12:00:00+00' - i * interval '10 minutes', "
            "i / 30.0, i * 1.25, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' END "
            "FROM generate_series(0, 29) AS i",
            "CREATE SEQUENCE counter",
            "GRANT USAGE, SELECT, UPDATE ON counter TO monitor")
        yield server
    dispose_engines()


def ctx(server: Postgres, *, password: str | None = None, window: bool = True,
        url: str | None = None, retries: int = 0) -> LoadContext:
    resolver = LocalResolver({("db", "url"): url or server.url(password)}, env={})
    return LoadContext(role=CURRENT, resolver=resolver, retries=retries, retry_delay=0.05,
                       window_start=NOW - timedelta(hours=1) if window else None,
                       window_end=NOW if window else None)


def sql(query: str, **extra: object) -> Source:
    return Source.model_validate(
        {"sql": {"connectionSecretRef": {"name": "db", "key": "url"}, "query": query, **extra}})


def test_window_is_bound_and_types_are_usable(pg: Postgres) -> None:
    frame = load(sql(WINDOWED), ctx(pg)).frame
    # [11:00, 12:00): 11:00, 11:10, ..., 11:50 -- the row at 12:00 is outside.
    assert len(frame) == 6
    ts = pd.to_datetime(frame["ts"], utc=True)
    assert ts.min() == NOW - timedelta(hours=1) and ts.max() == NOW - timedelta(minutes=10)
    assert pd.api.types.is_float_dtype(frame["amount"])  # NUMERIC arrives as a number
    assert all(isinstance(v, str) for v in frame["id"])  # UUIDs as text


def test_window_values_are_parameters_not_text(pg: Postgres) -> None:
    # A bound timestamptz parameter has that type; text formatted into the query would not.
    frame = load(sql("SELECT pg_typeof(:window_start)::text AS t, "
                     "CAST(:window_end AS timestamptz) - :window_start AS span"),
                 ctx(pg)).frame
    assert frame["t"].tolist() == ["timestamp with time zone"]
    assert frame["span"].iloc[0] == timedelta(hours=1)


def test_statement_timeout(pg: Postgres) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        load(sql("SELECT pg_sleep(20) AS slept", timeout="1s"), ctx(pg))
    assert time.monotonic() - started < 10
    text = str(info.value)
    assert "spec.current.source.sql.query" in text and "longer than 1s" in text
    assert not info.value.transient and pg.password not in text


def test_wrong_password_is_an_auth_error_without_secrets(pg: Postgres) -> None:
    with pytest.raises(SourceError) as info:
        load(sql(WINDOWED), ctx(pg, password="not-the-password"))
    text = str(info.value)
    assert "spec.current.source.sql.connectionSecretRef" in text
    assert "authentication failed" in text and "Secret 'db' key 'url'" in text
    assert "not-the-password" not in text and pg.password not in text
    assert f"127.0.0.1:{pg.port}/predictions" in text and "monitor" not in text
    assert not info.value.transient


def test_unreachable_server_is_transient_and_retried(pg: Postgres) -> None:
    port = free_port()
    url = f"postgresql+psycopg://monitor:{pg.password}@127.0.0.1:{port}/predictions"
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        load(sql(WINDOWED, timeout="2s"), ctx(pg, url=url, retries=2))
    assert info.value.transient and "cannot connect" in str(info.value)
    assert pg.password not in str(info.value)
    assert time.monotonic() - started >= 0.05 + 0.1  # two waits: 0.05s, then 0.1s


def test_missing_table_names_the_query(pg: Postgres) -> None:
    with pytest.raises(SourceError) as info:
        load(sql("SELECT * FROM no_such_table"), ctx(pg))
    text = str(info.value)
    assert "spec.current.source.sql.query" in text and "no_such_table" in text
    assert "does not exist" in text and pg.password not in text


def test_schema_change_is_invalid_data(pg: Postgres) -> None:
    pg.execute("CREATE TABLE renamed (ts timestamptz, score float8)",
               "GRANT SELECT ON renamed TO monitor")
    query = sql("SELECT ts, score FROM renamed")
    assert load(query, ctx(pg)).frame.empty
    pg.execute("ALTER TABLE renamed RENAME COLUMN score TO probability")
    with pytest.raises(DataError) as info:
        load(query, ctx(pg))
    text = str(info.value)
    assert "spec.current.source.sql.query" in text and '"score" does not exist' in text


def test_query_runs_read_only(pg: Postgres) -> None:
    # The monitoring role may advance this sequence, but not from a monitor's query.
    with pytest.raises(DataError) as info:
        load(sql("SELECT nextval('counter') AS n"), ctx(pg))
    assert "runs read-only" in str(info.value) and "spec.current.source.sql.query" in str(
        info.value)
    called = load(sql("SELECT is_called FROM counter"), ctx(pg)).frame["is_called"]
    assert called.tolist() == [False]


def test_max_rows(pg: Postgres) -> None:
    assert len(load(sql("SELECT * FROM predictions", maxRows=30), ctx(pg)).frame) == 30
    with pytest.raises(DataError) as info:
        load(sql("SELECT * FROM predictions", maxRows=29), ctx(pg))
    assert "spec.current.source.sql.maxRows" in str(info.value)
    assert "more than 29 rows" in str(info.value)


def test_window_parameter_without_a_window(pg: Postgres) -> None:
    with pytest.raises(DataError, match=r"set spec\.current\.window"):
        load(sql(WINDOWED), ctx(pg, window=False))


def test_plain_postgresql_scheme_uses_psycopg(pg: Postgres) -> None:
    url = pg.url().replace("postgresql+psycopg://", "postgresql://")
    assert len(load(sql(WINDOWED), ctx(pg, url=url)).frame) == 6


def test_connections_are_pooled(pg: Postgres) -> None:
    dispose_engines()  # the other tests' pools (other URLs and timeouts) are closed
    for _ in range(5):
        load(sql(WINDOWED), ctx(pg))
    count = load(sql("SELECT count(*) AS n FROM pg_stat_activity "
                     "WHERE application_name = 'modelmon' AND usename = 'monitor'"),
                 ctx(pg)).frame["n"].iloc[0]
    assert count == 1


def test_reference_from_sql_is_refitted_only_when_the_result_changes(pg: Postgres) -> None:
    pg.execute("CREATE TABLE reference (x float8)", "GRANT SELECT ON reference TO monitor",
               "INSERT INTO reference SELECT generate_series(1, 100)")
    cache: ReferenceCache[float] = ReferenceCache()
    source = sql("SELECT x FROM reference")
    context = LoadContext(role="spec.reference.source", resolver=ctx(pg).resolver)
    for _ in range(4):
        got = cache.get("m", source, context, lambda loaded: float(loaded.frame["x"].sum()))
    assert got.value == 5050 and cache.builds == 1 and cache.loads == 4
    pg.execute("INSERT INTO reference VALUES (1000)")
    got = cache.get("m", source, context, lambda loaded: float(loaded.frame["x"].sum()))
    assert got.built and got.value == 6050 and cache.builds == 2

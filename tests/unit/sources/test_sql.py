"""The sql source on SQLite (in-process, real): binding, limits, timeout, errors, caching.

PostgreSQL is tested for real in tests/integration/test_sources_sql.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, ReferenceCache, SourceError, load, version
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "p.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE predictions (ts TEXT, score REAL, amount NUMERIC, "
                     "region TEXT)")
        conn.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?)", [
            ((NOW - timedelta(minutes=10 * i)).strftime("%Y-%m-%d %H:%M:%S"), i / 10,
             i * 1.5, "north" if i % 2 else "south") for i in range(12)])
    yield path
    dispose_engines()


def ctx(url: str, *, window: bool = True, base_dir: Path | None = None,
        role: str = "spec.current.source") -> LoadContext:
    return LoadContext(role=role, resolver=LocalResolver({("db", "url"): url}, env={}),
                       base_dir=base_dir or Path.cwd(), retries=0,
                       window_start=NOW - timedelta(hours=1) if window else None,
                       window_end=NOW if window else None)


def sql(query: str, **extra: Any) -> Source:
    return Source.model_validate(
        {"sql": {"connectionSecretRef": {"name": "db", "key": "url"}, "query": query, **extra}})


WINDOWED = ("SELECT * FROM predictions WHERE ts >= :window_start AND ts < :window_end "
            "ORDER BY ts")


def test_window_parameters(db: Path) -> None:
    frame = load(sql(WINDOWED), ctx(f"sqlite:///{db}")).frame
    assert len(frame) == 6 and frame["ts"].iloc[0] == "2026-11-24 11:00:00"
    assert frame["ts"].iloc[-1] == "2026-11-24 11:50:00"


def test_parameters_are_bound_not_formatted(db: Path) -> None:
    frame = load(sql("SELECT typeof(:window_start) AS t, :window_end AS e"),
                 ctx(f"sqlite:///{db}")).frame
    assert frame["t"].tolist() == ["text"] and frame["e"].iloc[0].startswith("2026-11-24 12")


def test_relative_sqlite_path_resolves_against_the_monitor(db: Path) -> None:
    frame = load(sql("SELECT count(*) AS n FROM predictions"),
                 ctx("sqlite:///p.db", window=False, base_dir=db.parent)).frame
    assert frame["n"].tolist() == [12]


def test_window_parameter_needs_a_window(db: Path) -> None:
    with pytest.raises(DataError, match=r"uses :window_start .* set spec\.current\.window"):
        load(sql(WINDOWED), ctx(f"sqlite:///{db}", window=False))
    with pytest.raises(DataError, match=r"only spec\.current\.source has a window"):
        load(sql(WINDOWED), ctx(f"sqlite:///{db}", window=False,
                                role="spec.reference.source"))


def test_unknown_parameters_are_refused(db: Path) -> None:
    with pytest.raises(DataError, match=r"unknown parameter :region"):
        load(sql("SELECT * FROM predictions WHERE region = :region"), ctx(f"sqlite:///{db}"))


def test_max_rows(db: Path) -> None:
    assert len(load(sql("SELECT * FROM predictions", maxRows=12),
                    ctx(f"sqlite:///{db}")).frame) == 12
    with pytest.raises(DataError, match=r"sql\.maxRows: the query returned more than 11 rows"):
        load(sql("SELECT * FROM predictions", maxRows=11), ctx(f"sqlite:///{db}"))


def test_timeout_interrupts_a_runaway_query(db: Path) -> None:
    runaway = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT max(x) AS x FROM c")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"sql\.query: the query ran longer than 300ms"):
        load(sql(runaway, timeout="300ms"), ctx(f"sqlite:///{db}"))
    assert time.monotonic() - started < 5
    # The connection is usable afterwards (the progress handler was removed).
    assert len(load(sql("SELECT 1 AS one"), ctx(f"sqlite:///{db}")).frame) == 1


def test_read_only(db: Path) -> None:
    with pytest.raises(DataError, match="runs read-only"):
        load(sql("INSERT INTO predictions (score) VALUES (1) RETURNING score"),
             ctx(f"sqlite:///{db}"))
    assert load(sql("SELECT count(*) AS n FROM predictions"),
                ctx(f"sqlite:///{db}")).frame["n"].tolist() == [12]


def test_missing_table_and_column(db: Path) -> None:
    with pytest.raises(SourceError, match=r"sql\.query: .*no such table: nope"):
        load(sql("SELECT * FROM nope"), ctx(f"sqlite:///{db}"))
    with pytest.raises(DataError, match=r"sql\.query: .*no such column: gone"):
        load(sql("SELECT gone FROM predictions"), ctx(f"sqlite:///{db}"))
    with pytest.raises(DataError, match="syntax error"):
        load(sql("SELEC 1"), ctx(f"sqlite:///{db}"))


def test_duplicate_column_names(db: Path) -> None:
    with pytest.raises(DataError, match="returns column score more than once"):
        load(sql("SELECT score, score FROM predictions"), ctx(f"sqlite:///{db}"))


def test_numeric_columns_are_numbers(db: Path) -> None:
    frame = load(sql("SELECT CAST(amount AS NUMERIC) AS amount, score FROM predictions"),
                 ctx(f"sqlite:///{db}", window=False)).frame
    assert frame["amount"].dtype.kind == "f" and frame["score"].dtype.kind == "f"


def test_bad_urls_and_drivers_never_show_the_secret() -> None:
    for url, message in [
        ("not a url at all s3cr3tpw", "is not a SQLAlchemy URL"),
        ("nosuchdb://u:s3cr3tpw@h/d", "no SQLAlchemy dialect"),
        ("mysql+nosuchdriver://u:s3cr3tpw@h/d", "no SQLAlchemy dialect"),
    ]:
        with pytest.raises(SourceError, match=message) as info:
            load(sql("SELECT 1"), ctx(url))
        assert "s3cr3tpw" not in str(info.value)
        assert "spec.current.source.sql.connectionSecretRef" in str(info.value)


def test_missing_secret() -> None:
    context = LoadContext(role="spec.current.source", resolver=LocalResolver(env={}))
    with pytest.raises(SourceError, match="--secret db/url=VALUE"):
        load(sql("SELECT 1"), context)


def test_no_cheap_probe_but_content_hash_saves_the_refit(db: Path) -> None:
    source, context = sql("SELECT score FROM predictions"), ctx(f"sqlite:///{db}", window=False)
    assert version(source, context) is None
    cache: ReferenceCache[int] = ReferenceCache()
    for _ in range(3):
        cache.get("m", source, context, lambda loaded: len(loaded.frame))
    assert (cache.loads, cache.builds) == (3, 1)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE predictions SET score = score + 1 WHERE rowid = 1")
    assert cache.get("m", source, context, lambda loaded: len(loaded.frame)).built


def test_max_bytes_bounds_the_result(db: Path) -> None:
    query = "SELECT * FROM predictions"
    src = Source.model_validate({**sql(query).model_dump(by_alias=True, exclude_none=True),
                                 "maxBytes": 200})
    with pytest.raises(DataError) as info:
        load(src, ctx(f"sqlite:///{db}"))
    said = str(info.value)
    assert said.startswith("spec.current.source.maxBytes: the source has more than 200 bytes "
                           "(12 rows taking "), said
    assert "north" not in said and "south" not in said
    roomy = Source.model_validate({**src.model_dump(by_alias=True, exclude_none=True),
                                   "maxBytes": "1Mi"})
    assert len(load(roomy, ctx(f"sqlite:///{db}")).frame) == 12


def policed(url: str, policy: Policy) -> LoadContext:
    return LoadContext(role="spec.current.source", policy=policy, retries=0,
                       resolver=LocalResolver({("db", "url"): url}, env={}))


def test_a_sqlite_database_is_a_local_file_under_the_administrators_rule(
        db: Path, tmp_path: Path) -> None:
    query = "SELECT score FROM predictions"
    with pytest.raises(SourceError) as info:
        load(sql(query), policed(f"sqlite:///{db}", Policy.operator()))
    said = str(info.value)
    assert said.startswith("spec.current.source.sql.connectionSecretRef (the SQLite database):")
    assert "--allow-local-path" in said
    # The URI form and a symlink out of an allowed directory are the same file.
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "link.db").symlink_to(db)
    only_allowed = Policy(local_paths=(allowed.resolve(),))
    for url in (f"sqlite:///file:{db}?mode=ro&uri=true", f"sqlite:///{allowed / 'link.db'}"):
        with pytest.raises(SourceError, match="outside the directories"):
            load(sql(query), policed(url, only_allowed))
    assert len(load(sql(query), policed(f"sqlite:///{db}",
                                        Policy(local_paths=(tmp_path.resolve(),)))).frame) == 12


@pytest.mark.parametrize("param", ["sslrootcert", "sslkey", "passfile", "SSLCERT"])
def test_libpq_file_parameters_are_local_files_too(param: str) -> None:
    """Refused before any connection: no server is needed to see it."""
    url = (f"postgresql+psycopg://u:p@db.example:5432/d?{param}="
           "/var/run/secrets/kubernetes.io/serviceaccount/token")
    with pytest.raises(SourceError) as info:
        load(sql("SELECT 1"), policed(url, Policy.operator()))
    assert f"connectionSecretRef ({param}): this operator reads no local file" in str(info.value)

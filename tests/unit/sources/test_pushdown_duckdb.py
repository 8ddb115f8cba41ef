"""sql.pushdown on DuckDB (embedded, live): the check from aggregates against row mode on
the same table, through the whole check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmon.api.v1alpha1 import ModelMonitorStatus
from modelmon.check import run_check
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from pushdown_data import (
    METHODS,
    NOW,
    assert_same,
    duckdb_log,
    monitor,
)

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("duckdb_engine")

@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield duckdb_log(tmp_path_factory.mktemp("duck") / "log.duckdb")
    dispose_engines()


def check(database: Path, task: str, numeric: str, categorical: str, pushdown: bool,
          **queries: str) -> ModelMonitorStatus:
    resolver = LocalResolver({("db", "url"): f"duckdb:///{database}"}, env={})
    return run_check(monitor(task, numeric, categorical, pushdown=pushdown, **queries),
                     base_dir=database.parent, now=NOW, resolver=resolver)


@pytest.mark.parametrize(("numeric", "categorical"), METHODS)
def test_binary_pushdown_equals_row_mode(database: Path, numeric: str,
                                         categorical: str) -> None:
    rows = check(database, "binaryClassification", numeric, categorical, False)
    pushed = check(database, "binaryClassification", numeric, categorical, True)
    assert pushed.last_check is not None
    bounds = assert_same(rows, pushed)
    if numeric in ("ks", "wasserstein"):
        assert bounds and all(b > 0 for b in bounds)


@pytest.mark.parametrize("task", ["multiclassClassification", "regression"])
def test_other_tasks_pushdown_equals_row_mode(database: Path, task: str) -> None:
    rows = check(database, task, "psi", "chisquare", False)
    pushed = check(database, task, "psi", "chisquare", True)
    assert_same(rows, pushed)


def test_duckdb_query_cannot_read_files(database: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for pushdown in (False, True):
        status = check(database, "binaryClassification", "psi", "psi", pushdown,
                       current_query=f"SELECT * FROM read_csv('{secret}')")
        assert status.phase == "Failing"
        ready = next(c for c in status.conditions if c.type == "Ready")
        assert "spec.current.source.sql.query" in ready.message
        assert "disabled by configuration" in ready.message


def test_distinct_values_are_bounded_by_max_rows(database: Path) -> None:
    spec = monitor("binaryClassification", "psi", "psi", pushdown=True)
    sql = spec.current.source.sql
    assert sql is not None
    capped = spec.model_copy(update={"current": spec.current.model_copy(update={
        "source": spec.current.source.model_copy(update={
            "sql": sql.model_copy(update={"max_rows": 5})})})})
    resolver = LocalResolver({("db", "url"): f"duckdb:///{database}"}, env={})
    status = run_check(capped, base_dir=database.parent, now=NOW, resolver=resolver)
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase == "Failing"
    assert "spec.current.source.sql.maxRows" in ready.message
    assert "more than 5 distinct values" in ready.message


@pytest.mark.parametrize("numeric", ["ks", "wasserstein"])
def test_a_window_within_the_grid_is_exact(database: Path, numeric: str) -> None:
    # At most 1,000 values: the grid holds every one, and ks and wasserstein are exact.
    query = "SELECT * FROM current_log ORDER BY ts DESC LIMIT 400"
    rows = check(database, "binaryClassification", numeric, "psi", False, current_query=query)
    pushed = check(database, "binaryClassification", numeric, "psi", True, current_query=query)
    assert assert_same(rows, pushed) == []
    assert pushed.drift is not None
    assert all(f.statistic_error_bound is None for f in pushed.drift.features)

"""reference.source.sql.pushdown on DuckDB (embedded, live): the reference profile fitted
from aggregates against the one fitted from the rows, and whole checks with both sides
pushed down against row mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmon.api.v1alpha1 import ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import reference, run_check
from modelmon.sources import LoadContext
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from modelmon.stats.dataset import ReferenceProfile
from pushdown_data import (
    METHODS,
    NOW,
    assert_same,
    assert_same_profiles,
    duckdb_log,
    monitor,
    reference_pushed,
)

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("duckdb_engine")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield duckdb_log(tmp_path_factory.mktemp("duckref") / "log.duckdb")
    dispose_engines()


def resolver(database: Path) -> LocalResolver:
    return LocalResolver({("db", "url"): f"duckdb:///{database}"}, env={})


def fitted(database: Path, spec: ModelMonitorSpec) -> ReferenceProfile:
    ctx = LoadContext(base_dir=database.parent, role="spec.reference.source",
                      resolver=resolver(database))
    return reference(spec, ctx).profile


@pytest.mark.parametrize("query", ["SELECT * FROM reference_log",
                                   # fewer finite values than the grid has steps: exact
                                   "SELECT * FROM reference_log WHERE age < 35"])
@pytest.mark.parametrize(("task", "numeric"), [("binaryClassification", "psi"),
                                               ("regression", "ks"),
                                               ("multiclassClassification", "auto")])
def test_reference_from_aggregates_equals_the_rows(database: Path, query: str, task: str,
                                                   numeric: str) -> None:
    rows = fitted(database, monitor(task, numeric, "auto", pushdown=True,
                                    reference_query=query))
    pushed = fitted(database, reference_pushed(monitor(task, numeric, "auto", pushdown=True,
                                                       reference_query=query)))
    assert_same_profiles(rows, pushed)


def check(database: Path, task: str, numeric: str, categorical: str,
          pushed: bool) -> ModelMonitorStatus:
    spec = monitor(task, numeric, categorical, pushdown=True)
    return run_check(reference_pushed(spec) if pushed else spec,
                     base_dir=database.parent, now=NOW, resolver=resolver(database))


@pytest.mark.parametrize(("numeric", "categorical"), METHODS)
def test_both_sides_pushed_down_equal_row_mode(database: Path, numeric: str,
                                               categorical: str) -> None:
    rows = run_check(monitor("binaryClassification", numeric, categorical, pushdown=False),
                     base_dir=database.parent, now=NOW, resolver=resolver(database))
    pushed = check(database, "binaryClassification", numeric, categorical, True)
    bounds = assert_same(rows, pushed)
    if numeric in ("ks", "wasserstein"):
        # Read off both grids: the bound is wider than the window's alone.
        alone = assert_same(rows, check(database, "binaryClassification", numeric,
                                        categorical, False))
        assert bounds and all(b > a for b, a in zip(bounds, alone, strict=True))


def test_a_pushed_down_reference_query_cannot_read_files(database: Path,
                                                          tmp_path: Path) -> None:
    """The reference's query is the author's too: fitted from aggregates, it runs in the
    same locked-down session as the window's and cannot read a file of the operator's."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    spec = reference_pushed(monitor("binaryClassification", "psi", "psi", pushdown=True,
                                    reference_query=f"SELECT * FROM read_csv('{secret}')"))
    status = run_check(spec, base_dir=database.parent, now=NOW, resolver=resolver(database))
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase == "Failing"
    assert "spec.reference.source.sql.query" in ready.message
    assert "disabled by configuration" in ready.message


"""sql.pushdown's window as one statement (DuckDB, live): one aggregate statement per
window for every task, and the same aggregates as the statements sent one by one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmon.aggregates import aggregate_request
from modelmon.check import reference
from modelmon.sources import LoadContext
from modelmon.sources import pushdown as push
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from pushdown_data import NOW, WINDOW, duckdb_log, monitor

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("duckdb_engine")

@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield duckdb_log(tmp_path_factory.mktemp("duckone") / "log.duckdb")
    dispose_engines()


def window(database: Path, task: str, numeric: str, *, single: bool, empty: bool = False,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """The window's aggregates as a tuple of plain values, and the statements sent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    spec = monitor(task, numeric, "chisquare", pushdown=True)
    resolver = LocalResolver({("db", "url"): f"duckdb:///{database}"}, env={})
    ref = reference(spec, LoadContext(base_dir=database.parent, role="spec.reference.source",
                                      resolver=resolver))
    request = aggregate_request(spec, ref.profile)
    end = NOW - 2 * WINDOW if empty else NOW
    ctx = LoadContext(base_dir=database.parent, role="spec.current.source",
                      resolver=resolver, window_start=end - WINDOW, window_end=end)
    sent: list[str] = []

    def grab(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    monkeypatch.setattr(push, "SINGLE", single)
    event.listen(Engine, "before_cursor_execute", grab)
    try:
        found = push.aggregate(spec.current.source, ctx, request)
    finally:
        event.remove(Engine, "before_cursor_execute", grab)
    labels = found.labels
    plain = (found.rows, found.nulls,
             {k: dataclasses.astuple(c) for k, c in found.numeric.items()},
             found.regression and dataclasses.astuple(found.regression),
             {k: (sorted(zip(map(str, c.values.tolist()), c.counts, strict=True)), c.missing)
              for k, c in found.categories.items()},
             None if labels is None else sorted(zip(
                 map(str, labels.labels.tolist()), map(str, labels.predictions.tolist()),
                 labels.counts, labels.log_loss_positive or labels.counts,
                 labels.brier_negative or labels.counts, strict=True)),
             labels and (labels.score_min, labels.score_max))
    return plain, [s for s in sent if "modelmon_w" in s]


@pytest.mark.parametrize("empty", [False, True])
@pytest.mark.parametrize(("task", "numeric"), [("binaryClassification", "ks"),
                                               ("multiclassClassification", "wasserstein"),
                                               ("regression", "psi")])
def test_one_statement_per_window_with_the_same_aggregates(
        database: Path, task: str, numeric: str, empty: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    one, sent = window(database, task, numeric, single=True, empty=empty,
                       monkeypatch=monkeypatch)
    several, apart = window(database, task, numeric, single=False, empty=empty,
                            monkeypatch=monkeypatch)
    assert len(sent) == 1
    assert len(apart) >= 3
    assert (one[0] == 0) == empty
    # DuckDB sums in parallel (the last bits of a sum may differ run to run) and returns
    # groups in any order: sorted, and sums to 1e-12.
    got, want = leaves(one), leaves(several)
    assert [x for x in got if not number(x)] == [x for x in want if not number(x)]
    assert [x for x in got if number(x)] == pytest.approx(
        [x for x in want if number(x)], rel=1e-12, abs=1e-12, nan_ok=True)


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def leaves(value: Any) -> list[Any]:
    """The numbers and strings of a nested structure, in order."""
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in [key, *leaves(value[key])]]
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in leaves(item)]
    return [value]

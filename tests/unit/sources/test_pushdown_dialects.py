"""The pushdown statements for the dialects not run here (Trino, Spark SQL, BigQuery,
Snowflake): compiled with SQLAlchemy's PostgreSQL dialect, transpiled by sqlglot, and parsed
back by sqlglot's parser of each dialect, unsupported constructs raising. This checks the
SQL's form, not an engine's answers: PostgreSQL and DuckDB run the statements live
(tests/integration/test_sql_pushdown_pg.py, test_pushdown_duckdb.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from modelmon.sources import pushdown as push

sqlglot = pytest.importorskip("sqlglot")

DIALECTS = ["trino", "spark", "bigquery", "snowflake"]
COLUMNS = ["ts", "income", "region", "approved", "defaulted", "score", "cls", "pred", "y"]
NUMERIC = {"income", "score", "approved", "defaulted", "y"}
NUMBERS = (push.NumericRequest("income", (1.0, 2.5, 7.25), (0.0, 9.0, -1.0, 10.0), True),
           push.NumericRequest("y", (), None, False))
LABELS = {
    "binary": push.LabelRequest("binaryClassification", "defaulted", "approved", "score"),
    "scores only": push.LabelRequest("binaryClassification", "defaulted", None, "score"),
    "multiclass": push.LabelRequest("multiclassClassification", "cls", "pred", None),
    "regression": push.LabelRequest("regression", "y", "income", None),
}


def compiled(labels: push.LabelRequest) -> list[str]:
    request = push.AggregateRequest(numeric=NUMBERS, categorical=("region", "cls"),
                                    columns=tuple(COLUMNS[1:]), timestamp="ts", labels=labels)
    out = []
    for statement in push.statements(request, text("SELECT * FROM predictions"),
                                     COLUMNS, NUMERIC):
        bound = statement.params(modelmon_window_start=datetime(2026, 1, 1, tzinfo=UTC),
                                 modelmon_window_end=datetime(2026, 1, 2, tzinfo=UTC))
        out.append(str(bound.compile(dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
                                     compile_kwargs={"literal_binds": True})))
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("task", sorted(LABELS))
def test_statements_compile_for_the_dialect(dialect: str, task: str) -> None:
    statements = compiled(LABELS[task])
    # counts, categories, then the label pairs of a classifier or a regression's spread
    # (after the grids).
    assert len(statements) == 4
    kinds = []
    for sql in statements:
        out = sqlglot.transpile(sql, read="postgres", write=dialect,
                                unsupported_level=sqlglot.ErrorLevel.RAISE)
        assert len(out) == 1
        parsed = sqlglot.parse_one(out[0], read=dialect)
        source = sqlglot.parse_one(sql, read="postgres")
        found = {type(node).__name__ for node in parsed.walk()}
        kinds.append(found)
        # Every function is one sqlglot knows (and so renders in the dialect's spelling),
        # and every figure is still selected.
        assert "Anonymous" not in found, out[0]
        assert len(parsed.selects) == len(source.selects)
    counts, groups = kinds[:2]
    grids = kinds[2] if task == "regression" else kinds[3]
    assert {"Sum", "Case", "Min", "Max", "Count"} <= counts
    assert {"GroupingSets", "Grouping"} <= groups
    assert {"Window", "RowNumber", "Floor"} <= grids
    if task != "regression":
        pairs = kinds[2]
        assert "Group" in pairs and "GroupingSets" not in pairs


def test_window_and_edges_are_parameters_when_run() -> None:
    request = push.AggregateRequest(numeric=NUMBERS, columns=("income",), timestamp="ts")
    counts = push.statements(request, text("SELECT * FROM predictions"), COLUMNS, NUMERIC)[0]
    params = counts.compile(dialect=postgresql.dialect()).params  # type: ignore[no-untyped-call]
    assert {"modelmon_window_start", "modelmon_window_end"} <= set(params)
    assert params["e0_b0"] == 1.0 and params["e0_below_fence"] == -1.0
    sql = str(counts.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    assert "7.25" not in sql and "2026" not in sql

"""``engine: duckdb``: a ``url`` window of parquet files aggregated by an embedded DuckDB.

Part of ``sources`` (second stop on the data line), beside ``streamed`` and
``sources.pushdown``. The files are read as a streamed read reads them (``streamed``: the
allowed local paths, egress, credentials, the byte budget per pass, one row group at a
time), only the monitored columns; the caller's ``keep`` selects each batch's rows of the
window exactly as row mode selects them (``streaming.window``: ``columns.timestamp`` inside
the window; ``prunePartitions`` prunes the listing first, as it does for rows). The kept
batches reach DuckDB as an Arrow ``RecordBatchReader`` and ``pushdown.run`` runs the very
statements ``sql.pushdown`` runs over it, one pass over the files per statement, so that
the figures are the pushdown's figures and what is held is one batch at a time plus what
DuckDB aggregates (its memory limit is half the check's).

DuckDB opens nothing itself: an in-memory database with external access off (no file, no
network, no extension) and its configuration locked; it sees only the batches handed to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from modelmon.api.v1alpha1 import ENGINE_FORMATS, Source, format_bytes
from modelmon.sources.base import DataError, LoadContext, SourceError, retrying
from modelmon.sources.pushdown import AggregateRequest, Aggregates, _kinds, run
from modelmon.sources.sql import DUCKDB_CONFIG, _sqlalchemy
from modelmon.sources.url.listing import detect_format, listing
from modelmon.sources.url.streamed import Streamed, open_streamed
from modelmon.sources.url.targets import target

#: The name the window's batches have in DuckDB's statements.
RELATION = "modelmon_window"
#: Distinct values (categories and label pairs together) a window may have.
MAX_DISTINCT = 1_000_000
#: DuckDB's share of the check's memory limit (the rest: the batch in hand).
DUCKDB_SHARE = 2
#: The fix when DuckDB runs out of its memory.
SORTS = ("the quantile grid of a column scored by ks or wasserstein sorts its values: score "
         "such columns with a binned method (psi, jensenshannon, kl, hellinger), or narrow "
         "spec.current.window")


def duckdb_config(memory: int | None) -> dict[str, Any]:
    """The embedded DuckDB's settings: no file or network access, no extension, locked;
    one thread, nothing spilled to disk, and ``memory // DUCKDB_SHARE`` of memory (at
    least 16 MiB) when the check has a limit."""
    config: dict[str, Any] = {**DUCKDB_CONFIG, "threads": 1, "temp_directory": ""}
    if memory is not None:
        config["memory_limit"] = f"{max(memory // DUCKDB_SHARE >> 20, 16)}MiB"
    return config


def aggregate_url(source: Source, ctx: LoadContext, request: AggregateRequest,
                  keep: Callable[[pd.DataFrame], pd.DataFrame], rows: int) -> Aggregates:
    """The window's aggregates (``pushdown.Aggregates``) of a url source with ``engine``:
    batches of about ``rows`` rows, each narrowed to the window by ``keep``. Transient
    failures are retried as a load's are."""
    return retrying(lambda: _aggregate(source, ctx, request, keep, rows), ctx)


def _open(source: Source, ctx: LoadContext, field: str) -> Streamed:
    resolved = target(source, ctx)
    files = listing(source, resolved, ctx)
    formats = sorted({detect_format(p, source.format) for p, _ in files.files})
    if any(f not in ENGINE_FORMATS for f in formats):
        raise DataError(f"{field}: {source.engine} reads parquet files; {resolved.shown} "
                        f"holds {', '.join(formats)} files; set format: parquet to read "
                        "only those, or remove engine")
    streamed = open_streamed(source, resolved, files, ctx)
    if streamed is None:
        raise DataError(f"{field}: {resolved.shown} sends no version (ETag or "
                        "Last-Modified), so it cannot be read in passes; serve it with "
                        "one, or remove engine")
    return streamed


def _arrow_type(found: Any) -> Any:
    """The Arrow type a column of type ``found`` is handed to DuckDB as: the values row
    mode reads (integers, which pandas may hold as floats beside NaN, as integers)."""
    import pyarrow

    if pyarrow.types.is_integer(found):
        return pyarrow.int64()
    if pyarrow.types.is_floating(found):
        return pyarrow.float64()
    if (pyarrow.types.is_string(found) or pyarrow.types.is_large_string(found)
            or pyarrow.types.is_dictionary(found)):
        return pyarrow.large_string()
    return found


def _aggregate(source: Source, ctx: LoadContext, request: AggregateRequest,
               keep: Callable[[pd.DataFrame], pd.DataFrame], rows: int) -> Aggregates:
    field = f"{ctx.role}.engine"
    streamed = _open(source, ctx, field)
    windowed = ctx.window_start is not None and request.timestamp is not None
    if windowed and request.timestamp not in streamed.columns:
        raise DataError(f"spec.columns.timestamp: the current window has no column "
                        f"{request.timestamp!r}")
    import pyarrow

    found = streamed.arrow_schema()
    names = [n for n in dict.fromkeys(request.columns) if n in streamed.columns]
    schema = pyarrow.schema([(n, _arrow_type(found.field(n).type)) for n in names])
    read = [*names, *([request.timestamp] if windowed and request.timestamp else [])]
    limit = ctx.policy.max_memory
    group = sum(streamed.largest_chunk(n) for n in read)
    if limit is not None and group > limit:
        raise DataError(
            f"{ctx.role}.url: a row group of the current window's files holds about "
            f"{format_bytes(group)} of the monitored columns, more than the check's memory "
            f"limit of {format_bytes(limit)} (modelmon run --max-check-memory), and "
            f"{source.engine} is handed one row group at a time; write the files with "
            "smaller row groups (for example 100,000 rows each)")
    failure: list[BaseException] = []

    def batches() -> Iterator[Any]:
        try:
            for batch in streamed.batches(read, rows):
                kept = keep(batch)
                if len(kept):
                    try:
                        yield pyarrow.RecordBatch.from_pandas(kept[names], schema=schema,
                                                         preserve_index=False)
                    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as exc:
                        raise DataError(
                            f"{ctx.role}.url: a column's values differ in kind between "
                            f"the files of {streamed.target.shown} ({str(exc)[:160]}); "
                            "rewrite the files with one schema") from None
        except Exception as exc:  # not GeneratorExit: DuckDB closing a stream it left
            failure.append(exc)
            raise

    def reader(empty: bool = False) -> Any:
        return pyarrow.RecordBatchReader.from_batches(schema, iter(()) if empty else batches())

    _sqlalchemy()
    import sqlalchemy
    from sqlalchemy import literal_column, select, text
    from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError

    config = duckdb_config(limit)
    try:
        engine = sqlalchemy.create_engine("duckdb:///:memory:", poolclass=sqlalchemy.NullPool,
                                          connect_args={"config": config})
        connection = engine.connect()
    except (NoSuchModuleError, ImportError):
        raise SourceError(f"{field}: duckdb needs the duckdb and duckdb-engine packages; "
                          "install modelmon[duckdb]") from None
    stmt = text(f"SELECT * FROM {RELATION}")
    try:
        with connection:
            raw: Any = connection.connection.dbapi_connection
            raw.register(RELATION, reader(empty=True))
            probe: Any = connection.execute(select(literal_column("*")).select_from(
                stmt.columns().subquery("modelmon_p")).limit(0))
            columns = [str(k) for k in probe.keys()]  # noqa: SIM118 (a Result)
            kinds = _kinds(probe, "duckdb")
            probe.close()
            return run(_Passes(connection, raw, reader), request, stmt, columns, kinds, {},
                       False, f"{ctx.role}.url", MAX_DISTINCT, field)
    except Exception as exc:
        if failure and exc is not failure[0]:  # the files' own, raised in DuckDB's scan
            raise failure[0] from None
        if isinstance(exc, DBAPIError | SQLAlchemyError):
            raise _duckdb_error(exc, field, config.get("memory_limit")) from None
        raise
    finally:
        engine.dispose()


class _Passes:
    """A connection whose every statement scans the window afresh: a new reader of the
    files' batches registered before each (an Arrow stream is read once)."""

    def __init__(self, connection: Any, raw: Any, reader: Callable[[], Any]) -> None:
        self.connection, self.raw, self.reader = connection, raw, reader

    def execute(self, statement: Any, parameters: Any = None, /) -> Any:
        from sqlalchemy.sql.selectable import CompoundSelect

        if isinstance(statement, CompoundSelect):
            # A UNION ALL (the grids: one part per column) would scan the stream once per
            # part: each part is run on a stream of its own.
            return _Rows([row for part in statement.selects
                          for row in self.execute(part, parameters).all()])
        self.raw.register(RELATION, self.reader())
        return self.connection.execute(statement, parameters or {})


class _Rows:
    """The rows of several statements as one result (what ``pushdown.run`` reads)."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def all(self) -> list[Any]:
        return self.rows


def _duckdb_error(exc: Exception, field: str, memory: str | None) -> DataError:
    """DuckDB's failure as the check's: out of memory says what sorts; anything else is
    named by its kind alone (DuckDB's text may quote the data)."""
    kind = type(getattr(exc, "orig", exc)).__name__
    if "OutOfMemory" in kind:
        return DataError(f"{field}: DuckDB needed more than its memory limit of {memory} "
                         "(half of modelmon run --max-check-memory, at least 16MiB) for the "
                         f"window's aggregates; {SORTS}")
    return DataError(f"{field}: DuckDB could not aggregate the window ({kind}); check the "
                     "monitored columns' kinds against the reference")

"""The ``sql`` source: the rows a SQL query returns, through SQLAlchemy 2 (the ``sql`` extra).

Part of ``sources`` (second stop on the data line).

- The SQLAlchemy URL, credentials included, comes from a Secret key
  (``connectionSecretRef``); messages show only ``driver://host:port/database``, and any
  text from the driver has the password, the user and the URL scrubbed from it.
- ``:window_start`` and ``:window_end`` in the query are bound as parameters, never
  formatted into the text: timezone-aware UTC timestamps, and on SQLite (no time type) UTC
  text as its datetime() writes it, ``YYYY-MM-DD HH:MM:SS[.ffffff]``. A PostgreSQL cast
  must be written ``CAST(:window_start AS date)``: SQLAlchemy reads ``:name::type`` as text.
  Only the ones the query uses are bound; a query that uses them needs the check to have a
  window (``spec.current.window``); any other ``:name`` is an error.
- The query runs in a read-only transaction that is rolled back afterwards, with a
  statement timeout: ``statement_timeout`` on PostgreSQL, a progress handler on SQLite;
  other databases get only the connect timeout (give the monitoring user a server-side
  limit there). The connect timeout is the same duration.
- ``maxRows``: at most ``maxRows + 1`` rows are fetched (a server-side cursor where the
  driver has one); more than ``maxRows`` fails with ``DataError``. The result then counts
  against the source's ``maxBytes`` by the memory it takes as a frame (the rows cap bounds
  what is fetched; this bounds what a check keeps). A driver's error may quote the query
  (the author's own text) but the message never carries result values.
- Every column the query returns is loaded: the check's column list cannot be pushed into
  arbitrary SQL, so select only what the monitor uses. NUMERIC (Decimal) columns become
  floats and UUIDs text.
- Engines are cached per connection URL (keyed by a hash, with ``pool_pre_ping``), so a
  check reuses its connections; a rotated Secret makes a new engine.
- The version tag is a hash of the result: there is no cheap probe, so a reference from SQL
  is queried at every check, and only the fitting is skipped while the result is unchanged.
- Under the administrator's egress policy (``sources.egress``) the URL's host is resolved
  and checked before each new connection; a refused host fails naming
  ``connectionSecretRef``. PostgreSQL then connects to the checked addresses (libpq's
  ``hostaddr``, the name kept for TLS); other databases are checked only (their driver
  resolves again). The host must be in the URL: ``host``, ``hostaddr`` or ``service`` in
  its query, or several hosts, are refused there. A Unix socket (no host, or a path) is
  not a network destination and is not checked.
- Files the driver reads are local paths under the administrator's rule (``url``'s
  ``--allow-local-path``): a SQLite database, and libpq's ``sslkey``, ``sslcert``,
  ``sslrootcert``, ``sslcrl``, ``sslcrldir`` and ``passfile``. In the operator none is
  allowed by default.
"""

from __future__ import annotations

import decimal
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit

import pandas as pd

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import Source, parse_duration
from modelmon.sources import egress
from modelmon.sources.base import (
    DataError,
    LoadContext,
    Loaded,
    SourceError,
    budget,
    first_line,
    register,
    scrub,
)
from modelmon.sources.url import allowed_local

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from modelmon.api.v1alpha1 import SqlSource

WINDOW_PARAMS = ("window_start", "window_end")
MAX_ENGINES = 32
SQLITE_PROGRESS_OPS = 1000
AUTH_STATES = ("28P01", "28000")
TIMEOUT_STATES = ("57014",)
MISSING_TABLE_STATES = ("42P01", "3F000")
MISSING_DATABASE_STATES = ("3D000",)
READ_ONLY_STATES = ("25006",)

_engines: OrderedDict[str, Engine] = OrderedDict()
_engines_lock = threading.Lock()
#: The checked addresses of the connection being opened (set around ``engine.connect``).
_pinned: ContextVar[tuple[str, ...] | None] = ContextVar("modelmon_sql_pinned",
                                                         default=None)
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433,
                 "oracle": 1521}
HOST_PARAMS = ("host", "hostaddr", "service")
#: libpq connection parameters that name a file the client reads (keys, certificates,
#: revocation lists, the password file): local paths like any other.
FILE_PARAMS = ("sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir", "passfile")
#: Embedded databases whose URL names a local file, and how messages call them.
FILE_BACKENDS = {"sqlite": "SQLite", "duckdb": "DuckDB"}
#: DuckDB's settings for a monitor's query: no file or network access beyond the
#: database (read_csv, read_parquet, ATTACH, httpfs), no extension installed or loaded,
#: and no query may change them back.
DUCKDB_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
                 "autoload_known_extensions": False, "lock_configuration": True}


@dataclass(frozen=True, slots=True)
class Database:
    """Where a query runs, and how to talk about it without showing a secret."""

    url: URL
    shown: str
    secrets: list[str]
    field: str
    """Where the URL comes from, e.g. ``spec.current.source.sql.connectionSecretRef``."""
    ref: str
    """``Secret NAME key KEY``, for messages."""


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise SourceError("the sql source needs SQLAlchemy; install modelmon[sql]") from None
    return sqlalchemy


def _connection(spec: SqlSource, ctx: LoadContext, where: str) -> Database:
    from sqlalchemy import URL, make_url
    from sqlalchemy.exc import ArgumentError

    ref = spec.connection_secret_ref
    field_ = f"{where}.connectionSecretRef"
    raw = ctx.need_resolver(field_).secret(ref.name, ref.key).strip()
    described = f"Secret {ref.name!r} key {ref.key!r}"
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise SourceError(f"{field_}: {described} is not a SQLAlchemy URL; write it like "
                          "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE") from None
    secrets = [raw, url.password and str(url.password), url.username]
    if url.password:
        secrets += [quote(str(url.password), safe=""), quote_plus(str(url.password))]
    for value in url.query.values():
        secrets += [value] if isinstance(value, str) else list(value)
    if url.get_backend_name() in FILE_BACKENDS and url.database \
            and url.database != ":memory:" and not url.database.startswith(("/", "file:")):
        url = url.set(database=str(ctx.base_dir / url.database))
    _local_files(url, ctx, field_)
    shown = URL.create(url.drivername, host=url.host, port=url.port,
                       database=url.database).render_as_string(hide_password=True)
    return Database(url, shown, [s for s in secrets if s], field_, described)


def _local_files(url: URL, ctx: LoadContext, where: str) -> None:
    """Every file the driver would read for ``url`` (a SQLite database, libpq's keys and
    certificates) lies under the directories the administrator allows (``url.allowed_local``):
    a URL in a Secret is a monitor author's input like a ``url`` source."""
    if ctx.policy.local_paths is None:
        return
    named: list[tuple[str, str]] = []
    database = url.database or ""
    backend = url.get_backend_name()
    if backend in FILE_BACKENDS and database and database != ":memory:":
        if database.startswith("file:"):  # SQLite's URI form: file:PATH?options
            database = urlsplit(database).path
        named.append((f"the {FILE_BACKENDS[backend]} database", database))
    for key, value in url.query.items():
        if key.lower() in FILE_PARAMS:
            named += [(key, v) for v in ([value] if isinstance(value, str) else value)]
    for what, path in named:
        allowed_local(path, ctx, f"{where} ({what})")


def _engine(conn: Database, timeout: float, policy: Egress = egress.UNRESTRICTED
            ) -> Engine:
    sqlalchemy = _sqlalchemy()
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    key = hashlib.sha256(f"{conn.url.render_as_string(hide_password=False)}\0{timeout}"
                         f"\0{policy!r}".encode()).hexdigest()
    with _engines_lock:
        cached = _engines.get(key)
        if cached is not None:
            _engines.move_to_end(key)
            return cached
    backend = conn.url.get_backend_name()
    url = conn.url
    if url.drivername == "postgresql" and not _importable("psycopg2") and _importable("psycopg"):
        url = url.set(drivername="postgresql+psycopg")  # SQLAlchemy's default is psycopg2
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {"connect_timeout": max(1, round(timeout)),
                        "application_name": "modelmon"}
    elif backend == "sqlite":
        connect_args = {"timeout": timeout}
    elif backend == "duckdb":
        connect_args = {"config": dict(DUCKDB_CONFIG)}
        if url.database and url.database != ":memory:":
            connect_args["read_only"] = True
    try:
        engine: Engine = sqlalchemy.create_engine(url, pool_pre_ping=True, pool_recycle=1800,
                                                  connect_args=connect_args)
    except NoSuchModuleError:
        raise SourceError(f"{conn.field}: no SQLAlchemy dialect for "
                          f"{conn.url.drivername!r}; install its driver (modelmon[sql] has "
                          "PostgreSQL's psycopg)") from None
    except ImportError as exc:
        raise SourceError(f"{conn.field}: the driver for {conn.url.drivername!r} is not "
                          f"installed ({exc.name}); install it or modelmon[sql]") from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise SourceError(f"{conn.field}: {conn.ref} is not a usable URL: "
                          f"{scrub(first_line(exc), conn.secrets)}") from None
    if policy.enforce and backend == "postgresql":
        from sqlalchemy import event

        event.listen(engine, "do_connect", _pin_factory(conn, policy))
    with _engines_lock:
        _engines[key] = engine
        while len(_engines) > MAX_ENGINES:
            _, old = _engines.popitem(last=False)
            old.dispose()
    return engine


def _destination(conn: Database, policy: Egress, where: str) -> tuple[str, ...] | None:
    """The checked addresses of the database's host (None: no network destination, or no
    policy); ``EgressRefusedError`` or ``SourceError`` naming ``where`` otherwise."""
    url = conn.url
    if not policy.enforce or url.get_backend_name() == "sqlite":
        return None
    overrides = sorted(k for k in url.query if k.lower() in HOST_PARAMS)
    if overrides or (url.host and "," in url.host):
        what = f"{', '.join(overrides)} in the URL's query" if overrides else "several hosts"
        raise SourceError(f"{where}: {what} cannot be checked against the operator's egress "
                          "policy; write one host in the URL (USER:PASSWORD@HOST:PORT)")
    if not url.host or url.host.startswith("/"):
        return None  # a Unix socket
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name(), 0)
    try:
        infos = egress.rules(policy).resolve(url.host, port, where)
    except OSError as exc:
        raise SourceError(f"{where}: cannot resolve {url.host}: "
                          f"{exc.strerror or type(exc).__name__}", transient=True) from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _pin_factory(conn: Database, policy: Egress) -> Callable[..., None]:
    """A ``do_connect`` listener: libpq connects to the checked addresses (``hostaddr``),
    each under the URL's host name (for TLS); the check runs again if a connection is
    opened where ``load_sql`` did not check (it never is)."""

    def pin(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        addresses = _pinned.get() or _destination(conn, policy, f"{conn.field} ({conn.ref})")
        if not addresses:
            return
        cparams["hostaddr"] = ",".join(addresses)
        cparams["host"] = ",".join([str(conn.url.host)] * len(addresses))

    return pin


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def dispose_engines() -> None:
    """Close every cached connection pool (at shutdown, and between tests)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


# ------------------------------------------------------------------------------ errors


def _state(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if isinstance(code, str):
            return code
    return None


def _driver_message(exc: BaseException, conn: Database) -> str:
    orig = getattr(exc, "orig", None) or exc
    return scrub(first_line(orig), conn.secrets)


def _connect_error(exc: BaseException, conn: Database, timeout: str,
                   where: str) -> SourceError:
    text = _driver_message(exc, conn)
    lowered = text.lower()
    if _state(exc) in AUTH_STATES or "authentication failed" in lowered \
            or "access denied" in lowered or "password" in lowered:
        return SourceError(f"{conn.field}: authentication failed at {conn.shown}: {text}; "
                           f"check the user and password in {conn.ref}")
    if _state(exc) in MISSING_DATABASE_STATES or "does not exist" in lowered:
        return SourceError(f"{conn.field}: {text} (at {conn.shown}); check the database in "
                           f"{conn.ref}")
    if "timeout" in lowered or "timed out" in lowered:
        return SourceError(f"{where}: cannot connect to {conn.shown} within {timeout} "
                           f"(sql.timeout): {text}", transient=True)
    return SourceError(f"{where}: cannot connect to {conn.shown}: {text}", transient=True)


def _query_error(exc: BaseException, conn: Database, spec: SqlSource,
                 where: str) -> Exception:
    from sqlalchemy.exc import OperationalError

    text = _driver_message(exc, conn)
    lowered = text.lower()
    state = _state(exc)
    field_ = f"{where}.query"
    if state in TIMEOUT_STATES or "statement timeout" in lowered or lowered == "interrupted" \
            or lowered.startswith("interrupt error"):
        return SourceError(f"{field_}: the query ran longer than {spec.timeout} "
                           f"({where}.timeout) at {conn.shown}; select less (a narrower "
                           "window, an index on the time column) or raise the timeout")
    if state in MISSING_TABLE_STATES or "no such table" in lowered:
        return SourceError(f"{field_}: {text} at {conn.shown}; check the table name, the "
                           "schema and the search_path")
    if state in READ_ONLY_STATES or "readonly" in lowered or "read-only" in lowered:
        return DataError(f"{field_}: the query tried to write ({text}); it runs read-only: "
                         "use a SELECT")
    if isinstance(exc, OperationalError) and state is None and "no such" not in lowered \
            and "syntax" not in lowered:
        return SourceError(f"{where}: the connection to {conn.shown} failed during the "
                           f"query: {text}", transient=True)
    return DataError(f"{field_}: the query failed at {conn.shown}: {text}; fix the query "
                     "(a column or table may have been renamed or retyped)")


# ------------------------------------------------------------------------------ binding


def sqlite_time(value: datetime) -> str:
    """A UTC time as SQLite's datetime() writes it, so text comparisons order correctly:
    ``YYYY-MM-DD HH:MM:SS``, with ``.ffffff`` only when there are microseconds."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


def _bound(spec: SqlSource, ctx: LoadContext, where: str, backend: str
           ) -> tuple[Any, dict[str, datetime | str]]:
    from sqlalchemy import DateTime, String, bindparam, text

    stmt = text(spec.query)
    names = list(stmt.compile().params)
    unknown = [n for n in names if n not in WINDOW_PARAMS]
    if unknown:
        raise DataError(f"{where}.query: unknown parameter {', '.join(':' + n for n in unknown)}"
                        "; only :window_start and :window_end are bound (write a literal "
                        "colon as \\:)")
    values: dict[str, datetime | str] = {}
    for name in names:
        value = ctx.window_start if name == "window_start" else ctx.window_end
        if value is None:
            fix = ("set spec.current.window" if ctx.role.endswith("current.source")
                   else "only spec.current.source has a window; remove it from this query")
            raise DataError(f"{where}.query: uses :{name} but there is no window: {fix}")
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        values[name] = sqlite_time(value) if backend == "sqlite" else value
    if names:
        kind = String() if backend == "sqlite" else DateTime(timezone=True)
        stmt = stmt.bindparams(*(bindparam(n, type_=kind) for n in names))
    return stmt, values


# ------------------------------------------------------------------------------ running


def _prepare(conn: Connection, backend: str, seconds: float) -> Callable[[], None]:
    """Make the open transaction read-only with a statement timeout; returns the undo."""
    from sqlalchemy import text

    if backend == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                     {"ms": str(max(1, round(seconds * 1000)))})
        return lambda: None
    if backend == "sqlite":
        raw: Any = conn.connection.dbapi_connection
        deadline = time.monotonic() + seconds
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline),
                                 SQLITE_PROGRESS_OPS)
        conn.exec_driver_sql("PRAGMA query_only = ON")

        def undo() -> None:
            raw.set_progress_handler(None, 0)

        return undo
    if backend == "duckdb":
        # DuckDB has no statement timeout: a timer interrupts the connection's query.
        duck: Any = conn.connection.dbapi_connection
        timer = threading.Timer(seconds, duck.interrupt)
        timer.daemon = True
        timer.start()
        return timer.cancel
    return lambda: None


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """NUMERIC columns as floats and UUIDs as text, so that stats sees their kind."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object:
            continue
        present = series.dropna()
        if present.empty:
            continue
        if all(isinstance(v, decimal.Decimal | int | float) for v in present):
            frame[column] = pd.to_numeric(series.map(
                lambda v: float(v) if v is not None else None), errors="coerce")
        elif all(isinstance(v, uuid.UUID) for v in present):
            frame[column] = series.map(lambda v: str(v) if v is not None else None)
    return frame


def result_version(frame: pd.DataFrame) -> str:
    """A hash of a result's columns, types and values."""
    digest = hashlib.sha256("\t".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (arrays, JSON objects)
        digest.update(frame.to_json(orient="values", default_handler=str).encode())
    return f"sha256:{digest.hexdigest()}"


@contextmanager
def read_only(conn_info: Database, spec: SqlSource, where: str, backend: str,
              policy: Egress, isolation: str | None = None) -> Iterator[Connection]:
    """A connection to ``conn_info``'s database, for one read: opened under the egress
    policy (to the checked addresses), inside a transaction limited to ``spec.timeout``
    (and at ``isolation``, if given) that is rolled back afterwards; a driver's error
    becomes a ``SourceError`` or ``DataError`` naming ``where`` without any secret."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    seconds = parse_duration(spec.timeout).total_seconds()
    engine = _engine(conn_info, seconds, policy)
    pinned = _pinned.set(_destination(conn_info, policy,
                                      f"{conn_info.field} ({conn_info.ref})"))
    try:
        connection = engine.connect()
    except (DBAPIError, SQLAlchemyError) as exc:
        raise _connect_error(exc, conn_info, spec.timeout, where) from None
    finally:
        _pinned.reset(pinned)
    with connection:
        undo: Callable[[], None] = lambda: None  # noqa: E731
        try:
            if isolation is not None:
                connection.execute(text(f"SET TRANSACTION ISOLATION LEVEL {isolation}"))
            undo = _prepare(connection, backend, seconds)
            yield connection
        except (DBAPIError, SQLAlchemyError) as exc:
            raise _query_error(exc, conn_info, spec, where) from None
        finally:
            undo()
            if connection.in_transaction():
                connection.rollback()


@register("sql")
def load_sql(source: Source, ctx: LoadContext) -> Loaded:
    """Run the query read-only with a timeout and a row limit; return its rows."""
    spec = source.sql
    assert spec is not None
    where = f"{ctx.role}.sql"
    budget_ = budget(source, ctx)
    _sqlalchemy()
    conn_info = _connection(spec, ctx, where)
    backend = conn_info.url.get_backend_name()
    stmt, params = _bound(spec, ctx, where, backend)
    with read_only(conn_info, spec, where, backend, ctx.policy.egress) as connection:
        result = connection.execution_options(stream_results=True).execute(stmt, params)
        keys = [str(k) for k in result.keys()]  # noqa: SIM118 (a Result, not a dict)
        rows = result.fetchmany(spec.max_rows + 1)
        result.close()
    if len(rows) > spec.max_rows:
        raise DataError(f"{where}.maxRows: the query returned more than {spec.max_rows} "
                        "rows; narrow the query (a shorter window, a sample) or raise "
                        "maxRows")
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise DataError(f"{where}.query: the query returns column {', '.join(twice)} more "
                        "than once; give each column its own name (AS ...)")
    frame = _normalise(pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys))
    del rows
    size = int(frame.memory_usage(deep=True, index=False).sum())
    if size > budget_.limit:
        raise budget_.exceeded(f"{len(frame)} rows taking {size} bytes in memory")
    if frame.columns.empty:
        raise DataError(f"{where}.query: the query returns no columns")
    return Loaded(frame=frame, version=result_version(frame))

"""The source registry, the errors every loader raises, and what a loader may use.

Part of ``sources`` (second stop on the data line). A loader turns one kind of
``spec.*.source`` into a DataFrame; a probe (optional, per kind) tells the data's version
without reading the data, so that a fitted reference can be reused until it changes.

Secrets and ConfigMaps reach loaders through ``LoadContext.resolver`` (a ``Resolver``), so
no loader knows of Kubernetes: the operator passes a resolver that reads the monitor's
namespace, ``modelmon check`` one that reads flags, environment variables and local YAML.

Messages name the field to fix (``spec.current.source.sql.query``) and never contain a
credential: loaders pass every text that might hold one through ``scrub``. Nor do they
quote the data: a source that cannot be parsed is reported by what was expected, its size
and the line number the parser gives (``unparsable``), never by its content.

Every source has a byte budget (``Budget``): the source's ``maxBytes``, by default the
administrator's ``Policy.max_bytes``, which it may not exceed. Loaders refuse at once a
size the store declares (Content-Length, object size) and count the bytes as they arrive;
going over fails the check with ``DataError`` (``InvalidData``) naming ``maxBytes``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import pandas as pd

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import Source, format_bytes, parse_bytes

log = logging.getLogger(__name__)

Outcome = TypeVar("Outcome")


class SourceError(Exception):
    """The data could not be reached: missing file, refused connection, timeout, auth.

    ``transient`` errors (refused or reset connections, HTTP 5xx, network time-outs) are
    retried with backoff by ``load``; the others (not found, forbidden, bad credentials)
    would fail the same way again and are reported at once.
    """

    reason = "SourceUnavailable"

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class DataError(Exception):
    """The data was reached but cannot be used: unreadable format, bad query, wrong shape."""

    reason = "InvalidData"


class MissingKeyError(SourceError):
    """The Secret or ConfigMap exists but has no such key (optional keys catch this)."""


class Resolver(Protocol):
    """Reads Secrets and ConfigMaps of the monitor's namespace.

    Both methods return the value as text and raise ``SourceError`` (``MissingKeyError``
    when only the key is missing) with a message that names the object and key but never
    contains the value.
    """

    def secret(self, name: str, key: str) -> str:
        """The value of ``key`` in Secret ``name``."""
        ...

    def config_map(self, name: str, key: str) -> str:
        """The value of ``key`` in ConfigMap ``name``."""
        ...


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a loader may need besides the source spec."""

    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative paths are resolved against."""
    columns: Sequence[str] | None = None
    """Columns the check needs; loaders that can read a subset read only these."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    role: str = "source"
    """Which source this is (spec.reference.source, spec.current.source), for messages."""
    resolver: Resolver | None = None
    """Where Secrets and ConfigMaps come from; None: sources that need one fail."""
    retries: int = 2
    """Extra attempts after a transient failure (0: fail at the first)."""
    retry_delay: float = 1.0
    """Seconds before the first retry; doubles with each further one."""
    policy: Policy = field(default_factory=Policy.local)
    """The administrator's bounds (local paths, egress, byte budget, opt-in labels)."""

    def need_resolver(self, what: str) -> Resolver:
        """The resolver, or a SourceError naming the field that needs it; the resolver's
        own errors (missing, not labeled, no such key) then name ``what`` too."""
        if self.resolver is None:
            raise SourceError(f"{what}: Secrets and ConfigMaps cannot be read here "
                              "(no resolver was configured)")
        return FieldResolver(self.resolver, what) if what else self.resolver


class FieldResolver:
    """A resolver whose errors start with the spec field that references the object."""

    def __init__(self, inner: Resolver, field: str) -> None:
        self.inner = inner
        self.field = field

    def _named(self, exc: SourceError) -> SourceError:
        return type(exc)(f"{self.field}: {exc}", transient=exc.transient)

    def secret(self, name: str, key: str) -> str:
        try:
            return self.inner.secret(name, key)
        except SourceError as exc:
            raise self._named(exc) from None

    def config_map(self, name: str, key: str) -> str:
        try:
            return self.inner.config_map(name, key)
        except SourceError as exc:
            raise self._named(exc) from None


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded dataset and a version tag that changes when the data changes."""

    frame: pd.DataFrame
    version: str


class Stream(Protocol):
    """A source read in batches instead of whole (``open_stream``): a window larger than
    memory. What it knows before reading the data, and passes over chosen columns."""

    @property
    def version(self) -> str:
        """The data's version, as ``Loaded.version``."""
        ...

    @property
    def columns(self) -> list[str]:
        """The source's columns."""
        ...

    @property
    def rows(self) -> int | None:
        """Rows of the whole source when its metadata tells them, else None."""
        ...

    def held_bytes(self, names: Sequence[str]) -> int | None:
        """About the bytes the columns ``names`` take loaded whole; None: unknown."""
        ...

    def largest_chunk(self, name: str) -> int:
        """Bytes of the largest piece of column ``name`` a read holds at once."""
        ...

    def batches(self, names: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """One pass over the source: the columns ``names`` it has, about ``rows`` rows
        at a time, each pass held to the byte budget afresh."""
        ...


Loader = Callable[[Source, LoadContext], Loaded]
Probe = Callable[[Source, LoadContext], "str | None"]
Streamer = Callable[[Source, LoadContext], "Stream | None"]

_LOADERS: dict[str, Loader] = {}
_PROBES: dict[str, Probe] = {}
_STREAMERS: dict[str, Streamer] = {}


def register(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader for one kind of source."""

    def wrap(loader: Loader) -> Loader:
        if kind in _LOADERS:
            raise ValueError(f"source kind {kind!r} registered twice")
        _LOADERS[kind] = loader
        return loader

    return wrap


def register_probe(kind: str) -> Callable[[Probe], Probe]:
    """Decorator: register the cheap version probe of one kind of source."""

    def wrap(probe: Probe) -> Probe:
        if kind in _PROBES:
            raise ValueError(f"version probe for {kind!r} registered twice")
        _PROBES[kind] = probe
        return probe

    return wrap


def register_stream(kind: str) -> Callable[[Streamer], Streamer]:
    """Decorator: register how one kind of source is opened for streamed reads."""

    def wrap(streamer: Streamer) -> Streamer:
        if kind in _STREAMERS:
            raise ValueError(f"streamer for {kind!r} registered twice")
        _STREAMERS[kind] = streamer
        return streamer

    return wrap


def source_kinds() -> list[str]:
    """Registered kinds of source."""
    return sorted(_LOADERS)


def _kind(source: Source, ctx: LoadContext) -> str:
    if source.kind not in _LOADERS:
        raise SourceError(
            f"{ctx.role}: unknown kind of source {source.kind!r}; "
            f"use one of: {', '.join(source_kinds())}")
    return source.kind


def retrying(call: Callable[[], Outcome], ctx: LoadContext) -> Outcome:
    """``call()``, again after each transient ``SourceError``, up to ``ctx.retries`` times,
    waiting ``ctx.retry_delay`` seconds and twice as long before each further attempt."""
    attempt = 0
    while True:
        try:
            return call()
        except SourceError as exc:
            if not exc.transient or attempt >= ctx.retries:
                raise
            delay = ctx.retry_delay * 2 ** attempt
            attempt += 1
            log.info("%s: retrying in %.1fs (attempt %d of %d): %s", ctx.role, delay,
                     attempt + 1, ctx.retries + 1, exc)
            time.sleep(delay)


def load(source: Source, ctx: LoadContext) -> Loaded:
    """Load a source with the loader of its kind, retrying transient failures."""
    loader = _LOADERS[_kind(source, ctx)]
    return retrying(lambda: loader(source, ctx), ctx)


def version(source: Source, ctx: LoadContext) -> str | None:
    """The data's current version without reading the data, or None if that cannot be told
    cheaply (the data must then be loaded; its ``Loaded.version`` is a content hash).

    When it is not None it equals the ``Loaded.version`` a load would return now.
    """
    probe = _PROBES.get(_kind(source, ctx))
    if probe is None:
        return None
    return retrying(lambda: probe(source, ctx), ctx)


def open_stream(source: Source, ctx: LoadContext) -> Stream | None:
    """The source opened for streamed reads (its metadata read, retrying transient
    failures), or None when its kind or format is only loaded whole. A failure during a
    pass over it is not retried: the check fails and the next one tries again."""
    streamer = _STREAMERS.get(_kind(source, ctx))
    if streamer is None:
        return None
    return retrying(lambda: streamer(source, ctx), ctx)


CHUNK = 1 << 20
"""Bytes asked for per read of a stream."""


@dataclass(slots=True)
class Budget:
    """The bytes one source may bring in, and those it brought so far (every file, page or
    answer of the source together)."""

    limit: int
    field: str
    """The ``maxBytes`` field, for messages (``spec.current.source.maxBytes``)."""
    raisable: bool = False
    """Whether the monitor's ``maxBytes`` could be raised (it is below the operator's)."""
    used: int = 0

    def declare(self, size: int | None, what: str = "size") -> None:
        """Refuse at once a ``size`` a store tells before sending it (``what``: where the
        size comes from, e.g. ``Content-Length``)."""
        if size is not None and self.used + size > self.limit:
            raise self.exceeded(f"{what} {size}")

    def take(self, count: int) -> None:
        """Count ``count`` more bytes read; refuse when the budget is spent."""
        self.used += count
        if self.used > self.limit:
            raise self.exceeded(f"stopped after {self.used} bytes")

    def exceeded(self, seen: str) -> DataError:
        """The InvalidData error of a source over its budget."""
        fix = ("raise maxBytes or narrow the window" if self.raisable else
               "narrow the window (or the query or prefix); an administrator sets the "
               "operator's limit with modelmon run --max-source-bytes")
        return BudgetError(f"{self.field}: the source has more than {self.limit} bytes "
                           f"({seen}); {fix}")


def budget(source: Source, ctx: LoadContext) -> Budget:
    """The byte budget of ``source``: its ``maxBytes``, by default the administrator's."""
    admin = ctx.policy.max_bytes
    field_ = f"{ctx.role}.maxBytes"
    if source.max_bytes is None:
        return Budget(admin, field_)
    own = parse_bytes(source.max_bytes)
    if own > admin:
        raise DataError(f"{field_}: {format_bytes(own)} is above the operator's limit of "
                        f"{format_bytes(admin)}; lower it, or ask an administrator to raise "
                        "modelmon run --max-source-bytes")
    return Budget(own, field_, raisable=own < admin)


class BudgetError(DataError):
    """A source brought, or declared, more bytes than its budget."""


_LINE = re.compile(r"\b(?:line|row)\s+(\d+)", re.IGNORECASE)


def unparsable(what: str, fmt: str, expected: str, size: int | None,
               exc: BaseException) -> str:
    """Why ``what`` could not be read as ``fmt``, without a byte of its content: what was
    expected, the bytes read, the parser's line number if it gives one, the error's type."""
    found = _LINE.search(str(exc))
    line_note = f" at line {found.group(1)}" if found else ""
    read = "" if size is None else ("it is empty; " if size == 0 else f"{size} bytes read; ")
    return (f"{what} is not readable as {fmt}{line_note}: expected {expected} ({read}"
            f"{type(exc).__name__})")


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret value in it replaced by ``***`` (longest first)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, "***")
    return text


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type), shortened for a status."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = re.sub(r"\s+", " ", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."

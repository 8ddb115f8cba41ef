"""The source registry and the errors every loader raises.

Part of ``sources`` (second stop on the data line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from modelmon.api.v1alpha1 import Source


class SourceError(Exception):
    """The data could not be reached: missing file, refused connection, timeout."""

    reason = "SourceUnavailable"


class DataError(Exception):
    """The data was reached but cannot be used: unreadable format, missing columns."""

    reason = "InvalidData"


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


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded dataset and a version tag that changes when the data changes."""

    frame: pd.DataFrame
    version: str


Loader = Callable[[Source, LoadContext], Loaded]

_LOADERS: dict[str, Loader] = {}


def register(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader for one kind of source."""

    def wrap(fn: Loader) -> Loader:
        if kind in _LOADERS:
            raise ValueError(f"source kind {kind!r} registered twice")
        _LOADERS[kind] = fn
        return fn

    return wrap


def source_kinds() -> list[str]:
    """Registered kinds of source."""
    return sorted(_LOADERS)


def load(source: Source, ctx: LoadContext) -> Loaded:
    """Load a source with the loader of its kind."""
    try:
        loader = _LOADERS[source.kind]
    except KeyError:
        raise SourceError(
            f"{ctx.role}: unknown kind of source {source.kind!r}; "
            f"use one of: {', '.join(source_kinds())}") from None
    return loader(source, ctx)

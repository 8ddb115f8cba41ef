"""Sources: load the reference data and the current window as pandas DataFrames.

Second stop on the data line: a registry maps each kind of ``spec.*.source`` to a loader;
loaders raise ``SourceError`` (unreachable, missing) or ``DataError`` (unreadable, wrong
shape) with messages that say what to fix and never contain credentials.
"""

from modelmon.sources.base import (
    DataError,
    LoadContext,
    Loaded,
    SourceError,
    load,
    source_kinds,
)

__all__ = ["DataError", "LoadContext", "Loaded", "SourceError", "load", "source_kinds"]

# Loaders register themselves on import.
from modelmon.sources import url as _url  # noqa: F401

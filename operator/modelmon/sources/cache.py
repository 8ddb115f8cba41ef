"""Reference caching: reuse what was built from a reference until its data changes.

Part of ``sources`` (second stop on the data line). The steady-state cost of a check
should be the cost of the current window, so the reference is read and fitted once per
version of its data. ``ReferenceCache.get`` asks the source's cheap version probe
(``sources.version``: a stat, a HEAD, an object's metadata, one listing; never the data)
and returns the value built last time while the version is unchanged. When the probe
cannot tell (SQL, an http server without ETag or Last-Modified) the data is loaded, and the
value is still reused if the loaded data's content hash is unchanged: only the fitting is
saved then.

What the value depends on besides the data is the caller's business: pass it as
``depends_on`` (for example the monitor's ``metadata.generation``), and key by monitor
(namespace, name) so that ``forget`` can drop a deleted monitor (or one another replica
checks now). A changed source spec is noticed here and rebuilds. Failures are never cached;
a failing probe raises like a failing load (the check reports SourceUnavailable rather than
use data it cannot verify).

The cache is bounded by bytes, not entries: a fitted reference takes from a few KiB to many
MiB, and a replica checks its monitors in a cycle, under which a bound smaller than the
cycle would miss every time. Each value's size is estimated once, when it is stored
(``estimated_bytes``: its arrays' buffers and the Python objects that reach them); the
least recently used keys go until the rest fit. A value larger than the whole budget is
still returned, for the check that built it, but not kept.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from modelmon.api.policy import DEFAULT_REFERENCE_CACHE_BYTES
from modelmon.api.v1alpha1 import Source
from modelmon.sources.base import LoadContext, Loaded, load, version

log = logging.getLogger(__name__)

Value = TypeVar("Value")

#: What ``estimated_bytes`` never counts: shared by every value (booleans, classes, modules,
#: functions without a closure, locks' and loggers' worlds) or not owned (weak references).
_SHARED = (bool, type, types.ModuleType, types.BuiltinFunctionType, types.CodeType,
           types.MethodType, weakref.ReferenceType, logging.Logger)


def estimated_bytes(value: object) -> int:
    """The memory ``value`` holds, estimated without copying it: numpy buffers by their
    ``nbytes`` (a view counts its base once), pandas objects by their own deep
    ``memory_usage``, and every Python object reached through containers, attributes,
    slots and closures by ``sys.getsizeof``, each counted once. Classes, modules and plain
    functions are shared and not counted. ``tests/unit/sources/test_cache_bytes.py``
    holds it against tracemalloc."""
    seen: set[int] = set()
    stack: list[object] = [value]
    total = 0
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += sys.getsizeof(obj)  # the header, and the buffer when it owns it
            if obj.base is not None:
                stack.append(obj.base)
            if obj.dtype.hasobject:
                stack.extend(obj.flat)
        elif isinstance(obj, pd.Index | pd.Series):
            total += sys.getsizeof(object()) + int(obj.memory_usage(deep=True))
        elif isinstance(obj, pd.DataFrame):
            total += sys.getsizeof(object()) + int(obj.memory_usage(deep=True).sum())
        elif isinstance(obj, str | bytes | int | float | complex | range):
            total += sys.getsizeof(obj)
        elif isinstance(obj, dict):
            total += sys.getsizeof(obj)
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            total += sys.getsizeof(obj)
            stack.extend(obj)
        elif isinstance(obj, types.FunctionType):
            if obj.__closure__:  # a closure holds what it captured (a module function not)
                total += sys.getsizeof(obj)
                stack.extend(_cell(cell) for cell in obj.__closure__)
        else:
            total += sys.getsizeof(obj)
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                stack.append(attributes)
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if name not in ("__dict__", "__weakref__"):
                        stack.append(getattr(obj, name, None))
    return total


def _cell(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


@dataclass(frozen=True, slots=True)
class Cached(Generic[Value]):
    """A value from the cache, and what getting it cost."""

    value: Value
    version: str
    """The version of the data the value was built from."""
    loaded: bool
    """The data was read for this call."""
    built: bool
    """``build`` ran for this call."""


@dataclass(frozen=True, slots=True)
class _Entry(Generic[Value]):
    spec: str
    version: str
    value: Value
    size: int
    """``size_of(value)``, estimated when it was stored."""


class ReferenceCache(Generic[Value]):
    """Values built from reference data, one per key, reused while the data is unchanged.

    Thread-safe; holds at most ``max_bytes`` of values (as ``size_of`` estimates each when
    it is stored), dropping the least recently used keys beyond it.
    """

    def __init__(self, max_bytes: int = DEFAULT_REFERENCE_CACHE_BYTES,
                 size_of: Callable[[Value], int] = estimated_bytes) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._entries: OrderedDict[Hashable, _Entry[Value]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        """Estimated bytes of the values held."""
        self.hits = 0
        """Calls answered from the probe alone."""
        self.loads = 0
        """Calls that read the data."""
        self.builds = 0
        """Calls that ran ``build``."""
        self.evictions = 0
        """Keys dropped to stay within ``max_bytes``."""
        self.oversized = 0
        """Values used once and not kept: larger than ``max_bytes`` alone."""

    def get(self, key: Hashable, source: Source, ctx: LoadContext,
            build: Callable[[Loaded], Value], *, depends_on: object = None) -> Cached[Value]:
        """The value for ``key``: cached if the source's version is unchanged, else built
        from a fresh load. ``depends_on`` is what else ``build`` depends on (e.g. the
        monitor's generation): a different one rebuilds. Raises what ``load``, the probe or
        ``build`` raise."""
        spec = f"{source.model_dump_json(by_alias=True)}\n{depends_on!r}"
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry.spec != spec:
            entry = None
        if entry is not None:
            now = version(source, ctx)
            if now is not None and now == entry.version:
                with self._lock:
                    self.hits += 1
                    if key in self._entries:
                        self._entries.move_to_end(key)
                return Cached(entry.value, now, loaded=False, built=False)
        loaded = load(source, ctx)
        with self._lock:
            self.loads += 1
        if entry is not None and loaded.version == entry.version:
            value, built, size = entry.value, False, entry.size
        else:
            value, built = build(loaded), True
            size = self.size_of(value)  # outside the lock: it walks the value
            with self._lock:
                self.builds += 1
        self._keep(key, _Entry(spec, loaded.version, value, size))
        return Cached(value, loaded.version, loaded=True, built=built)

    def _keep(self, key: Hashable, entry: _Entry[Value]) -> None:
        """Store ``entry`` as the most recently used, then drop the least recently used
        keys until the values fit in ``max_bytes``; one that alone does not is not kept."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            if entry.size > self.max_bytes:
                self.oversized += 1
            else:
                self._entries[key] = entry
                self.bytes += entry.size
                while self.bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self.bytes -= dropped.size
                    self.evictions += 1
        if entry.size > self.max_bytes:
            named = "/".join(map(str, key)) if isinstance(key, tuple) else key
            log.debug("reference of %s not cached: about %d bytes, more than the whole "
                      "cache (modelmon run --reference-cache-bytes %d); it is read and "
                      "fitted at every check", named, entry.size, self.max_bytes)

    def forget(self, key: Hashable) -> None:
        """Drop one key (its monitor was deleted, or another replica checks it now)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.bytes -= entry.size

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

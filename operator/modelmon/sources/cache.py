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
(namespace, name) so that ``forget`` can drop a deleted monitor. A changed source spec is
noticed here and rebuilds. Failures are never cached; a failing probe raises like a
failing load (the check reports SourceUnavailable rather than use data it cannot verify).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelmon.api.v1alpha1 import Source
from modelmon.sources.base import LoadContext, Loaded, load, version

Value = TypeVar("Value")


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


class ReferenceCache(Generic[Value]):
    """Values built from reference data, one per key, reused while the data is unchanged.

    Thread-safe; the least recently used keys are dropped beyond ``capacity``.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, _Entry[Value]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        """Calls answered from the probe alone."""
        self.loads = 0
        """Calls that read the data."""
        self.builds = 0
        """Calls that ran ``build``."""

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
            value, built = entry.value, False
        else:
            value, built = build(loaded), True
            with self._lock:
                self.builds += 1
        with self._lock:
            self._entries[key] = _Entry(spec, loaded.version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return Cached(value, loaded.version, loaded=True, built=built)

    def forget(self, key: Hashable) -> None:
        """Drop one key (its monitor was deleted)."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

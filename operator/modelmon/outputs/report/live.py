"""What the operator keeps to serve its live report: per monitor, the last check and a
bounded history. Part of ``outputs.report``.

The fleet (``worker``) records each finished check here (``LiveReports.record``): the spec
it ran, the status it published, the columns' shapes it computed
(``check.run_check_with_shapes``) and one ``HistoryPoint``; a deleted monitor is forgotten.
The report server (``outputs.report.server``) reads it from its own thread. Memory is
bounded per monitor, beyond the spec and status the operator holds anyway:

- the history: at most ``HISTORY_BYTES`` (256 KiB), oldest points dropped first. Sizes are
  counted by ``sys.getsizeof`` over every object the points hold, each shared object once
  (a point shares its feature and metric names, and a features tuple equal to the
  previous point's, with the previous point), plus ``LEDGER_ENTRY_BYTES`` per shared
  object for the bookkeeping. A point of a monitor of more than about 150 features keeps
  its numbers but not the names of its features;
- the plots' counts (``stats.dataset.ColumnShape``): at most ``SHAPES_BYTES`` (1 MiB),
  the worst columns first (the drift table's order); the others keep no plot and say why.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime

import numpy as np

from modelmon.api.v1alpha1 import ModelMonitorSpec, ModelMonitorStatus
from modelmon.outputs.report.inputs import HistoryPoint
from modelmon.outputs.report.page import drift_rows
from modelmon.stats.dataset import ColumnShape

#: The most a monitor's history may hold, in bytes.
HISTORY_BYTES = 256 * 1024
#: The most a monitor's plots (the last check's column shapes) may hold, in bytes.
SHAPES_BYTES = 1024 * 1024
#: What the ledger itself spends per object it counts (a dict entry and its list).
LEDGER_ENTRY_BYTES = 256
#: A point larger than this share of the history's limit (a monitor of a thousand
#: features) keeps its numbers but not the names of its features.
NAMES_SHARE = 1 / 16
#: Why a column has no plot when the plots of the others took the whole budget.
NOT_KEPT = (f"not kept: the live report keeps at most {SHAPES_BYTES // 1024} KiB of plots "
            "per monitor, the worst columns first (modelmon report draws every column)")


def _parts(obj: object, seen: set[int]) -> Iterator[object]:
    """``obj`` and every object it holds (dataclasses, containers, arrays), each once."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, str | bytes | int | float | bool | datetime | np.ndarray) \
                or item is None:
            continue
        if isinstance(item, Mapping):
            for key, value in item.items():
                stack.extend((key, value))
        elif isinstance(item, tuple | list | set | frozenset):
            stack.extend(item)
        elif is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in fields(item))


def _size(item: object) -> int:
    size = sys.getsizeof(item)
    if isinstance(item, np.ndarray) and item.base is not None:
        size += item.nbytes  # a view: its data is held elsewhere, and kept alive by it
    return size


def deep_size(obj: object) -> int:
    """Bytes held by ``obj`` and everything it holds, each object counted once."""
    return sum(_size(item) for item in _parts(obj, set()))


class History:
    """A ring of ``HistoryPoint``s bounded in bytes: appending past ``limit`` drops the
    oldest points. ``nbytes`` counts every object the points hold once, however many
    points share it, and the ledger's own entries."""

    def __init__(self, limit: int = HISTORY_BYTES) -> None:
        self.limit = limit
        self.points: deque[HistoryPoint] = deque()
        self._held: dict[int, list[int]] = {}
        """id of each object held -> [its size, how many points hold it]."""
        self._high = 0
        """The most entries the ledger's table has held since it was last rebuilt."""
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.points)

    def _compact(self, point: HistoryPoint) -> HistoryPoint:
        """The point with its names shared with the previous point's: the same features
        tuple when equal (a monitor scores the same features check after check), and the
        same string objects for the drifted features and the metrics."""
        last = self.points[-1] if self.points else None
        names: dict[str, str] = {}
        if last is not None:
            for name in (*last.features, *last.performance, *last.estimated):
                names.setdefault(name, name)
        features = tuple(names.setdefault(f, f) for f in point.features)
        if last is not None and last.features == features:
            features = last.features
        drifted = (None if point.drifted is None
                   else tuple(names.setdefault(f, f) for f in point.drifted))
        point = replace(point, features=features, drifted=drifted,
                        performance={names.setdefault(k, k): v
                                     for k, v in point.performance.items()},
                        estimated={names.setdefault(k, k): v
                                   for k, v in point.estimated.items()})
        if deep_size(point) > self.limit * NAMES_SHARE:
            point = replace(point, features=(), drifted=None)
        return point

    def _count(self, point: HistoryPoint, step: int) -> None:
        """Add (``step`` 1) or remove (-1) what ``point`` holds: the names and the features
        tuple, which points share, once each through the ledger; the rest, its own, as is."""
        own = 0
        for item in _parts(point, set()):
            if not (isinstance(item, str) or item is point.features):
                own += _size(item)
                continue
            entry = self._held.get(id(item))
            if entry is None:
                entry = self._held[id(item)] = [_size(item) + LEDGER_ENTRY_BYTES, 0]
                self.nbytes += entry[0]
            entry[1] += step
            if entry[1] == 0:
                del self._held[id(item)]
                self.nbytes -= entry[0]
        self.nbytes += step * own

    def append(self, point: HistoryPoint) -> None:
        """Add the latest check (replacing one of the same time), then drop the oldest
        points until the ring fits its limit; a point larger than the limit alone is not
        kept."""
        if self.points and self.points[-1].time == point.time:
            self._count(self.points.pop(), -1)
        point = self._compact(point)
        self.points.append(point)
        self._count(point, +1)
        while self.nbytes > self.limit and self.points:
            self._count(self.points.popleft(), -1)
        if len(self._held) < self._high // 4:  # a dict never shrinks its table itself
            self._held = dict(self._held)
            self._high = len(self._held)
        self._high = max(self._high, len(self._held))

    def snapshot(self) -> tuple[HistoryPoint, ...]:
        return tuple(self.points)


def bounded_shapes(status: ModelMonitorStatus, shapes: Mapping[str, ColumnShape],
                   limit: int = SHAPES_BYTES) -> dict[str, ColumnShape]:
    """The shapes of the worst columns (the drift table's order, then the rest) while they
    fit in ``limit`` bytes; the others without a plot and with the reason."""
    order = [r.column.name for r in drift_rows(status) if r.column.name in shapes]
    order += [name for name in shapes if name not in set(order)]
    kept: dict[str, ColumnShape] = {}
    used = 0
    for name in order:
        shape = shapes[name]
        size = deep_size(shape)
        if used + size > limit:
            shape = ColumnShape(shape.name, shape.role, None, NOT_KEPT)
            size = deep_size(shape)
        used += size
        kept[name] = shape
    return {name: kept[name] for name in shapes}


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """One monitor as the report server shows it (a snapshot: never changes)."""

    namespace: str
    name: str
    spec: ModelMonitorSpec | None
    """None when the spec does not parse (the status says why)."""
    status: ModelMonitorStatus
    shapes: Mapping[str, ColumnShape] = field(default_factory=dict)
    history: tuple[HistoryPoint, ...] = ()


@dataclass
class _Kept:
    spec: ModelMonitorSpec | None
    status: ModelMonitorStatus
    shapes: dict[str, ColumnShape]
    history: History


class LiveReports:
    """Every watched monitor's last check and history; safe to read from another thread."""

    def __init__(self, history_bytes: int = HISTORY_BYTES,
                 shapes_bytes: int = SHAPES_BYTES) -> None:
        self.history_bytes = history_bytes
        self.shapes_bytes = shapes_bytes
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], _Kept] = {}

    def seed(self, key: tuple[str, str], spec: ModelMonitorSpec | None,
             status: ModelMonitorStatus) -> None:
        """A monitor seen for the first time (at start-up: its stored status): shown from
        its status and the history the status keeps, without plots until its next check."""
        history = History(self.history_bytes)
        for summary in status.history:
            history.append(HistoryPoint.from_summary(summary))
        with self._lock:
            self._kept[key] = _Kept(spec, status, {}, history)

    def record(self, key: tuple[str, str], spec: ModelMonitorSpec | None,
               status: ModelMonitorStatus, shapes: Mapping[str, ColumnShape],
               failed: bool) -> None:
        """A finished check: its spec, the status published and its shapes. A failed check
        keeps the previous plots (its status keeps the previous figures too) and adds the
        failure, as status.history does, to the history."""
        if failed:
            point = (HistoryPoint.from_summary(status.history[-1]) if status.history
                     else None)
        else:
            point = HistoryPoint.from_status(status)
        plotted = bounded_shapes(status, shapes, self.shapes_bytes) if shapes else {}
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                kept = self._kept[key] = _Kept(spec, status, {}, History(self.history_bytes))
            kept.spec, kept.status = spec, status
            if plotted or not failed:
                kept.shapes = plotted
            if point is not None:
                kept.history.append(point)

    def forget(self, key: tuple[str, str]) -> None:
        """The monitor was deleted."""
        with self._lock:
            self._kept.pop(key, None)

    def get(self, namespace: str, name: str) -> LiveEntry | None:
        with self._lock:
            kept = self._kept.get((namespace, name))
            if kept is None:
                return None
            return LiveEntry(namespace, name, kept.spec, kept.status, kept.shapes,
                             kept.history.snapshot())

    def entries(self) -> list[LiveEntry]:
        """Every monitor, by namespace and name, without its history."""
        with self._lock:
            return [LiveEntry(ns, name, kept.spec, kept.status, kept.shapes)
                    for (ns, name), kept in sorted(self._kept.items())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

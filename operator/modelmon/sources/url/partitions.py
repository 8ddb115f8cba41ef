"""Date partitions of the ``url`` source: the time a file's directories cover.

Part of ``sources`` (second stop on the data line), used by the listing: with
``prunePartitions``, a file under ``date=``/``dt=``/``ds=``/``day=``, ``year=/month=/day=``
(and optionally ``hour=``) directories is read only when that interval meets the window.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from modelmon.sources.base import LoadContext

_SEGMENT = re.compile(r"^([A-Za-z_]+)=([0-9-]+)$")
_DATE_KEYS = ("date", "dt", "ds", "day")


def _parse_day(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)


def partition_interval(relative: str) -> tuple[datetime, datetime] | None:
    """The UTC interval ``[start, end)`` a file's partition directories cover, if any.

    ``a/date=2026-11-24/hour=07/part.parquet`` covers 07:00 to 08:00 on that day;
    ``year=2026/month=11/part.csv`` the whole month; ``part.csv`` nothing (None).
    """
    keys: dict[str, str] = {}
    for segment in relative.split("/")[:-1]:
        match = _SEGMENT.match(segment)
        if match:
            keys[match.group(1).lower()] = match.group(2)
    try:
        start: datetime | None = None
        for key in _DATE_KEYS:
            if key in keys and (day := _parse_day(keys[key])) is not None:
                start, end = day, day + timedelta(days=1)
                break
        if start is None and "year" in keys:
            start = datetime(int(keys["year"]), 1, 1, tzinfo=UTC)
            end = start.replace(year=start.year + 1)
            if "month" in keys:
                start = start.replace(month=int(keys["month"]))
                end = _next_month(start)
                if "day" in keys:
                    start = start.replace(day=int(keys["day"]))
                    end = start + timedelta(days=1)
        if start is None:
            return None
        if "hour" in keys and end - start == timedelta(days=1):
            start = start + timedelta(hours=int(keys["hour"]))
            end = start + timedelta(hours=1)
    except ValueError:  # month=13, day=32, ...: not a date partition after all
        return None
    return start, end


def in_window(relative: str, ctx: LoadContext) -> bool:
    """Whether the file's partition meets the window (a file outside any partition, or a
    load without a window, always does)."""
    interval = partition_interval(relative)
    if interval is None or ctx.window_start is None or ctx.window_end is None:
        return True
    start, end = interval
    return start < ctx.window_end and end > ctx.window_start

"""Caps on what the operator tells users: lists shortened to their first items, and a hard
length limit on every condition and Event message.

Part of ``api``: whatever a monitor's spec or data makes long (2,000 absent features, a
pydantic error per field) must still leave a readable ``kubectl describe`` and a status of
bounded size. ``evaluation.merge_conditions`` caps every condition message and
``outputs.kube.Kube.event`` every Event; the places that build lists use ``capped``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Items a message lists before it says "and N more".
LIST_ITEMS = 10
#: Bytes (UTF-8) of a condition or Event message. events.k8s.io/v1 limits an Event's note
#: to 1 kB; condition messages have no limit in the API, and share this one to stay readable.
MESSAGE_BYTES = 1024


def capped(items: Sequence[str], limit: int = LIST_ITEMS, sep: str = ", ") -> str:
    """``a, b and c``; past ``limit`` items, the first ``limit`` then ``and N more``."""
    if not items:
        return ""
    if len(items) > limit:
        return f"{sep.join(items[:limit])} and {len(items) - limit} more"
    if len(items) == 1:
        return items[0]
    return f"{sep.join(items[:-1])} and {items[-1]}"


def capped_lines(lines: Sequence[str], limit: int = LIST_ITEMS, sep: str = "; ") -> str:
    """Problems joined by ``sep``; past ``limit``, the first ones then ``and N more``
    (for lists of whole sentences, where a final "and" would read wrong)."""
    if len(lines) <= limit:
        return sep.join(lines)
    return f"{sep.join(lines[:limit])}{sep}and {len(lines) - limit} more"


def cap_text(text: str, limit: int = MESSAGE_BYTES) -> str:
    """``text`` if its UTF-8 form fits in ``limit`` bytes, else its start and a note of how
    much was cut, the whole within ``limit`` bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = len(data) - limit
    while True:
        note = f" … ({cut} more bytes)"
        keep = max(0, limit - len(note.encode()))
        head = data[:keep].decode(errors="ignore")
        real = len(data) - len(head.encode())
        if real == cut:
            return head + note
        cut = real

"""Turn pydantic validation errors into one line per field, named the way users write it.

Part of ``api``: ``modelmon validate``, ``modelmon check`` and the operator's InvalidSpec
condition all report problems through ``field_errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def field_path(loc: Sequence[int | str]) -> str:
    """``('spec', 'drift', 'features', 'x', 'method')`` -> ``spec.drift.features.x.method``.

    List indexes print as ``[i]``; pydantic's ``function-after[...]`` markers are dropped.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part and part.startswith(("function-", "tagged-union")):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _message(err: ErrorDetails) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        msg = "unknown field; check its spelling against `kubectl explain modelmonitor.spec`"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return msg


def field_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """``field: problem`` lines, one per error."""
    lines = []
    for err in exc.errors(include_url=False):
        path = field_path(err["loc"])
        msg = _message(err)
        # A model validator names the field inside its own message ("min: ...").
        head, sep, rest = msg.partition(": ")
        if sep and " " not in head and err["type"] == "value_error":
            path = f"{path}.{head}" if path else head
            msg = rest
        full = ".".join(p for p in (prefix, path) if p)
        lines.append(f"{full}: {msg}" if full else msg)
    return lines

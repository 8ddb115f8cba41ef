"""Structured log lines: the fields an SRE filters on, beside the readable message.

Part of ``api`` (the bottom of the data line, so every layer may log this way). A line is
logged with ``extra=fields(event=..., ...)``; ``runner.JsonFormatter`` writes those fields
as keys of the line's JSON object (the text format shows the message only, which says the
same in words). Values are what the status and the spec already hold: never a Secret's
value, a source's data or a URL's credentials.
"""

from __future__ import annotations

from typing import Any

#: The LogRecord attribute that carries the fields.
ATTRIBUTE = "modelmon_fields"


def fields(event: str, **values: Any) -> dict[str, Any]:
    """The ``extra`` of a structured line: ``event`` names what happened (check, spec,
    delete, rule, notification, ...); None values are left out."""
    return {ATTRIBUTE: {"event": event,
                        **{key: value for key, value in values.items() if value is not None}}}


def record_fields(record: object) -> dict[str, Any]:
    """The fields a log record carries (empty for an unstructured line)."""
    found = getattr(record, ATTRIBUTE, None)
    return dict(found) if isinstance(found, dict) else {}

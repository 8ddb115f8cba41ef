"""Names and label values derived from a monitor's name: valid and unique at any length.

Part of ``api`` (first stop on the data line): ``outputs`` names what it creates for a
monitor (its PrometheusRule, the ``modelmon.io/monitor`` label of that rule and of
retraining Jobs) through these helpers and nowhere else.

A monitor's name may have up to 253 characters (a DNS subdomain); an object name may too,
but a label value only 63, and anything a prefix makes longer than its limit has to be cut.
Cutting alone loses uniqueness (two names that share their first 244 characters would give
one object, silently owned by one of them) and validity (a cut ending in "." or "-" is
refused by the API server with HTTP 422). So a name that fits is kept as it is, and one
that does not becomes a prefix cut back to an alphanumeric character, a "-", and the first
``HASH_CHARS`` hex digits of the SHA-256 of the whole name: stable across restarts,
different for different names (a 40-bit digest), valid wherever the prefix was.

The PrometheusRule lives in the monitor's namespace, where monitor names are unique, so the
monitor's name alone is hashed. A short name could still be chosen to equal another
monitor's shortened one (prefix, "-", digest); ``outputs.kube`` never takes over a rule that
another monitor controls and reports it instead (``RuleNameTaken``), so even that collision
is loud, never a silently lost rule.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

#: Hex digits of SHA-256 added to a shortened name (40 bits).
HASH_CHARS = 10
#: The longest object name (a DNS subdomain) and the longest label value.
MAX_NAME = 253
MAX_LABEL_VALUE = 63
#: Prefix of the PrometheusRule generated for a monitor.
RULE_PREFIX = "modelmon-"


def bounded_name(full: str, max_len: int) -> str:
    """``full`` when it fits in ``max_len``; else a prefix of it that ends in a letter or
    digit, "-", and ``HASH_CHARS`` hex digits of the SHA-256 of ``full``.

    Valid wherever ``full`` is (a DNS subdomain, a DNS label, a label value): the prefix is
    a prefix of a valid name that ends in an alphanumeric character, and "-" followed by
    hex digits may follow one in each of those grammars.
    """
    if max_len <= HASH_CHARS:
        raise ValueError(f"max_len must exceed {HASH_CHARS}, got {max_len}")
    if len(full) <= max_len:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:HASH_CHARS]
    head = full[: max_len - HASH_CHARS - 1]
    while head and not (head[-1].isascii() and head[-1].isalnum()):
        head = head[:-1]
    return f"{head}-{digest}" if head else digest


def rule_name(monitor: str) -> str:
    """The name of a monitor's PrometheusRule (in the monitor's namespace, where monitor
    names are unique, so the monitor's name alone keeps it unique)."""
    return bounded_name(RULE_PREFIX + monitor, MAX_NAME)


def monitor_label(monitor: str) -> str:
    """The value of the ``modelmon.io/monitor`` label on objects made for a monitor."""
    return bounded_name(monitor, MAX_LABEL_VALUE)


def report_path(namespace: str, name: str) -> str:
    """The path of a monitor's live report on the operator's report port
    (``outputs.report.server``): ``/monitors/<namespace>/<name>``."""
    return f"/monitors/{quote(namespace, safe='')}/{quote(name, safe='')}"


def report_url(base: str | None, namespace: str, name: str) -> str | None:
    """The link to a monitor's live report under ``base`` (``modelmon run
    --report-base-url``), which notifications and the PrometheusRule's annotations carry;
    None without a base URL."""
    if not base:
        return None
    return base.rstrip("/") + report_path(namespace, name)

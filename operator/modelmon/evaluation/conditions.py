"""Conditions: the Kubernetes-style summary of a check, with stable transition times.

Part of ``evaluation`` (fourth stop on the data line). ``merge_conditions`` keeps
``lastTransitionTime`` while a condition's status holds; ``problem`` turns a family's
findings into its condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from modelmon.api.messages import cap_text, capped_lines
from modelmon.api.v1alpha1 import Condition, ConditionStatus, Finding

CONDITION_TYPES = (
    "Ready", "Reconciling", "Stalled", "SourceAvailable", "DataDrift", "PerformanceDegraded",
    "DataQualityDegraded",
    "OperationalDegraded", "EstimatedPerformanceDegraded", "ConfidenceDegraded",
    "AlertRulesReady")


@dataclass(frozen=True, slots=True)
class ConditionValue:
    """A condition without its transition time."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def problem(type_: str, found: Sequence[Finding], found_reason: str, fine_reason: str,
            fine: str) -> ConditionValue:
    """A problem condition: True (``found_reason``) with the first findings' messages,
    else False (``fine_reason``) with ``fine``."""
    if found:
        return ConditionValue(type_, "True", found_reason,
                              capped_lines([f.message for f in found], 5))
    return ConditionValue(type_, "False", fine_reason, fine)


def progress(ready: bool, reason: str, message: str, waiting: bool = False
             ) -> list[ConditionValue]:
    """Reconciling and Stalled, the kstatus conditions (what Flux's health checks and other
    kstatus readers look at) that go with Ready: both False when the check ran
    (``ready``); Reconciling while it waits for data (``waiting``); Stalled when it cannot
    run, until a check runs again."""
    if ready:
        return [ConditionValue("Reconciling", "False", reason, message),
                ConditionValue("Stalled", "False", reason, message)]
    if waiting:
        return [ConditionValue("Reconciling", "True", reason, message),
                ConditionValue("Stalled", "False", reason, "waiting for data, not stuck")]
    return [ConditionValue("Reconciling", "False", reason, message),
            ConditionValue("Stalled", "True", reason, message)]


def merge_conditions(previous: Iterable[Condition], values: Iterable[ConditionValue],
                     now: datetime, generation: int | None) -> list[Condition]:
    """New conditions, keeping lastTransitionTime where the status did not change; every
    message is capped (``api.messages.cap_text``).

    Conditions of types not among ``values`` are carried over unchanged.
    """
    before = {c.type: c for c in previous}
    out: list[Condition] = []
    seen: set[str] = set()
    for value in values:
        seen.add(value.type)
        old = before.get(value.type)
        since = (old.last_transition_time if old is not None and old.status == value.status
                 else now)
        out.append(Condition(type=value.type, status=value.status, reason=value.reason,
                             message=cap_text(value.message), last_transition_time=since,
                             observed_generation=generation))
    out.extend(c for t, c in before.items() if t not in seen)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(out, key=lambda c: order.get(c.type, len(order)))

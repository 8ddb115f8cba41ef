"""Checks without a verdict: why a check could not run, and the status that leaves.

Part of ``evaluation`` (fourth stop on the data line). The stages of a check raise a
``CheckError`` whose ``reason`` becomes the Ready condition's reason; ``failed_status``
keeps the previous figures (nothing recorded is lost) and decides the phase. A window
with fewer rows than ``min_rows`` gets no verdict at all (``enough_rows``).
"""

from __future__ import annotations

from datetime import datetime

from modelmon.api.v1alpha1 import Finding, ModelMonitorSpec, ModelMonitorStatus, Phase
from modelmon.evaluation.bounds import table
from modelmon.evaluation.conditions import ConditionValue, merge_conditions, progress
from modelmon.evaluation.summary import summarized


class CheckError(Exception):
    """A check that cannot run; ``reason`` becomes the Ready condition's reason."""

    reason = "CheckFailed"
    fix = ("an internal error of modelmon: report it with this line; the next check "
           "runs at the interval")


class InvalidSpecError(CheckError):
    """The spec passed the CRD but cannot work with this data (unknown column, ...)."""

    reason = "InvalidSpec"
    fix = "correct the spec field the message names (kubectl edit mm); checked again at once"


class SourceUnavailableError(CheckError):
    """A source could not be read (network, permissions, missing object)."""

    reason = "SourceUnavailable"
    fix = ("make the source the message names reachable and readable (address, Secret, "
           "permissions); retried with backoff up to the interval")


class InvalidDataError(CheckError):
    """A source was read but its data cannot be checked (format, columns, kinds)."""

    reason = "InvalidData"
    fix = ("correct the data the message names, or the spec's columns to match it; "
           "retried with backoff up to the interval")


class InsufficientDataError(CheckError):
    """Too few rows for a verdict."""

    reason = "InsufficientData"
    fix = ("none needed if the window is just quiet; else send more rows or lower "
           "spec.current.minRows")


#: Rows a window (and the reference) needs before a check gives a verdict, unless
#: ``spec.current.minRows`` says otherwise. 30 is where the tests of the ``auto`` rule
#: start to be meaningful: the chi-square test of homogeneity and the two-proportion
#: Z-test rely on expected counts of at least 5 per cell (Cochran's rule), which 30 rows
#: give for up to six equally frequent categories, and 30 is the usual floor for the
#: large-sample approximations behind KS and the metrics' averages. Evidently and NannyML
#: score a chunk of any size (NannyML returns NaN only where a metric cannot be
#: computed), so a header-only window reads as "no drift" there; here it reads as
#: InsufficientData, never Healthy.
DEFAULT_MIN_ROWS = 30


def min_rows(spec: ModelMonitorSpec) -> int:
    """The rows a window needs for a verdict: ``current.minRows``, else the default."""
    return spec.current.min_rows if spec.current.min_rows is not None else DEFAULT_MIN_ROWS


def enough_rows(rows: int, spec: ModelMonitorSpec, what: str, field: str) -> None:
    """Raise InsufficientData when ``rows`` is under the minimum; the message names the
    field that holds the data and the one that sets the minimum."""
    needed = min_rows(spec)
    if rows < needed:
        origin = ("spec.current.minRows" if spec.current.min_rows is not None else
                  "the default; spec.current.minRows can lower it to 1")
        raise InsufficientDataError(
            f"{field}: {what} has {rows} rows, fewer than the {needed} a verdict needs "
            f"({origin}); no verdict until it has more")


def fix_for(reason: str) -> str:
    """What to do about a check that failed with ``reason`` (a CheckError's reason)."""
    for kind in (InvalidSpecError, SourceUnavailableError, InvalidDataError,
                 InsufficientDataError):
        if kind.reason == reason:
            return kind.fix
    return CheckError.fix


def failed_status(previous: ModelMonitorStatus, exc: CheckError, now: datetime,
                  generation: int | None) -> ModelMonitorStatus:
    """The previous figures, phase Failing, and Ready=False with the reason."""
    source_ok = not isinstance(exc, SourceUnavailableError)
    waiting = isinstance(exc, InsufficientDataError)
    values = [ConditionValue("Ready", "False", exc.reason, str(exc)),
              *progress(False, exc.reason, str(exc), waiting=waiting),
              ConditionValue("SourceAvailable", "True" if source_ok else "False",
                             "SourcesRead" if source_ok else exc.reason,
                             "both sources were read" if source_ok else str(exc))]
    phase = phase_without_verdict(previous.phase) if isinstance(
        exc, InsufficientDataError) else "Failing"
    return summarized(previous.model_copy(update={
        "phase": phase,
        "observed_generation": generation,
        "conditions": merge_conditions(previous.conditions, values, now, generation),
    }))


def phase_without_verdict(previous: Phase) -> Phase:
    """The phase of a check that had too few rows for a verdict.

    Too few rows is no failure (the pipeline may just be quiet) but no evidence either:
    a problem the last verdict found (Drifting, Degraded) stands, so that its alerts do
    not resolve because data stopped arriving; anything else becomes Pending (no verdict),
    never Healthy. ModelMonitorStale fires if no check succeeds for three intervals.
    """
    return previous if previous in ("Drifting", "Degraded") else "Pending"


def failing_finding(spec: ModelMonitorSpec, status: ModelMonitorStatus, reason: str
                    ) -> Finding | None:
    """What notifiers hear while checks fail (the rule's ``check.failing`` row); too few
    rows is no failure, so it gives none."""
    if reason == InsufficientDataError.reason:
        return None
    (row,) = (r for r in table(spec) if r.name == "check.failing")
    ready = status.condition("Ready")
    return Finding(name=row.name, severity=row.severity, value=1.0, bound=0.0,
                   message=f"the check fails: {reason}: {ready.message if ready else ''}"[:500])

"""Evaluation: figures and bounds become findings, a phase and conditions.

Fourth stop on the data line. Nothing here computes statistics or performs I/O: it reads
the numbers a check produced and the bounds of the spec, and decides what they mean.
``bounds`` builds the table of every bound a spec sets (the rule's alerts are rendered
from it), ``judge`` holds a check's figures against it, ``schema`` diagnoses changed
columns, ``failures`` says what a check that could not run leaves, ``alert_rules`` words
AlertRulesReady, ``summary`` words the status for ``kubectl get``, and ``conditions``
keeps the conditions' transition times. Other packages import from here.
"""

from __future__ import annotations

from modelmon.evaluation.alert_rules import (
    rule_name_taken,
    rules_api_missing,
    rules_applied,
    rules_apply_failed,
    rules_disabled,
)
from modelmon.evaluation.bounds import (
    LABELS_MISSING,
    MIN_CHUNKS,
    Bound,
    ColumnThreshold,
    Limit,
    ThresholdSource,
    column_threshold,
    drift_threshold,
    learns_threshold,
    operational_bounds,
    rows_of,
    table,
)
from modelmon.evaluation.conditions import (
    CONDITION_TYPES,
    ConditionValue,
    merge_conditions,
    problem,
)
from modelmon.evaluation.failures import (
    DEFAULT_MIN_ROWS,
    CheckError,
    InsufficientDataError,
    InvalidDataError,
    InvalidSpecError,
    SourceUnavailableError,
    enough_rows,
    failed_status,
    failing_finding,
    fix_for,
    min_rows,
    phase_without_verdict,
)
from modelmon.evaluation.judge import (
    SEVERITY_RANK,
    Figures,
    at_least,
    column_drifted,
    column_verdict,
    drift_findings,
    drift_status,
    judge,
    phase_of,
    quality_condition,
    quality_findings,
    range_findings,
)
from modelmon.evaluation.schema import SchemaChanges, schema_changes, schema_failed_status
from modelmon.evaluation.summary import (
    findings_by_severity,
    phase_reason,
    summarized,
    summary,
    worst_finding,
)

__all__ = [
    "CONDITION_TYPES",
    "DEFAULT_MIN_ROWS",
    "LABELS_MISSING",
    "MIN_CHUNKS",
    "SEVERITY_RANK",
    "Bound",
    "CheckError",
    "ColumnThreshold",
    "ConditionValue",
    "Figures",
    "InsufficientDataError",
    "InvalidDataError",
    "InvalidSpecError",
    "Limit",
    "SchemaChanges",
    "SourceUnavailableError",
    "ThresholdSource",
    "at_least",
    "column_drifted",
    "column_threshold",
    "column_verdict",
    "drift_findings",
    "drift_status",
    "drift_threshold",
    "enough_rows",
    "failed_status",
    "failing_finding",
    "findings_by_severity",
    "fix_for",
    "judge",
    "learns_threshold",
    "merge_conditions",
    "min_rows",
    "operational_bounds",
    "phase_of",
    "phase_reason",
    "phase_without_verdict",
    "problem",
    "quality_condition",
    "quality_findings",
    "range_findings",
    "rows_of",
    "rule_name_taken",
    "rules_api_missing",
    "rules_applied",
    "rules_apply_failed",
    "rules_disabled",
    "schema_changes",
    "schema_failed_status",
    "summarized",
    "summary",
    "table",
    "worst_finding",
]

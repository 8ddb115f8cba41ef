"""Schema changes: monitored columns the current window lacks or holds with another kind
of values, told with the field that names each column and how to fix it.

Part of ``evaluation`` (fourth stop on the data line). Either change fails the check with
InvalidData (the figures would be wrong or partial) while the status still reports this
check's data quality, the changes among it. A target column missing from the window is no
change: labels often arrive later than predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from modelmon.api.messages import capped
from modelmon.api.v1alpha1 import (
    DataQualityStatus,
    Finding,
    ModelMonitorSpec,
    ModelMonitorStatus,
)
from modelmon.evaluation.conditions import ConditionValue, merge_conditions
from modelmon.evaluation.failures import InvalidDataError, failed_status
from modelmon.evaluation.summary import summarized
from modelmon.stats.dataset import is_numeric
from modelmon.stats.profile import FeatureKind

_ROLE_FIELDS = {"prediction": "spec.columns.prediction",
                "predictionProbability": "spec.columns.predictionProbability",
                "target": "spec.columns.target",
                "classProbabilities": "spec.columns.classProbabilities"}


@dataclass(frozen=True, slots=True)
class SchemaChanges:
    """The schema changes of one window and the message that explains them."""

    missing: list[str]
    """Features, then prediction columns, absent from the current window."""
    retyped: list[tuple[str, str, str]]
    """(column, reference kind, current kind) of monitored columns whose kind changed."""
    message: str = ""

    def __bool__(self) -> bool:
        return bool(self.missing or self.retyped)


def schema_changes(spec: ModelMonitorSpec, scored_kinds: Mapping[str, FeatureKind],
                   prediction: str | None, current: pd.DataFrame,
                   missing_features: Sequence[str],
                   retyped_features: Sequence[tuple[str, str, str]]) -> SchemaChanges:
    """The schema changes of the current window against the reference.

    ``scored_kinds`` holds the reference's kind of values of the prediction and target
    columns the check scores, ``prediction`` the scored prediction column;
    ``missing_features`` and ``retyped_features`` come from data quality, which checks the
    features.
    """
    roles = spec.columns.roles()
    predictions = [c for c in dict.fromkeys([prediction, spec.columns.prediction_probability])
                   if c is not None]
    missing = [*missing_features, *(c for c in predictions if c not in current.columns)]
    retyped = list(retyped_features)
    for name, before in scored_kinds.items():
        if name not in current.columns:
            continue
        series = current[name]
        kind = "numeric" if is_numeric(series) else "categorical"
        if kind != before and series.notna().any():
            retyped.append((name, before, kind))
    if not missing and not retyped:
        return SchemaChanges([], [])
    said: list[str] = []
    if missing:
        said.append("it lacks " + capped(
            [f"{c!r} ({_ROLE_FIELDS[roles[c]]})" if c in roles else repr(c) for c in missing]))
    said.extend(f"{c!r} holds {now} values where the reference holds {before} ones"
                for c, before, now in retyped)
    changed = [*missing, *(c for c, _, _ in retyped)]
    features = [c for c in changed if c not in roles]
    fixes: list[str] = []
    if features:
        named, them = capped([repr(c) for c in features]), (
            "it" if len(features) == 1 else "them")
        fixes.append(f"restore {named} upstream, or list {them} in spec.columns.exclude"
                     if spec.columns.features is None else
                     f"restore {named} upstream, or remove {them} from spec.columns.features")
    fixes.extend(f"restore {c!r} upstream, or correct {_ROLE_FIELDS[roles[c]]}"
                 for c in dict.fromkeys(changed) if c in roles)
    message = (f"spec.current.source: the current window's columns changed: "
               f"{'; '.join(said)}. To fix: {'; '.join(fixes)}")
    return SchemaChanges(missing, retyped, message)


def schema_failed_status(previous: ModelMonitorStatus, schema: SchemaChanges,
                         quality: DataQualityStatus, quality_findings: Sequence[Finding],
                         quality_condition: ConditionValue, now: datetime,
                         generation: int | None) -> ModelMonitorStatus:
    """Failing with InvalidData, yet with this check's data quality and its findings (the
    schema change among them); the other figures and findings are the previous ones."""
    failed = failed_status(previous, InvalidDataError(schema.message), now, generation)
    kept = [f for f in previous.findings if not f.name.startswith("dataQuality.")]
    return summarized(failed.model_copy(update={
        "data_quality": quality,
        "findings": [*kept, *quality_findings],
        "conditions": merge_conditions(failed.conditions, [quality_condition], now,
                                       generation),
    }))

"""The AlertRulesReady condition: whether the monitor's PrometheusRule is in place.

Part of ``evaluation`` (fourth stop on the data line), which words every condition. The
publisher (``outputs.publisher``) reports what writing the rule came to; these build the
condition it then merges into the status.
"""

from __future__ import annotations

from modelmon.evaluation.conditions import ConditionValue

CONDITION = "AlertRulesReady"


def rules_applied() -> ConditionValue:
    """The PrometheusRule matches the spec."""
    return ConditionValue(CONDITION, "True", "RuleApplied", "the PrometheusRule is up to date")


def rules_disabled() -> ConditionValue:
    """The spec turns the PrometheusRule off."""
    return ConditionValue(CONDITION, "False", "Disabled",
                          "spec.alerting.prometheusRule.enabled is false")


def rules_api_missing(message: str) -> ConditionValue:
    """The cluster serves no PrometheusRule API; ``message`` says what to install."""
    return ConditionValue(CONDITION, "False", "PrometheusRuleCRDMissing", message)


def rule_name_taken(message: str) -> ConditionValue:
    """Another owner controls a PrometheusRule of the same name; ``message`` names it."""
    return ConditionValue(CONDITION, "False", "RuleNameTaken", message)


def rules_apply_failed(http_status: int | None, http_reason: str | None) -> ConditionValue:
    """The API server refused the PrometheusRule with this HTTP status and reason."""
    return ConditionValue(CONDITION, "False", "ApplyFailed",
                          f"cannot write the PrometheusRule: HTTP {http_status} {http_reason}")

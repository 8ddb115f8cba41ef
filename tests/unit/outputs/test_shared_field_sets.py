"""share_field_sets: a kept status shares its models' fields-set sets, and nothing else
about it changes (its dump, equality, model_copy)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from modelmon.api.v1alpha1 import ModelMonitorStatus
from modelmon.check import run_check
from modelmon.outputs.publisher import share_field_sets, status_body
from modelmon.worker import _parsed

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "breast-cancer"


def _status() -> ModelMonitorStatus:
    spec = _parsed(yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())["spec"])
    assert spec is not None
    return run_check(spec, base_dir=EXAMPLE)


def test_two_statuses_share_their_models_sets_and_dump_the_same() -> None:
    first, second = _status(), _status()
    before = json.dumps(status_body(first), sort_keys=True, default=str)
    copy = first.model_copy(deep=True)
    assert share_field_sets(first) is first
    share_field_sets(second)
    assert json.dumps(status_body(first), sort_keys=True, default=str) == before
    assert first == copy
    assert first.drift is not None and second.drift is not None
    assert first.drift.__pydantic_fields_set__ is second.drift.__pydantic_fields_set__
    assert first.model_fields_set == copy.model_fields_set


def test_a_copy_with_an_update_does_not_change_the_shared_set() -> None:
    first, second = _status(), _status()
    share_field_sets(first)
    share_field_sets(second)
    shared = set(second.model_fields_set)
    first.model_copy(update={"estimation_reason": "x"})
    assert second.model_fields_set == shared

"""Message caps: lists shortened to their first items, condition and Event messages bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelmon.api.messages import MESSAGE_BYTES, cap_text, capped, capped_lines
from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.check import InvalidSpecError, parse_spec, run_check
from modelmon.evaluation import ConditionValue, merge_conditions

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_capped_lists_few_items_in_full() -> None:
    assert capped([]) == ""
    assert capped(["a"]) == "a"
    assert capped(["a", "b"]) == "a and b"
    assert capped([str(i) for i in range(10)]) == "0, 1, 2, 3, 4, 5, 6, 7, 8 and 9"


def test_capped_says_how_many_more() -> None:
    names = [f"f{i}" for i in range(2000)]
    assert capped(names) == "f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 and 1990 more"
    assert capped(names, 2) == "f0, f1 and 1998 more"
    assert capped_lines(["x: bad", "y: bad", "z: bad"], 2) == "x: bad; y: bad; and 1 more"
    assert capped_lines(["x: bad", "y: bad"], 2) == "x: bad; y: bad"


@pytest.mark.parametrize("text", ["a" * 5000, "é" * 3000, "a" + "€" * 2000, "x" * 1025])
def test_cap_text_fits_the_limit_in_bytes_and_counts_the_cut(text: str) -> None:
    out = cap_text(text)
    assert len(out.encode()) <= MESSAGE_BYTES
    head, _, note = out.rpartition(" … (")
    assert text.startswith(head) and note.endswith(" more bytes)")
    assert int(note.split()[0]) == len(text.encode()) - len(head.encode())


def test_cap_text_keeps_short_text() -> None:
    assert cap_text("x" * MESSAGE_BYTES) == "x" * MESSAGE_BYTES
    assert cap_text("short") == "short"


def test_every_condition_message_is_capped() -> None:
    [c] = merge_conditions([], [ConditionValue("Ready", "False", "InvalidSpec", "y" * 20_000)],
                           NOW, 1)
    assert len(c.message.encode()) <= MESSAGE_BYTES and c.message.startswith("yyyy")


def test_pydantic_errors_for_many_fields_show_ten_and_a_count() -> None:
    spec = {"model": {"name": "m", "task": "binaryClassification"},
            "reference": {"source": {"url": "ref.csv"}},
            "current": {"source": {"url": "cur.csv"}},
            "drift": {"features": {f"f{i}": {"method": "nosuch"} for i in range(2000)}}}
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    message = str(caught.value)
    assert message.count("spec.drift.features.") == 10
    assert message.startswith("spec.drift.features.f0.method: ")
    assert message.endswith("; and 1990 more")


def test_two_thousand_absent_features_show_ten_and_a_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.to_csv(tmp_path / "cur.csv", index=False)
    spec = ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "regression"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "columns": {"features": [f"absent{i}" for i in range(2000)]}})
    st = run_check(spec, base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.reason == "InvalidSpec"
    assert ready.message == (
        "spec.columns.features: 'absent0', 'absent1', 'absent2', 'absent3', 'absent4', "
        "'absent5', 'absent6', 'absent7', 'absent8', 'absent9' and 1990 more are not "
        "columns of the reference data (its columns: a and b)")


def test_a_window_lacking_many_features_names_ten_of_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({f"c{i}": rng.normal(size=60) for i in range(300)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ref[["c0"]].to_csv(tmp_path / "cur.csv", index=False)
    spec = ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "regression"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}}})
    st = run_check(spec, base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.reason == "InvalidData"
    assert "it lacks 'c1', 'c2'" in ready.message and "and 289 more" in ready.message
    assert len(ready.message.encode()) <= MESSAGE_BYTES and "'c11'" not in ready.message

"""Confidence end to end: the spec's validation, `modelmon check` on a multiclass model with
one probability column per class (status, table, findings), bad probabilities that leave
drift and data quality judged, the exported series and the generated rule's alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from classifier_data import CLASSES
from classifier_data import three_class_window as frame
from modelmon.api.errors import field_errors
from modelmon.api.v1alpha1 import Finding, ModelMonitorSpec, ModelMonitorStatus
from modelmon.cli import main
from modelmon.evaluation import table
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.notifiers.base import Message
from modelmon.outputs.notifiers.senders import alert_identity
from modelmon.outputs.rules import prometheus_rule
from promtool_rules import VALUE, alerts_fire_as_expected, checked_rules, expected_alert


def monitor(confidence: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "iris", "task": "multiclassClassification"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "columns": {"prediction": "species", "target": "label",
                    "classProbabilities": {c: f"p_{c}" for c in CLASSES}},
    }
    if confidence is not None:
        spec["confidence"] = confidence
    return {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
            "metadata": {"name": "iris", "namespace": "ml"}, "spec": spec}


BOUNDS = {"meanConfidence": {"min": 0.7, "severity": "critical"},
          "lowConfidenceShare": {"below": 0.6, "max": 0.2}}


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], current: pd.DataFrame,
          confidence: dict[str, Any] | None, *args: str) -> tuple[int, str]:
    frame(600, 1, 4.0).to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(monitor(confidence)))
    code = main(["check", str(path), *args])
    return code, capsys.readouterr().out


# ------------------------------------------------------------------------------- spec


def _errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        ModelMonitorSpec.model_validate(doc)
    return field_errors(info.value, prefix="spec")


def test_class_probabilities_and_the_positive_class_probability_exclude_each_other() -> None:
    doc = monitor(BOUNDS)["spec"]
    doc["columns"]["predictionProbability"] = "p_setosa"
    (line,) = _errors(doc)
    assert line.startswith("spec.columns.classProbabilities:") and "mutually exclusive" in line


@pytest.mark.parametrize(("bounds", "field"), [
    ({"meanConfidence": {"min": 1.2}}, "spec.confidence.meanConfidence.min"),
    ({"meanConfidence": {"max": -0.1}}, "spec.confidence.meanConfidence.max"),
    ({"meanConfidence": {"severity": "critical"}}, "spec.confidence.meanConfidence"),
    ({"lowConfidenceShare": {"below": 0, "max": 0.2}},
     "spec.confidence.lowConfidenceShare.below"),
    ({"lowConfidenceShare": {"below": 1.01, "max": 0.2}},
     "spec.confidence.lowConfidenceShare.below"),
    ({"lowConfidenceShare": {"max": 1.5}}, "spec.confidence.lowConfidenceShare.max"),
    ({"lowConfidenceShare": {"min": 0.5, "max": 0.2}},
     "spec.confidence.lowConfidenceShare.min"),
])
def test_confidence_bounds_are_validated_naming_the_field(bounds: dict[str, Any],
                                                           field: str) -> None:
    lines = _errors(monitor(bounds)["spec"])
    assert any(line.startswith(f"{field}:") for line in lines), lines


def test_bounds_at_the_edges_are_valid_and_below_defaults_to_0_6() -> None:
    spec = ModelMonitorSpec.model_validate(monitor({
        "meanConfidence": {"min": 0, "max": 1}, "lowConfidenceShare": {"below": 1, "max": 0},
    })["spec"])
    assert spec.confidence.low_confidence_share is not None
    assert spec.confidence.low_confidence_share.below == 1
    spec = ModelMonitorSpec.model_validate(monitor({"lowConfidenceShare": {"max": 0.1}})["spec"])
    assert spec.confidence.low_confidence_share is not None
    assert spec.confidence.low_confidence_share.below == 0.6


def test_confidence_bounds_need_probabilities_of_a_classifier() -> None:
    doc = monitor(BOUNDS)["spec"]
    del doc["columns"]["classProbabilities"]
    (line,) = _errors(doc)
    assert line.startswith("spec.confidence:") and "classProbabilities" in line
    # predictionProbability is the positive class of a binary classifier only.
    doc["columns"]["predictionProbability"] = "p_setosa"
    assert _errors(doc)[0].startswith("spec.confidence:")
    doc["model"]["task"] = "binaryClassification"
    doc["columns"]["prediction"] = None
    ModelMonitorSpec.model_validate(doc)


def test_class_probabilities_need_two_to_a_hundred_classes_and_a_classifier() -> None:
    doc = monitor()["spec"]
    doc["columns"]["classProbabilities"] = {"only": "p_only"}
    assert _errors(doc)[0].startswith("spec.columns.classProbabilities:")
    doc["columns"]["classProbabilities"] = {f"c{i}": f"p{i}" for i in range(101)}
    assert _errors(doc)[0].startswith("spec.columns.classProbabilities:")
    doc["columns"]["classProbabilities"] = {"a": "pa", "b": "pb"}
    doc["model"]["task"] = "regression"
    assert any(line.startswith("spec.columns.classProbabilities:") for line in _errors(doc))


# ------------------------------------------------------------------------------ check


def test_confidence_is_reported_without_bounds(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(tmp_path, capsys, frame(400, 2, 4.0), None, "-o", "json")
    status = json.loads(out)
    conf = status["confidence"]
    cur = frame(400, 2, 4.0)
    top = cur[[f"p_{c}" for c in CLASSES]].max(axis=1)
    assert conf["meanConfidence"] == pytest.approx(top.mean())
    assert conf["lowConfidenceShare"] == pytest.approx((top < 0.6).mean())
    assert conf["lowConfidenceBelow"] == 0.6 and conf["rows"] == 400
    assert conf["classShares"] == pytest.approx(
        {c: (cur["species"] == c).mean() for c in CLASSES})
    assert conf["reason"] is None
    # The probability columns have a role: they are not drifting features.
    assert [f["name"] for f in status["drift"]["features"]] == ["x1", "x2"]
    assert "ConfidenceDegraded" not in {c["type"] for c in status["conditions"]}
    assert code == 0


def test_a_breached_bound_is_a_finding_in_the_table_and_the_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A window of the same inputs whose model became unsure of itself.
    unsure = frame(400, 2, 0.4)
    code, out = check(tmp_path, capsys, unsure, BOUNDS)
    assert code == 1  # the meanConfidence bound is critical
    assert "confidence (400 rows):" in out
    assert "meanConfidence" in out and "classShare versicolor" in out
    assert "[critical] confidence.meanConfidence: meanConfidence" in out
    assert "[warning] confidence.lowConfidenceShare: lowConfidenceShare" in out
    code, out = check(tmp_path, capsys, unsure, BOUNDS, "-o", "json")
    status = json.loads(out)
    found = {f["name"]: f for f in status["findings"]}
    assert found["confidence.meanConfidence"]["bound"] == 0.7
    assert found["confidence.meanConfidence"]["value"] == pytest.approx(
        status["confidence"]["meanConfidence"])
    assert found["confidence.meanConfidence"]["value"] < 0.7
    assert found["confidence.lowConfidenceShare"]["value"] > 0.2
    assert "below 0.6" in found["confidence.lowConfidenceShare"]["message"]
    assert status["phase"] == "Degraded"
    (cond,) = [c for c in status["conditions"] if c["type"] == "ConfidenceDegraded"]
    assert cond["status"] == "True" and cond["reason"] == "OutOfBounds"


def test_a_confident_window_is_within_bounds(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(tmp_path, capsys, frame(400, 2, 6.0), BOUNDS, "-o", "json")
    status = json.loads(out)
    assert not [f for f in status["findings"] if f["name"].startswith("confidence.")]
    (cond,) = [c for c in status["conditions"] if c["type"] == "ConfidenceDegraded"]
    assert cond["status"] == "False" and cond["reason"] == "WithinBounds"
    assert code == 0


def test_renormalised_rows_are_counted(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cur = frame(400, 2, 4.0)
    cur.loc[:99, "p_setosa"] *= 0.5  # scores that do not sum to 1, on a quarter of the rows
    off = int((abs(cur[[f"p_{c}" for c in CLASSES]].sum(axis=1) - 1) > 1e-6).sum())
    assert 50 < off <= 100
    _, out = check(tmp_path, capsys, cur, None, "-o", "json")
    conf = json.loads(out)["confidence"]
    assert conf["renormalisedRows"] == off and conf["reason"] is None


@pytest.mark.parametrize(("value", "said"), [(1.5, "outside [0, 1]"),
                                             (np.nan, "missing (NaN)")])
def test_bad_probabilities_are_not_checked_and_never_fail_drift(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float, said: str) -> None:
    cur = frame(400, 2, 0.4)
    cur.loc[5, "p_versicolor"] = value
    code, out = check(tmp_path, capsys, cur, BOUNDS, "-o", "json")
    status = json.loads(out)
    reason = status["confidence"]["reason"]
    assert reason.startswith("spec.columns.classProbabilities.versicolor: ") and said in reason
    assert status["confidence"]["meanConfidence"] is None
    unchecked = {n["bound"]: n for n in status["notChecked"]}
    assert set(unchecked) == {"confidence.meanConfidence", "confidence.lowConfidenceShare"}
    assert unchecked["confidence.meanConfidence"]["field"] == "spec.confidence.meanConfidence"
    assert unchecked["confidence.meanConfidence"]["reason"] == reason
    (cond,) = [c for c in status["conditions"] if c["type"] == "ConfidenceDegraded"]
    assert cond["status"] == "Unknown" and cond["reason"] == "NotComputable"
    # Drift, data quality and performance are judged as usual.
    assert status["phase"] != "Failing" and status["drift"]["features"]
    assert status["dataQuality"]["columns"] and "accuracy" in status["performance"]
    assert not [f for f in status["findings"] if f["name"].startswith("confidence.")]
    assert code == 0
    _, table = check(tmp_path, capsys, cur, BOUNDS)
    assert f"confidence: not computed: {reason}" in table


def test_a_class_column_missing_from_the_window_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = check(tmp_path, capsys, frame(400, 2, 4.0).drop(columns="p_virginica"), None,
                   "-o", "json")
    status = json.loads(out)
    assert status["confidence"]["reason"] == (
        "spec.columns.classProbabilities.virginica: the current window has no column "
        "'p_virginica'")
    assert status["phase"] != "Failing"


def test_a_binary_classifier_gets_its_figures_from_the_positive_class(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 300), "score": rng.random(300)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ref.to_csv(tmp_path / "cur.csv", index=False)
    doc = {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
           "metadata": {"name": "b"},
           "spec": {"model": {"name": "b", "task": "binaryClassification"},
                    "reference": {"source": {"url": "ref.csv"}},
                    "current": {"source": {"url": "cur.csv"}},
                    "columns": {"predictionProbability": "score"}}}
    (tmp_path / "monitor.yaml").write_text(yaml.safe_dump(doc))
    main(["check", str(tmp_path / "monitor.yaml"), "-o", "json"])
    conf = json.loads(capsys.readouterr().out)["confidence"]
    p = ref["score"].to_numpy()
    assert conf["meanConfidence"] == pytest.approx(np.maximum(p, 1 - p).mean())
    assert conf["classShares"] == pytest.approx({"positive": (p >= 0.5).mean(),
                                                 "negative": (p < 0.5).mean()})


# ------------------------------------------------------------------ series and rule


def _status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ModelMonitorStatus:
    _, out = check(tmp_path, capsys, frame(400, 2, 0.4), BOUNDS, "-o", "json")
    return ModelMonitorStatus.model_validate(json.loads(out))


def test_series_carry_the_figures_and_class_shares(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = _status(tmp_path, capsys)
    assert status.confidence is not None
    metrics = Metrics()
    metrics.observe("ml", "iris", model="iris", status=status, seconds=0.1, last_success=1.0,
                    error=None)
    families = {f.name: f for f in metrics.registry.collect()}
    figures = {s.labels["figure"]: s.value for s in families["modelmon_confidence"].samples}
    assert figures == {"meanConfidence": status.confidence.mean_confidence,
                       "lowConfidenceShare": status.confidence.low_confidence_share}
    shares = {s.labels["class"]: s.value
              for s in families["modelmon_confidence_class_share"].samples}
    assert shares == status.confidence.class_shares and set(shares) == set(CLASSES)
    # A status without figures exports none (nor for the classes).
    blank = status.model_copy(update={"confidence": None})
    metrics.observe("ml", "iris", model="iris", status=blank, seconds=0.1, last_success=1.0,
                    error=None)
    families = {f.name: f for f in metrics.registry.collect()}
    assert not families["modelmon_confidence"].samples
    assert not families["modelmon_confidence_class_share"].samples


def _confidence_rules() -> dict[str, Any]:
    spec = monitor(BOUNDS)["spec"]
    spec["alerting"] = {"prometheusRule": {"for": "2m"}}
    return prometheus_rule("ml", "iris", ModelMonitorSpec.model_validate(spec))


def test_each_bound_is_one_alert_of_the_rule() -> None:
    rules = _confidence_rules()["spec"]["groups"][0]["rules"]
    mine = {r["labels"]["figure"]: r for r in rules if r["alert"] == "ModelConfidenceDegraded"}
    assert set(mine) == {"meanConfidence", "lowConfidenceShare"}
    assert mine["meanConfidence"]["labels"]["severity"] == "critical"
    assert mine["lowConfidenceShare"]["labels"]["severity"] == "warning"
    assert 'figure="meanConfidence"' in mine["meanConfidence"]["expr"]
    assert mine["meanConfidence"]["expr"].endswith("< 0.7")
    assert mine["lowConfidenceShare"]["expr"].endswith("> 0.2")
    assert "below 0.6" in mine["lowConfidenceShare"]["annotations"]["summary"]
    # Without bounds, the rule has no confidence alert (the figures are still exported).
    plain = prometheus_rule("ml", "iris", ModelMonitorSpec.model_validate(monitor()["spec"]))
    assert not [r for r in plain["spec"]["groups"][0]["rules"]
                if r["alert"] == "ModelConfidenceDegraded"]


def test_promtool_accepts_the_rule_and_the_alerts_fire_and_resolve(tmp_path: Path) -> None:
    obj = _confidence_rules()
    rules = checked_rules(tmp_path, obj)
    base = 'namespace="ml",monitor="iris",model="iris"'
    # Each figure: within bounds for 5 minutes, outside for 10, within again for 10.
    bad = {"meanConfidence": "0.5", "lowConfidenceShare": "0.4"}
    series = [(f'modelmon_confidence{{{base},figure="meanConfidence"}}', "0.9x5 0.5x10 0.9x10"),
              (f'modelmon_confidence{{{base},figure="lowConfidenceShare"}}',
               "0.1x5 0.4x10 0.1x10")]
    firing = [expected_alert(r, {"namespace": "ml", "monitor": "iris"},
                             {VALUE: bad[r["labels"]["figure"]]})
              for r in obj["spec"]["groups"][0]["rules"]
              if r["alert"] == "ModelConfidenceDegraded"]
    alerts_fire_as_expected(rules, series, "ModelConfidenceDegraded",
                            {"4m": [], "12m": firing, "24m": []})


def test_confidence_findings_are_pushed_as_their_rule_alerts() -> None:
    """The Alertmanager notifier names a confidence finding as the rule does: alertname and
    the figure label, which the rule's ``by (...)`` keeps."""
    spec = ModelMonitorSpec.model_validate(monitor(BOUNDS)["spec"])
    rules = prometheus_rule("ml", "iris", spec)["spec"]["groups"][0]["rules"]
    message = Message("ml", "iris", "iris", None, "Degraded",
                      datetime(2026, 12, 5, tzinfo=UTC), [], [], "key")
    for row in (r for r in table(spec) if r.family == "confidence"):
        finding = Finding(name=row.name, severity=row.severity, value=0.1, bound=0.7,
                          message="m")
        name, labels = alert_identity(finding, message)
        (rule,) = [r for r in rules if r["alert"] == name
                   and r["labels"].get("figure") == labels["figure"]]
        assert "by (namespace, monitor, figure)" in rule["expr"]
        assert rule["labels"]["severity"] == row.severity == finding.severity

"""The ModelMonitor CRD in a real apiserver: samples apply, docs and columns show, and
every monitor of the bad corpus is rejected with a message that names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import REPO_ROOT, Kubectl, manifest, table

from corpus import bad_cases, good_monitor, merge_patch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def sample_monitors() -> list[tuple[str, dict[str, Any]]]:
    """Every ModelMonitor document under examples/ and manifests/."""
    out = []
    for folder in ("examples", "manifests"):
        for path in sorted((REPO_ROOT / folder).rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "ModelMonitor":
                    out.append((str(path.relative_to(REPO_ROOT)), doc))
    return out


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    return doc


#: One good source of each kind (and the url options), as reference and as current data.
SOURCES: dict[str, dict[str, Any]] = {
    "url": {"url": "data/reference.parquet", "format": "parquet"},
    "url-prefix": {"url": "s3://bucket/events/", "prunePartitions": True,
                   "credentialsSecretRef": {"name": "s3"}},
    "configMap": {"configMap": {"name": "reference", "key": "reference.csv"}},
    "sql": {"sql": {"connectionSecretRef": {"name": "db", "key": "url"},
                    "query": "SELECT * FROM predictions"}},
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_every_kind_of_source_applies(kubectl: Kubectl, namespace: str, kind: str) -> None:
    """Defaults the apiserver fills in (prunePartitions: false, ...) must not trip the CEL
    rules of the other kinds."""
    doc = in_namespace(good_monitor(), namespace)
    doc["metadata"]["name"] = f"src-{kind.lower()}"
    doc["spec"]["reference"]["source"] = SOURCES[kind]
    doc["spec"]["current"]["source"] = SOURCES[kind]
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode == 0, done.stderr
    got = kubectl.json("get", "modelmonitor", doc["metadata"]["name"], "-n", namespace)
    assert got["spec"]["reference"]["source"].keys() >= SOURCES[kind].keys()


@pytest.mark.parametrize("source", [
    {"url": "s3://bucket/events/", "engine": "duckdb", "prunePartitions": True},
    {"url": "data/current.parquet", "engine": "duckdb"},
    {"url": "https://example.com/current", "format": "parquet", "engine": "duckdb"}])
def test_engine_monitors_apply(kubectl: Kubectl, namespace: str,
                               source: dict[str, Any]) -> None:
    """engine: duckdb on a current url of parquet files passes the CEL rules."""
    doc = in_namespace(good_monitor(), namespace)
    doc["metadata"]["name"] = f"engine-{len(source)}-{len(source['url'])}"
    doc["spec"]["current"]["source"] = source
    doc["spec"]["performance"]["metrics"] = [{"name": "accuracy", "min": 0.8}]  # no rocAuc
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode == 0, done.stderr


def test_pushdown_on_both_sides_applies(kubectl: Kubectl, namespace: str) -> None:
    """reference.source.sql.pushdown with the current window pushed down passes the CEL
    rules (learnThreshold left at its default, off)."""
    doc = in_namespace(good_monitor(), namespace)
    doc["metadata"]["name"] = "pushdown-both"
    for side, name in (("reference", "r"), ("current", "p")):
        doc["spec"][side]["source"] = {"sql": {
            "connectionSecretRef": {"name": "db", "key": "url"},
            "query": f"SELECT * FROM {name}", "pushdown": True}}
    doc["spec"]["performance"]["metrics"] = [{"name": "accuracy", "min": 0.8}]  # no rocAuc
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode == 0, done.stderr


#: Monitors with confidence bounds the apiserver must accept: a binary classifier's
#: positive-class probability, and one probability column per class (bounds at the edges).
CONFIDENCE: dict[str, dict[str, Any]] = {
    "binary": {"confidence": {"meanConfidence": {"min": 0.7, "severity": "critical"},
                              "lowConfidenceShare": {"max": 0.2}}},
    "classes": {"model": {"task": "multiclassClassification"},
                "columns": {"predictionProbability": None,
                            "classProbabilities": {"good": "p_good", "bad": "p_bad",
                                                   "risky client": "p_risky"}},
                "performance": {"metrics": [{"name": "accuracy", "min": 0.8}]},
                "confidence": {"meanConfidence": {"min": 0, "max": 1},
                               "lowConfidenceShare": {"below": 1, "min": 0, "max": 0}}},
}


@pytest.mark.parametrize("kind", sorted(CONFIDENCE))
def test_confidence_monitors_apply(kubectl: Kubectl, namespace: str, kind: str) -> None:
    doc = in_namespace(merge_patch(good_monitor(), {"spec": CONFIDENCE[kind]}), namespace)
    doc["metadata"]["name"] = f"confidence-{kind}"
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode == 0, done.stderr
    got = kubectl.json("get", "modelmonitor", doc["metadata"]["name"], "-n", namespace)
    stored, sent = got["spec"]["confidence"], doc["spec"]["confidence"]
    # The apiserver adds the defaults (severity: warning) and keeps what was sent.
    assert {f: {k: stored[f][k] for k in bound} for f, bound in sent.items()} == sent
    assert stored["lowConfidenceShare"]["severity"] == "warning"


#: Monitors with bounds on estimated performance the apiserver must accept, per task.
ESTIMATED: dict[str, dict[str, Any]] = {
    "binary": {"performance": {"estimated": {"metrics": [
        {"name": "rocAuc", "min": 0.8, "severity": "critical"}, {"name": "f1", "max": 0.99}]}}},
    "classes": {"model": {"task": "multiclassClassification"},
                "columns": {"predictionProbability": None,
                            "classProbabilities": {"good": "p_good", "bad": "p_bad"}},
                "performance": {"metrics": [{"name": "accuracy", "min": 0.8}],
                                "estimated": {"metrics": [{"name": "f1Macro", "min": 0.5},
                                                          {"name": "rocAuc", "min": 0.7}]}}},
    "regression": {"model": {"task": "regression"},
                   "columns": {"predictionProbability": None},
                   "performance": {"metrics": [{"name": "mae", "max": 3}],
                                   "estimated": {"metrics": [{"name": "rmse", "max": 4}]}}},
}


@pytest.mark.parametrize("kind", sorted(ESTIMATED))
def test_estimated_performance_monitors_apply(kubectl: Kubectl, namespace: str,
                                              kind: str) -> None:
    doc = in_namespace(merge_patch(good_monitor(), {"spec": ESTIMATED[kind]}), namespace)
    doc["metadata"]["name"] = f"estimated-{kind}"
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode == 0, done.stderr
    got = kubectl.json("get", "modelmonitor", doc["metadata"]["name"], "-n", namespace)
    sent = doc["spec"]["performance"]["estimated"]["metrics"]
    stored = got["spec"]["performance"]["estimated"]["metrics"]
    assert [{k: m[k] for k in sent[i]} for i, m in enumerate(stored)] == sent


def test_estimated_performance_status_survives_structural_pruning(
        kubectl: Kubectl, namespace: str) -> None:
    doc = in_namespace(merge_patch(good_monitor(), {"spec": ESTIMATED["binary"]}), namespace)
    doc["metadata"]["name"] = "estimated-status"
    kubectl("apply", "-f", "-", input=manifest(doc))
    status = {"estimatedPerformance": {"rocAuc": {"value": 0.7, "lower": 0.65, "upper": 0.75},
                                       "f1": {"value": 0.6, "lower": 0.5, "upper": 0.7}},
              "estimationReason": "spec.columns.target: every label of the reference is "
                                  "missing"}
    kubectl("patch", "mm", "estimated-status", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", manifest({"status": status}))
    stored = kubectl.json("get", "mm", "estimated-status", "-n", namespace)["status"]
    assert {k: stored[k] for k in status} == status


def test_samples_exist() -> None:
    assert sample_monitors(), "no ModelMonitor sample found under examples/ or manifests/"


@pytest.mark.parametrize(("path", "doc"), sample_monitors(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_sample_applies(kubectl: Kubectl, namespace: str, path: str,
                              doc: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=manifest(in_namespace(doc, namespace)))
    got = kubectl.json("get", "modelmonitor", doc["metadata"]["name"], "-n", namespace)
    assert got["spec"]["model"] == {**doc["spec"]["model"]}


def test_explain_prints_field_docs(kubectl: Kubectl) -> None:
    out = kubectl("explain", "modelmonitor.spec.drift").stdout
    assert "datasetDriftShare" in out and "Dataset drift when at least this share" in out
    assert "method" in out and "auto" in out
    out = kubectl("explain", "mm.status.drift.features").stdout
    assert "pValue" in out and "p-value of a test" in out


def test_get_shows_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    """The API server's table (what kubectl get prints) from a status the operator
    writes: the default columns, the wide ones, no raw float anywhere."""
    doc = in_namespace(good_monitor(), namespace)
    kubectl("apply", "-f", "-", input=manifest(doc))
    status = {"status": {
        "phase": "Drifting", "drift": {"share": 5 / 9, "datasetDrift": True},
        "summary": {"drifted": "5/9", "findings": 3, "reason": "DataDrift",
                    "worst": "critical: drift.feature.income"},
        "lastCheck": {"time": "2026-11-24T12:00:00Z", "durationSeconds": 0.5,
                      "referenceRows": 10, "currentRows": 5}}}
    kubectl("patch", "mm", "credit-risk", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", manifest(status))
    out = kubectl("get", "mm", "-n", namespace).stdout
    (row,) = table(out)
    assert list(row) == ["NAME", "MODEL", "PHASE", "DRIFTED", "FINDINGS", "REASON",
                         "LAST CHECK", "AGE"]
    assert [row[k] for k in ("NAME", "MODEL", "PHASE", "DRIFTED", "FINDINGS", "REASON")] == [
        "credit-risk", "credit-risk", "Drifting", "5/9", "3", "DataDrift"]
    assert "0.5555" not in out
    (wide,) = table(kubectl("get", "mm", "-n", namespace, "-o", "wide").stdout)
    assert list(wide) == ["NAME", "MODEL", "VERSION", "PHASE", "DRIFTED", "FINDINGS",
                          "REASON", "INTERVAL", "WORST", "LAST CHECK", "AGE"]
    assert wide["VERSION"] == doc["spec"]["model"]["version"]
    assert wide["INTERVAL"] == doc["spec"]["schedule"]["interval"]
    assert wide["WORST"] == "critical: drift.feature.income"
    # Healthy: no reason, no worst finding; the cells stay empty.
    healthy = {"status": {"phase": "Healthy", "summary": {
        "drifted": "0/9", "findings": 0, "reason": None, "worst": None}}}
    kubectl("patch", "mm", "credit-risk", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", manifest(healthy))
    (wide,) = table(kubectl("get", "mm", "-n", namespace, "-o", "wide").stdout)
    assert (wide["PHASE"], wide["DRIFTED"], wide["FINDINGS"]) == ("Healthy", "0/9", "0")
    assert wide["REASON"] in ("", "<none>") and wide["WORST"] in ("", "<none>")


def test_status_fields_survive_structural_pruning(kubectl: Kubectl, namespace: str) -> None:
    """A full status as the check writes it is stored unchanged (nothing undeclared)."""
    from modelmon.check import run_check
    from modelmon.cli import status_dict

    example = REPO_ROOT / "examples" / "breast-cancer"
    mon = yaml.safe_load((example / "monitor.yaml").read_text())
    from modelmon.api.v1alpha1 import ModelMonitorSpec

    status = status_dict(run_check(ModelMonitorSpec.model_validate(mon["spec"]),
                                   base_dir=example))
    doc = in_namespace(mon, namespace)
    kubectl("apply", "-f", "-", input=manifest(doc))
    kubectl("patch", "mm", mon["metadata"]["name"], "-n", namespace, "--subresource=status",
            "--type=merge", "-p", manifest({"status": status}))
    stored = kubectl.json("get", "mm", mon["metadata"]["name"], "-n", namespace)["status"]
    # Merge patches drop null fields; anything else missing was pruned as undeclared.
    assert without_nulls(stored) == without_nulls(status)
    # The status is one atomic field to the API server's field tracking: the status
    # writer's managedFields entry names the status alone, not each of its fields.
    managed = kubectl.json("get", "mm", mon["metadata"]["name"], "-n", namespace,
                           "--show-managed-fields")["metadata"]["managedFields"]
    (writer,) = [entry for entry in managed if entry.get("subresource") == "status"]
    assert writer["fieldsV1"] == {"f:status": {}}


@pytest.mark.parametrize("case", bad_cases(), ids=lambda c: c.name)
def test_bad_monitor_is_rejected_naming_the_field(kubectl: Kubectl, namespace: str,
                                                  case: Any, tmp_path: Path) -> None:
    doc = in_namespace(case.doc, namespace)
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode != 0, f"{case.name} was accepted"
    # A validation error (schema, CEL, or strict field validation), not some other failure.
    assert " is invalid: " in done.stderr or "strict decoding error" in done.stderr, done.stderr
    assert case.named_in(done.stderr), done.stderr
    assert not kubectl.exists("mm", doc["metadata"]["name"], "-n", namespace)


def test_days_and_weeks_apply(kubectl: Kubectl, namespace: str) -> None:
    """Durations in d and w pass the CRD's format rule and its CEL comparisons."""
    doc = in_namespace(merge_patch(good_monitor(), {
        "metadata": {"name": "days-and-weeks"},
        "spec": {"schedule": {"interval": "1d"}, "current": {"window": "2w3d12h"},
                 "performance": {"maxLabelDelay": "1w"}}}), namespace)
    kubectl("apply", "-f", "-", input=manifest(doc))
    got = kubectl.json("get", "mm", "days-and-weeks", "-n", namespace)["spec"]
    assert got["schedule"]["interval"] == "1d" and got["current"]["window"] == "2w3d12h"


@pytest.mark.parametrize("interval", ["10x", "1.5d", "10 minutes"])
def test_bad_duration_names_the_units(kubectl: Kubectl, namespace: str, interval: str) -> None:
    doc = in_namespace(merge_patch(good_monitor(), {
        "metadata": {"name": "bad-unit"}, "spec": {"schedule": {"interval": interval}}}),
        namespace)
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert done.returncode != 0
    assert "spec.schedule.interval" in done.stderr, done.stderr
    assert "units: ms, s, m, h" in done.stderr and "d (days) and w (weeks)" in done.stderr, \
        done.stderr

"""The API contract: models, the generated CRD, enums against registries, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from corpus import bad_cases, good_monitor
from modelmon.api import v1alpha1 as api
from modelmon.api.crd import crd, crd_yaml
from modelmon.api.errors import field_errors
from modelmon.sources import configmap, source_kinds
from modelmon.sources.url import SUFFIXES
from modelmon.stats.drift import method_names, methods
from modelmon.stats.performance import metric_names

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "modelmonitors.modelmon.io.yaml"


def test_committed_crd_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), "run `make crds` and commit crds/"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for key, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{key}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


def _root() -> dict[str, Any]:
    root: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def test_every_spec_and_status_field_has_a_description() -> None:
    root = _root()
    missing = [p for top in ("spec", "status")
               for p, s in _walk(root["properties"][top], f".{top}")
               if "description" not in s and not p.endswith(("[]", "{}"))]
    assert missing == []


def test_crd_names_and_printer_columns() -> None:
    doc = crd()
    assert doc["metadata"]["name"] == "modelmonitors.modelmon.io"
    names = doc["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "ModelMonitor", "modelmonitors", ["mm"])
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    default = [c["name"] for c in columns if not c.get("priority")]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    assert default == ["Model", "Phase", "Drifted", "Findings", "Reason", "Last check", "Age"]
    assert wide == ["Version", "Interval", "Worst"]


def test_printer_columns_read_declared_display_ready_fields() -> None:
    """Every column's path is in the schema, and no column reads a raw number (a float
    would print as 0.5555555555555556)."""
    doc = crd()
    version = doc["spec"]["versions"][0]
    schemas = dict(_walk(version["schema"]["openAPIV3Schema"]))
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        assert path in schemas, path
        assert column["type"] != "number" and schemas[path]["type"] != "number", column
        declared = schemas[path]
        expected = "date" if declared.get("format") == "date-time" else declared["type"]
        assert column["type"] == expected, column


def _enum(path: str) -> set[str]:
    schema = dict(_walk(_root()))[path]
    return set(schema["enum"])


def test_drift_method_enum_equals_registry_both_ways() -> None:
    assert _enum(".spec.drift.method") == {"auto", *method_names()}
    assert _enum(".spec.drift.features{}.method") == set(method_names())
    assert set(get_args(api.DriftMethodName)) == set(method_names())
    kinds: list[tuple[api.FeatureKindName, str, Any]] = [
        ("numeric", "numericMethod", api.NumericDriftMethodOrAuto),
        ("categorical", "categoricalMethod", api.CategoricalDriftMethodOrAuto)]
    for kind, field, literal in kinds:
        assert _enum(f".spec.drift.{field}") == set(get_args(literal))
        assert set(get_args(literal)) == {"auto", *method_names(kind)}
        assert set(api.KIND_METHODS[kind]) == set(method_names(kind))


def test_metric_enum_equals_registry_both_ways() -> None:
    assert _enum(".spec.performance.metrics[].name") == set(metric_names())
    for task, names in api.TASK_METRICS.items():
        assert set(names) == set(metric_names(task)), task
    assert set(api.TASK_METRICS) == set(get_args(api.Task)) == _enum(".spec.model.task")


def test_format_and_source_kinds_equal_registries() -> None:
    assert _enum(".spec.reference.source.format") == set(SUFFIXES.values())
    source = _root()["properties"]["spec"]["properties"]["reference"]["properties"]["source"]
    options = {"format", "credentialsSecretRef", "prunePartitions", "timeout", "maxBytes",
               "engine"}
    assert set(source["properties"]) - options == set(source_kinds())
    config_map = ".spec.reference.source.configMap.format"
    assert _enum(config_map) == set(configmap.SUFFIXES.values()) == set(
        get_args(api.ConfigMapFormat))


def _undeclared(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths in ``value`` that the structural ``schema`` does not declare (and would prune)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: list[str] = []
        for key, sub in value.items():
            if props is not None and key in props:
                out += _undeclared(sub, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += _undeclared(sub, extra, f"{path}{{{key}}}")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [p for i, v in enumerate(value)
                for p in _undeclared(v, schema.get("items", {}), f"{path}[{i}]")]
    return []


def test_every_field_of_a_real_status_is_declared() -> None:
    """A real check's status, with history appended, walks the CRD without a stray key.

    Not circular like comparing the CRD with the models it is generated from: this is the
    JSON the operator sends, and the apiserver would prune any key missing here.
    """
    from modelmon.check import run_check
    from modelmon.cli import status_dict
    from modelmon.outputs.publisher import with_history

    example = ROOT / "examples" / "breast-cancer"
    mon = api.ModelMonitor.model_validate(yaml.safe_load((example / "monitor.yaml").read_text()))
    status = run_check(mon.spec, base_dir=example)
    assert status.drift is not None and status.drift.prediction is not None
    assert status.performance and status.findings and status.data_quality is not None
    assert status.last_check is not None
    status = with_history(status, status.last_check.time, None)
    body = status_dict(status)
    assert body["history"] and body["conditions"] and body["drift"]["features"]
    schema = _root()["properties"]["status"]
    assert _undeclared(body, schema, ".status") == []
    # The walk does catch a stray key.
    assert _undeclared({**body, "stray": 1}, schema, ".status") == [".status.stray"]


def test_good_monitor_parses_with_defaults() -> None:
    mon = api.ModelMonitor.model_validate(good_monitor())
    assert mon.spec.schedule.interval == "10m"
    assert mon.spec.drift.features["income"].method == "psi"
    assert mon.spec.performance.metrics[1].severity == "critical"
    assert api.parse_duration("1h30m").total_seconds() == 5400


@pytest.mark.parametrize("case", bad_cases(), ids=lambda c: c.name)
def test_bad_monitor_is_rejected_naming_the_field(case: Any) -> None:
    with pytest.raises(ValidationError) as info:
        api.ModelMonitor.model_validate(case.doc)
    lines = field_errors(info.value)
    assert any(line.startswith(f"{case.model_field}:") for line in lines), lines


def test_bad_corpus_is_large_enough() -> None:
    assert len(bad_cases()) >= 15


def test_p_value_methods_are_the_registry_tests() -> None:
    assert set(api.P_VALUE_METHODS) == {m.name for m in methods() if m.uses_p_value}


def test_cel_rules_are_valid_yaml_strings() -> None:
    rules = [r for _, s in _walk(_root()) for r in s.get("x-kubernetes-validations", [])]
    assert len(rules) >= 8
    for r in rules:
        assert r["rule"] and r["message"]
        yaml.safe_load(yaml.safe_dump(r))

"""The Helm chart without Helm: CRD copies, values, schema (helm runs in tests/integration).

crds/ is the single source of the CRD. The chart's template and manifests/base/crd/ are copies
made by `make chart-crds`; these tests fail, and say so, when a copy is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "modelmon"
CHART_CRDS = CHART / "templates" / "crds" / "modelmonitors.yaml"
KEEP = "helm.sh/resource-policy"
STALE = "is not what crds/ gives: run `make chart-crds` and commit the result"

_CONTROL = re.compile(r"^\s*\{\{-?\s*(if|else|end)\b.*\}\}\s*$")


def source_crds() -> dict[str, dict[str, Any]]:
    docs = [d for p in sorted((REPO_ROOT / "crds").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    assert docs, "crds/ is empty"
    return {d["metadata"]["name"]: d for d in docs}


def untemplated(text: str) -> str:
    """The chart's CRD template with its control lines removed and `{{` unescaped,
    i.e. what Helm renders with crds.enabled and crds.keep."""
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}\n?", "", text, flags=re.S)
    lines = [line for line in text.splitlines() if not _CONTROL.match(line)]
    leftover = [line for line in lines if "{{" in line and '{{ "{{" }}' not in line]
    assert not leftover, f"unexpected template code in {CHART_CRDS}: {leftover}"
    return "\n".join(lines).replace('{{ "{{" }}', "{{")


def without_keep(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    annotations = doc["metadata"].get("annotations") or {}
    assert annotations.pop(KEEP, None) == "keep", "the chart's CRD lacks the keep annotation"
    if not annotations:
        doc["metadata"].pop("annotations", None)
    return doc


def test_chart_crd_template_matches_crds() -> None:
    text = CHART_CRDS.read_text()
    assert text.splitlines()[4] == "{{- if .Values.crds.enabled }}"
    assert text.rstrip().endswith("{{- end }}")
    chart = {d["metadata"]["name"]: without_keep(d)
             for d in yaml.safe_load_all(untemplated(text)) if d}
    source = source_crds()
    assert sorted(chart) == sorted(source), f"{CHART_CRDS} {STALE}"
    for name, doc in source.items():
        assert chart[name] == doc, f"{name} in {CHART_CRDS.relative_to(REPO_ROOT)} {STALE}"


def test_manifests_crd_copy_matches_crds() -> None:
    copies = sorted((REPO_ROOT / "manifests" / "base" / "crd").glob("*.yaml"))
    assert [p.name for p in copies] == sorted(p.name for p in (REPO_ROOT / "crds").glob("*.yaml"))
    for copy in copies:
        source = REPO_ROOT / "crds" / copy.name
        assert copy.read_text() == source.read_text(), f"manifests/base/crd/{copy.name} {STALE}"


def test_stale_copy_is_detected(tmp_path: Path) -> None:
    """The comparison above sees a change deep in the schema, not only the names."""
    text = CHART_CRDS.read_text().replace("maxItems: 20", "maxItems: 21", 1)
    assert text != CHART_CRDS.read_text()
    chart = [without_keep(d) for d in yaml.safe_load_all(untemplated(text)) if d]
    assert chart[0] != source_crds()[chart[0]["metadata"]["name"]]


# --- values.yaml and values.schema.json ---------------------------------------------

#: Objects of the schema that may take any key, and why. Everything else is closed.
OPEN_OBJECTS = {
    "values.global": "Helm's global values belong to the parent chart, which picks the keys",
}
STRING_MAP = {"type": "string"}


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The node a `$ref` (to #/definitions/NAME) points at, or the node itself."""
    while "$ref" in node:
        prefix = "#/definitions/"
        assert node["$ref"].startswith(prefix), f"unsupported $ref {node['$ref']}"
        node = root["definitions"][node["$ref"].removeprefix(prefix)]
    return node


def is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return "object" in kinds or "properties" in node or "additionalProperties" in node


def open_objects(root: dict[str, Any]) -> list[str]:
    """Every schema object, at any depth (properties, items, maps, definitions, anyOf ...),
    that accepts keys nobody checks: neither closed (`additionalProperties: false`) nor a
    map whose values have a schema (`additionalProperties: {type: string}` for labels and
    annotations; a map of objects has its value schema walked in turn), nor in
    OPEN_OBJECTS."""
    found: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        if "$ref" in node:
            resolve(root, node)  # it must resolve; definitions are walked on their own
            return
        if is_object(node):
            extra = node.get("additionalProperties", True)
            if extra is True and where not in OPEN_OBJECTS:
                found.append(where)
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{where}[]" if key == "items" else f"{where}{{}}")
        for key in ("anyOf", "oneOf", "allOf"):
            for i, sub in enumerate(node.get(key, [])):
                walk(sub, f"{where}|{key}{i}")

    walk(root, "values")
    for name, node in root.get("definitions", {}).items():
        walk(node, f"definitions.{name}")
    return found


def test_schema_rejects_unknown_keys_at_every_level() -> None:
    assert not open_objects(schema()), "schema objects that accept unknown keys"


def test_every_open_object_is_found() -> None:
    """The walk sees objects without properties, in arrays, maps and definitions."""
    root = {"type": "object", "additionalProperties": False, "properties": {
        "resources": {"type": "object"},
        "tolerations": {"type": "array", "items": {"type": "object"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "deep": {"type": "object", "additionalProperties": {"type": "object"}},
        "affinity": {"$ref": "#/definitions/affinity"},
        "global": {"type": "object"},
    }, "definitions": {"affinity": {
        "type": "object", "additionalProperties": False,
        "properties": {"nodeAffinity": {"properties": {"x": {"type": "string"}}}}}}}
    assert open_objects(root) == ["values.resources", "values.tolerations[]",
                                  "values.deep{}", "definitions.affinity.nodeAffinity"]
    assert open_objects(json.loads(json.dumps(schema()).replace(
        '"additionalProperties": false', '"additionalProperties": true', 1)))


def test_the_kubernetes_structures_are_closed() -> None:
    """The objects the audit found open now list their fields."""
    root = schema()
    props = root["properties"]

    def fields(node: dict[str, Any]) -> set[str]:
        node = resolve(root, node)
        assert node["additionalProperties"] is False
        return set(node["properties"])

    assert fields(props["resources"]) == {"limits", "requests"}
    assert fields(resolve(root, props["resources"])["properties"]["limits"]) == \
        {"cpu", "memory", "ephemeral-storage"}
    assert {"readOnlyRootFilesystem", "capabilities", "seccompProfile",
            "allowPrivilegeEscalation"} <= fields(props["securityContext"])
    assert "readOnlyRootFileSystem" not in fields(props["securityContext"])
    assert {"runAsNonRoot", "runAsUser", "fsGroup", "seccompProfile"} <= \
        fields(props["podSecurityContext"])
    assert fields(props["affinity"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    assert fields(props["tolerations"]["items"]) == \
        {"key", "operator", "value", "effect", "tolerationSeconds"}
    assert resolve(root, props["nodeSelector"])["additionalProperties"] == STRING_MAP


def chart_keys(root: dict[str, Any], node: dict[str, Any] | None = None,
               prefix: str = "") -> list[str]:
    """Dotted paths of the chart's own keys: properties of its closed objects, not the
    fields of the Kubernetes structures (`$ref`s) that values.yaml sets only in part."""
    node = root if node is None else node
    out = []
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.append(path)
        if "$ref" not in sub and sub.get("additionalProperties") is False:
            out += chart_keys(root, sub, path + ".")
    return out


def value_paths(root: dict[str, Any], d: dict[str, Any], node: dict[str, Any],
                prefix: str = "") -> set[str]:
    """Dotted paths of values.yaml, each checked to be a property of the schema."""
    node = resolve(root, node)
    out = set()
    for k, v in d.items():
        path = prefix + k
        if node.get("additionalProperties") == STRING_MAP:
            assert isinstance(v, str), f"{path}: a map of strings"
            continue
        assert k in node.get("properties", {}), f"values.yaml sets {path}, unknown to the schema"
        out.add(path)
        if isinstance(v, dict):
            out |= value_paths(root, v, node["properties"][k], f"{path}.")
    return out


def test_schema_and_values_have_the_same_keys() -> None:
    root = schema()
    paths = value_paths(root, values(), root)
    keys = set(chart_keys(root)) - {"global"}
    assert keys <= paths, f"in the schema, not in values.yaml: {sorted(keys - paths)}"
    assert paths - keys <= {p for p in paths if p.split(".")[0] in (
        "resources", "podSecurityContext", "securityContext")}, sorted(paths - keys)


def schema_node(path: str) -> dict[str, Any]:
    root = schema()
    node = root
    for part in path.split("."):
        node = resolve(root, resolve(root, node)["properties"][part])
    return node


def uncommented_keys(text: str) -> list[str]:
    """Dotted paths of the keys, at every depth (in lists too), that do not start their
    line under a comment line (a key inside a flow mapping `{a: 1}` has no comment of its
    own)."""
    lines = text.splitlines()
    missing: list[str] = []

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}{key.value}"
                line, column = key.start_mark.line, key.start_mark.column
                above = lines[line - 1].strip() if line else ""
                first = not lines[line][:column].strip(" -")
                if not (first and above.startswith("#")):
                    missing.append(path)
                walk(value, path + ".")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{prefix.rstrip('.')}[{i}].")

    root = yaml.compose(text)
    assert root is not None
    walk(root, "")
    return missing


def test_every_value_is_commented() -> None:
    missing = uncommented_keys((CHART / "values.yaml").read_text())
    assert not missing, f"values.yaml keys without a comment right above them: {missing}"


def test_uncommented_nested_keys_are_found() -> None:
    text = ("# -- a\na:\n  # -- b\n  b: 1\n  c:\n    d: 2\n# -- l\nl:\n  - x: 1\n"
            "# -- f\nf: {g: 1}\n")
    assert uncommented_keys(text) == ["a.c", "a.c.d", "l[0].x", "f.g"]


def test_templates_use_only_values_that_exist() -> None:
    defined = _all_paths(values())
    used: dict[str, set[str]] = {}
    for template in (CHART / "templates").rglob("*"):
        if template.is_file():
            for ref in re.findall(r"\.Values((?:\.\w+)+)", template.read_text()):
                used.setdefault(ref.lstrip("."), set()).add(template.name)
    unknown = {k: sorted(v) for k, v in used.items() if k not in defined}
    assert not unknown, f"templates read values that values.yaml does not define: {unknown}"
    assert {"crds.keep", "rbac.readSecretsAndConfigMaps", "rbac.retraining"} <= set(used)


def _all_paths(d: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _all_paths(v, f"{prefix}{k}.")
    return out


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["type"] == "application"
    assert re.fullmatch(r">=1\.\d+\.\d+-0", chart["kubeVersion"])
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version and chart["appVersion"] == version.group(1), "appVersion != pyproject's"


def test_readme_states_the_minimum_kubernetes_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    minimum = re.fullmatch(r">=(1\.\d+)\.0-0", chart["kubeVersion"])
    assert minimum, chart["kubeVersion"]
    install = (REPO_ROOT / "README.md").read_text().split("## Install", 1)[1]
    assert f"Kubernetes {minimum.group(1)} or newer is required" in install
    assert f'`kubeVersion: "{chart["kubeVersion"]}"`' in install


@pytest.mark.parametrize("key", ["serviceMonitor", "grafanaDashboard", "networkPolicy"])
def test_optional_objects_are_off_by_default(key: str) -> None:
    assert values()[key]["enabled"] is False


def test_defaults_are_the_safe_ones() -> None:
    v = values()
    assert v["crds"] == {"enabled": True, "keep": True}
    # Off: with the Jobs permission, whoever may create a ModelMonitor may run pods.
    assert v["rbac"]["retraining"] is False
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    assert v["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert v["securityContext"]["allowPrivilegeEscalation"] is False
    assert v["podSecurityContext"]["runAsNonRoot"] is True
    assert v["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert v["serviceMonitor"]["labels"] == {"release": "kube-prometheus-stack"}
    assert v["grafanaDashboard"]["labels"] == {"grafana_dashboard": "1"}

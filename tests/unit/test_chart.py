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

def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def chart_keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the chart's own keys: properties of closed schema objects."""
    out = []
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.append(path)
        if sub.get("additionalProperties") is False:
            out += chart_keys(sub, path + ".")
    return out


def test_schema_rejects_unknown_keys_at_every_level() -> None:
    def walk(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} accepts unknown keys"
            for key, sub in node["properties"].items():
                walk(sub, f"{where}.{key}")
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{where}[]")

    walk(schema(), "values")


def test_schema_and_values_have_the_same_keys() -> None:
    keys = set(chart_keys(schema())) - {"global"}

    def paths(d: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and prefix + k in keys and v and \
                    schema_node(prefix + k).get("additionalProperties") is False:
                out |= paths(v, f"{prefix}{k}.")
        return out

    assert paths(values()) == keys


def schema_node(path: str) -> dict[str, Any]:
    node = schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    for path in chart_keys(schema()):
        if path == "global":
            continue
        depth, key = path.count("."), path.rsplit(".", 1)[-1]
        pattern = re.compile(rf"^{'  ' * depth}{re.escape(key)}:")
        # The first line defining this key at this depth under its parent.
        index = next(i for i, line in enumerate(lines) if pattern.match(line)
                     and _under(lines, i, path))
        if not lines[index - 1].lstrip().startswith("#"):
            missing.append(path)
    assert not missing, f"values.yaml keys without a comment above them: {missing}"


def _under(lines: list[str], index: int, path: str) -> bool:
    """Whether line `index` sits under the parents named in `path`."""
    parents = path.split(".")[:-1]
    depth = len(parents)
    for i in range(index - 1, -1, -1):
        if not parents:
            return True
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if line.strip() and not line.lstrip().startswith("#") and indent < depth * 2:
            if line.strip() != f"{parents[-1]}:":
                return False
            parents.pop()
            depth -= 1
    return not parents


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

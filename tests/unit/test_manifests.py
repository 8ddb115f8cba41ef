"""manifests/ (kustomize) without a cluster: complete, valid samples, RBAC as documented.

tests/integration/test_install.py applies them for real and compares them with the chart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmon.check import load_monitors

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("folder", ["", "base", "samples", "monitoring"])
def test_kustomizations_list_every_file_and_only_existing_ones(folder: str) -> None:
    root = MANIFESTS / folder
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    for entry in listed:
        assert (root / entry).exists(), f"{folder or 'manifests'}: {entry} does not exist"
    files = {str(p.relative_to(root)) for p in root.rglob("*.yaml")
             if p.name != "kustomization.yaml" and p.parent.relative_to(root).parts[:1]
             in ((), ("crd",))}
    if not folder:  # manifests/ itself only points at base/
        assert listed == ["base"]
        return
    assert files <= set(listed), f"not in {folder or 'manifests'}/kustomization.yaml: " \
                                 f"{sorted(files - set(listed))}"


def test_samples_are_valid_monitors() -> None:
    for path in sorted((MANIFESTS / "samples").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            assert load_monitors(path), path


def rbac_table() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) from the README's "RBAC it needs" table.

    `name.group` names a resource of that group, a bare name a core one, and
    `name/sub` a subresource of a resource named in an earlier row.
    """
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("**RBAC it needs**", 1)[1].split("\n\n", 2)[1]
    groups: dict[str, str] = {}
    out = set()
    for row in table.splitlines()[2:]:
        resources, verbs = [c.strip() for c in row.strip("|").split("|")][:2]
        for resource in re.findall(r"`([^`]+)`", resources):
            if "/" in resource:
                name, group = resource, groups[resource.split("/")[0]]
            else:
                name, _, group = resource.partition(".")
                groups[name] = group
            out |= {(group, name, verb.strip()) for verb in verbs.split(",")}
    return out


def manifest_rules() -> set[tuple[str, str, str]]:
    role = next(d for d in docs(MANIFESTS / "base" / "rbac.yaml") if d["kind"] == "ClusterRole")
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def test_cluster_role_is_what_the_readme_documents() -> None:
    assert manifest_rules() == rbac_table()


def test_no_wildcards_and_no_writes_beyond_the_operator_objects() -> None:
    rules = manifest_rules()
    assert not [r for r in rules if "*" in r]
    writes = {(g, r) for g, r, v in rules if v not in ("get", "list", "watch")}
    assert writes == {("modelmon.io", "modelmonitors/status"),
                      ("monitoring.coreos.com", "prometheusrules"), ("", "events"),
                      ("batch", "jobs")}
    # Secrets: get by name only, never list or watch (which would read every Secret).
    assert {v for g, r, v in rules if r == "secrets"} == {"get"}


def test_deployment_is_locked_down() -> None:
    dep = docs(MANIFESTS / "base" / "deployment.yaml")[0]
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert "limits" in container["resources"] and "requests" in container["resources"]

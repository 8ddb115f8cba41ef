"""manifests/ (kustomize) without a cluster: complete, valid samples, RBAC as documented.

tests/integration/test_install.py applies them for real and compares them with the chart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmon.monitor_files import load_monitors

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


KUSTOMIZATIONS = ["", "base", "samples", "monitoring", "retraining", "components/retraining",
                  "replicas", "components/replicas"]


def test_every_kustomization_is_tested() -> None:
    found = {"" if p.parent == MANIFESTS else str(p.parent.relative_to(MANIFESTS))
             for p in MANIFESTS.rglob("kustomization.yaml")}
    assert found == set(KUSTOMIZATIONS)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_kustomizations_list_every_file_and_only_existing_ones(folder: str) -> None:
    root = MANIFESTS / folder
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    listed = [*kustomization.get("resources", []), *kustomization.get("components", []),
              *(p["path"] for p in kustomization.get("patches", []) if "path" in p)]
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


Rule = tuple[str, str, str]  # (apiGroup, resource, verb)


def rbac_table(opt_in: bool = True, replicas: bool = False) -> set[Rule]:
    """(apiGroup, resource, verb) from the README's "RBAC it needs" table; without
    `opt_in`, leave out the rows marked opt-in (off by default); the rows of replicas only
    (a Role in the operator's namespace) with `replicas`, and then only those.

    `name.group` names a resource of that group, a bare name a core one, and
    `name/sub` a subresource of a resource named in an earlier row.
    """
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("**RBAC it needs**", 1)[1].split("\n\n", 2)[1]
    groups: dict[str, str] = {}
    out = set()
    for row in table.splitlines()[2:]:
        resources, verbs, why = [c.strip() for c in row.strip("|").split("|")][:3]
        if not opt_in and "opt-in" in why:
            continue
        if replicas != why.startswith("replicas only"):
            continue
        for resource in re.findall(r"`([^`]+)`", resources):
            if "/" in resource:
                name, group = resource, groups[resource.split("/")[0]]
            else:
                name, _, group = resource.partition(".")
                groups[name] = group
            out |= {(group, name, verb.strip()) for verb in verbs.split(",")}
    return out


def expand(rules: list[dict[str, Any]]) -> set[Rule]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def manifest_rules(retraining: bool = False) -> set[Rule]:
    """The base's ClusterRole; with `retraining`, as components/retraining patches it."""
    role = next(d for d in docs(MANIFESTS / "base" / "rbac.yaml") if d["kind"] == "ClusterRole")
    rules = list(role["rules"])
    if retraining:
        component = MANIFESTS / "components" / "retraining"
        (patch,) = yaml.safe_load((component / "kustomization.yaml").read_text())["patches"]
        assert patch["target"]["kind"] == "ClusterRole"
        assert patch["target"]["name"] == role["metadata"]["name"]
        for op in yaml.safe_load((component / patch["path"]).read_text()):
            assert (op["op"], op["path"]) == ("add", "/rules/-"), op
            rules.append(op["value"])
    return expand(rules)


def test_cluster_role_is_what_the_readme_documents() -> None:
    assert manifest_rules() == rbac_table(opt_in=False)
    assert manifest_rules(retraining=True) == rbac_table()


def test_jobs_only_with_the_retraining_component() -> None:
    jobs = {(g, r, v) for g, r, v in rbac_table() if r == "jobs"}
    assert jobs == {("batch", "jobs", v) for v in ("get", "create")}
    assert not {r for r in manifest_rules() if r[1] == "jobs"}
    assert manifest_rules(retraining=True) - manifest_rules() == jobs
    # The README says why the rule is off: it lets monitor authors run pods.
    readme = (REPO_ROOT / "README.md").read_text()
    assert "**The Jobs permission lets monitors run pods.**" in readme
    assert "rbac.retraining" in readme and "manifests/retraining/" in readme


def test_opt_in_rows_are_left_out() -> None:
    assert rbac_table(opt_in=False) < rbac_table()


def test_leases_are_granted_by_a_role_in_the_operators_namespace_only() -> None:
    """The replicas' Leases: the README's row is the chart's Role, in the release's own
    namespace (never in the ClusterRole or the watched namespaces' Roles)."""
    leases = rbac_table(replicas=True)
    assert leases == {("coordination.k8s.io", "leases", verb)
                      for verb in ("get", "list", "watch", "create", "update")}
    assert not leases & rbac_table()
    chart = (REPO_ROOT / "helm" / "modelmon" / "templates" / "rbac.yaml").read_text()
    role = chart.split("# The replicas' membership Leases", 1)[1]
    assert "namespace: {{ .Release.Namespace }}" in role.split("rules:")[0]
    assert "kind: ClusterRole\n" not in role
    rules = yaml.safe_load(role.split("rules:", 1)[1].split("---", 1)[0])
    assert expand(rules) == leases
    assert "leases" not in chart.split("# The replicas' membership Leases", 1)[0]


@pytest.mark.parametrize("retraining", [False, True])
def test_no_wildcards_and_no_writes_beyond_the_operator_objects(retraining: bool) -> None:
    rules = manifest_rules(retraining)
    assert not [r for r in rules if "*" in r]
    writes = {(g, r) for g, r, v in rules if v not in ("get", "list", "watch")}
    expected = {("modelmon.io", "modelmonitors/status"),
                ("monitoring.coreos.com", "prometheusrules"), ("", "events")}
    assert writes == (expected | {("batch", "jobs")} if retraining else expected)
    # Secrets: get by name only, never list or watch (which would read every Secret).
    assert {v for g, r, v in rules if r == "secrets"} == {"get"}


def test_the_image_is_the_charts_default() -> None:
    chart = yaml.safe_load((REPO_ROOT / "helm" / "modelmon" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO_ROOT / "helm" / "modelmon" / "values.yaml").read_text())
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image == {"name": "modelmon", "newName": values["image"]["repository"],
                     "newTag": chart["appVersion"]}, \
        "manifests/base/kustomization.yaml: set newName to the chart's image.repository " \
        "and newTag to Chart.yaml's appVersion"


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

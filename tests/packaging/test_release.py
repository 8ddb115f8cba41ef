"""The release workflow (.github/workflows/release.yaml) and what it publishes: the image it
pushes is the chart's default, the tag check (hack/release-check.sh) refuses versions or an
image that disagree, jobs get least privilege, and the chart's digest can be pinned."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release.yaml"
CHART = REPO_ROOT / "helm" / "modelmon"
CHECK = REPO_ROOT / "hack" / "release-check.sh"
OWNER = "modelmon"  # the owner whose repository publishes the chart's default image
DIGEST = "sha256:" + "0123456789abcdef" * 4
# The files the tag check reads, copied into a scratch tree to be changed.
CHECKED = ("hack/release-check.sh", "helm/modelmon/Chart.yaml", "helm/modelmon/values.yaml",
           "pyproject.toml", "manifests/base/kustomization.yaml")


def workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return doc


def jobs() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = workflow()["jobs"]
    return result


def steps_using(action: str) -> list[dict[str, Any]]:
    return [s for job in jobs().values() for s in job.get("steps", [])
            if s.get("uses", "").split("@")[0] == action]


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def chart_meta() -> dict[str, Any]:
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


def run_check(root: Path, tag: str, owner: str = OWNER) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(root / "hack" / "release-check.sh"), tag, owner],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in CHECKED:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / rel, tmp_path / rel)
    return tmp_path


# --- the workflow ----------------------------------------------------------------------

def test_runs_on_version_tags_only() -> None:
    # PyYAML reads the key `on` as True.
    trigger = workflow()[True]
    assert trigger == {"push": {"tags": ["v*.*.*"]}}


def test_least_privilege() -> None:
    assert workflow()["permissions"] == {}, "the workflow's default must be no permission"
    for name, job in jobs().items():
        assert "permissions" in job, f"job {name} must say which permissions it needs"
    granted = {name: job["permissions"] for name, job in jobs().items()}
    assert [n for n, p in granted.items() if "id-token" in p] == ["pypi"]
    assert granted["pypi"] == {"id-token": "write"}
    assert {n for n, p in granted.items() if p.get("packages") == "write"} == {"image", "chart"}
    assert all(p.get("contents", "read") == "read" for p in granted.values())


def test_every_action_is_pinned() -> None:
    """By an exact version tag (vX.Y.Z) or a full commit SHA, never a branch or a major tag."""
    uses = [s["uses"] for job in jobs().values() for s in job.get("steps", []) if "uses" in s]
    assert uses
    loose = [u for u in uses
             if not re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})", u)]
    assert not loose, f"pin these by vX.Y.Z or commit SHA: {loose}"


def test_every_job_starts_after_the_tag_check() -> None:
    needs = {name: job.get("needs", []) for name, job in jobs().items()}
    needs = {name: [n] if isinstance(n, str) else n for name, n in needs.items()}

    def upstream(name: str) -> set[str]:
        return set(needs[name]).union(*(upstream(n) for n in needs[name]))

    assert needs["check"] == []
    for name in jobs():
        if name != "check":
            assert "check" in upstream(name), name
    assert {"image", "chart", "wheel"} <= upstream("pypi"), "publish the wheel last"
    (step,) = [s for s in jobs()["check"]["steps"] if "run" in s]
    assert step["run"].split()[0] == "hack/release-check.sh"
    assert '"$GITHUB_REF_NAME" "$GITHUB_REPOSITORY_OWNER"' in step["run"]


def test_the_image_is_multi_arch_and_tagged_with_the_checked_version() -> None:
    (build,) = steps_using("docker/build-push-action")
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    image_job = jobs()["image"]
    assert image_job["env"] == {"IMAGE": "${{ needs.check.outputs.image }}",
                                "VERSION": "${{ needs.check.outputs.version }}"}
    assert build["with"]["tags"] == "${{ env.IMAGE }}:${{ env.VERSION }}"
    (login,) = steps_using("docker/login-action")
    assert login["with"]["registry"] == "${{ env.REGISTRY }}"


def test_the_chart_goes_to_an_oci_repository_beside_the_image() -> None:
    run = "\n".join(s.get("run", "") for s in jobs()["chart"]["steps"])
    assert 'helm package helm/modelmon --destination dist' in run
    assert 'helm push "dist/modelmon-$VERSION.tgz" "oci://$REGISTRY/$owner/charts"' in run
    # Not oci://REGISTRY/OWNER: the chart would then share the image's name.
    assert "oci://$REGISTRY/$owner\"" not in run


def test_the_wheel_is_built_and_published_by_trusted_publishing() -> None:
    run = "\n".join(s.get("run", "") for s in jobs()["wheel"]["steps"])
    assert "python -m build" in run
    (publish,) = steps_using("pypa/gh-action-pypi-publish")
    assert "password" not in publish.get("with", {}), "trusted publishing needs no token"
    assert publish in jobs()["pypi"]["steps"]


def test_the_workflows_image_is_the_charts_default() -> None:
    registry = workflow()["env"]["REGISTRY"]
    check = run_check(REPO_ROOT, f"v{chart_meta()['version']}")
    assert check.returncode == 0, check.stderr
    out = dict(line.split("=", 1) for line in check.stdout.splitlines())
    assert out["image"] == f"{registry}/{OWNER}/modelmon"
    assert out["image"] == chart_values()["image"]["repository"], \
        "the chart's default image.repository must be the image the release workflow pushes"
    assert chart_values()["image"]["tag"] == "", "the default tag is appVersion, the released one"
    kustomization = yaml.safe_load((REPO_ROOT / "manifests/base/kustomization.yaml").read_text())
    assert kustomization["images"] == [
        {"name": "modelmon", "newName": out["image"], "newTag": out["version"]}]


# --- the tag check ---------------------------------------------------------------------

def test_check_passes_for_the_charts_version_and_any_owner_case(tree: Path) -> None:
    version = chart_meta()["version"]
    proc = run_check(tree, f"v{version}", OWNER.upper())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"version={version}",
                                        f"image={chart_values()['image']['repository']}"]


@pytest.mark.parametrize("tag", ["v9.9.9", "0.1.0", "release-1", "v0.1"])
def test_check_refuses_a_tag_that_is_not_the_version(tree: Path, tag: str) -> None:
    proc = run_check(tree, tag)
    assert proc.returncode != 0
    assert tag in proc.stderr


@pytest.mark.parametrize(("rel", "old", "new", "field"), [
    ("helm/modelmon/Chart.yaml", "\nversion: ", "\nversion: 9.", "Chart.yaml version"),
    ("helm/modelmon/Chart.yaml", 'appVersion: "', 'appVersion: "9.', "Chart.yaml appVersion"),
    ("pyproject.toml", 'version = "', 'version = "9.', "pyproject.toml version"),
    ("manifests/base/kustomization.yaml", "newTag: ", "newTag: 9.", "newTag"),
    ("manifests/base/kustomization.yaml", "newName: ghcr.io/", "newName: ghcr.io/x", "newName"),
    ("helm/modelmon/values.yaml", "  repository: ghcr.io/", "  repository: ghcr.io/x",
     "values.yaml image.repository"),
])
def test_check_refuses_each_disagreement(tree: Path, rel: str, old: str, new: str,
                                         field: str) -> None:
    path = tree / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    proc = run_check(tree, f"v{chart_meta()['version']}")
    assert proc.returncode != 0
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and field in errors[0], proc.stderr


def test_check_refuses_another_owner(tree: Path) -> None:
    proc = run_check(tree, f"v{chart_meta()['version']}", "someone-else")
    assert proc.returncode != 0
    assert "ghcr.io/someone-else/modelmon" in proc.stderr and "image.repository" in proc.stderr


def test_check_writes_the_step_outputs(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    proc = subprocess.run(["bash", str(tree / CHECKED[0]), f"v{chart_meta()['version']}", OWNER],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == proc.stdout


# --- pinning by digest -------------------------------------------------------------------

def digest_is_valid(digest: str) -> bool:
    """What values.schema.json admits as image.digest (JSON Schema patterns are searches;
    helm's own validation of it is in tests/integration/test_install.py)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    node = schema["properties"]["image"]["properties"]["digest"]
    assert node["type"] == "string"
    # A final $ matches only at the very end in JSON Schema (and Go), not before a newline.
    pattern = re.sub(r"\$$", r"\\Z", node["pattern"])
    return re.search(pattern, digest) is not None


def test_schema_accepts_a_sha256_digest_or_none() -> None:
    assert digest_is_valid(DIGEST)
    assert digest_is_valid("")
    assert chart_values()["image"]["digest"] == "", "the default is the tag, not a digest"


@pytest.mark.parametrize("digest", [DIGEST[:-1], DIGEST + "0", DIGEST.upper(), DIGEST[7:],
                                    "sha512:" + DIGEST[7:], f"{DIGEST} ", f"{DIGEST}\n",
                                    "@" + DIGEST, "latest"])
def test_schema_rejects_a_malformed_digest(digest: str) -> None:
    assert not digest_is_valid(digest), digest


def test_the_image_helper_renders_repository_at_digest() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    body = helpers.split('{{- define "modelmon.image" -}}', 1)[1].split("{{- end }}\n{{- end }}")[0]
    assert '{{- if .Values.image.digest }}' in body
    assert 'printf "%s@%s" .Values.image.repository .Values.image.digest' in body
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert 'image: {{ include "modelmon.image" . | quote }}' in deployment


def test_actionlint_is_part_of_make_lint() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "\n\thack/actionlint.sh" in lint
    script = (REPO_ROOT / "hack" / "actionlint.sh").read_text()
    assert re.search(r"^ACTIONLINT_VERSION=v\d+\.\d+\.\d+$", script, re.M), "pin actionlint"


def actionlint_binary() -> Path | None:
    script = (REPO_ROOT / "hack" / "actionlint.sh").read_text()
    version = re.search(r"^ACTIONLINT_VERSION=(\S+)$", script, re.M)
    assert version
    cache = Path(os.environ.get("MODELMON_CACHE", Path.home() / ".cache" / "modelmon"))
    binary = cache / "bin" / f"actionlint-{version[1]}" / "actionlint"
    return binary if binary.is_file() else None


def test_actionlint_passes_the_workflow_and_fails_a_broken_one(tmp_path: Path) -> None:
    binary = actionlint_binary()
    if binary is None:
        pytest.skip("actionlint is not built yet (make lint builds it)")
    ok = subprocess.run([str(binary), str(WORKFLOW)], capture_output=True, text=True,
                        check=False, cwd=REPO_ROOT)
    assert ok.returncode == 0, ok.stdout
    broken = tmp_path / "release.yaml"
    broken.write_text(WORKFLOW.read_text().replace("needs.check.outputs.image",
                                                   "needs.check.outputs.imag", 1))
    bad = subprocess.run([str(binary), str(broken)], capture_output=True, text=True,
                         check=False, cwd=tmp_path)
    assert bad.returncode != 0 and "imag" in bad.stdout, bad.stdout

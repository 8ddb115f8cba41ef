#!/usr/bin/env python3
"""Copy the CRDs from crds/, their single source, into the Helm chart and manifests/.

    python3 hack/sync_crds.py           # (make chart-crds) rewrite the copies
    python3 hack/sync_crds.py --check   # exit 1 and show a diff when one is stale

Every CustomResourceDefinition under crds/ goes into
helm/modelmon/templates/crds/modelmonitors.yaml, wrapped in `crds.enabled` and with the
annotation `helm.sh/resource-policy: keep` when `crds.keep` (the CRD, and with it every
ModelMonitor, then survives `helm uninstall`). Existing annotations are kept and `{{` in
the CRD text is escaped, so descriptions and CEL rules pass through Helm's template engine
unchanged. Each file of crds/ is also copied as it is to manifests/base/crd/ (kustomize
reads no files outside its folder). tests/packaging/test_chart.py fails when a copy differs
from crds/.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
TARGET = ROOT / "helm" / "modelmon" / "templates" / "crds" / "modelmonitors.yaml"
MANIFESTS = ROOT / "manifests" / "base" / "crd"
KEEP = "helm.sh/resource-policy"

HEADER = """\
{{- /*
Generated from crds/ by `make chart-crds` (hack/sync_crds.py). Do not edit: change the
API models, run `make crds` (which runs `make chart-crds` too) and commit both.
*/}}
{{- if .Values.crds.enabled }}
"""
FOOTER = "{{- end }}\n"


def _escape(text: str) -> str:
    """Text that Helm's template engine prints verbatim."""
    return text.replace("{{", '{{ "{{" }}')


def _dump(obj: Any, indent: int) -> list[str]:
    text = yaml.safe_dump(obj, sort_keys=False, width=100, allow_unicode=True)
    return [" " * indent + line for line in _escape(text).splitlines()]


def render_crd(doc: dict[str, Any]) -> str:
    """One CRD as template text: metadata first, with the keep annotation made conditional."""
    doc = dict(doc)
    meta = dict(doc.pop("metadata"))
    annotations = dict(meta.pop("annotations", None) or {})
    annotations.pop(KEEP, None)
    lines = [f"apiVersion: {doc.pop('apiVersion')}", f"kind: {doc.pop('kind')}", "metadata:"]
    lines += _dump({"name": meta.pop("name")}, 2)
    if annotations:
        lines += ["  annotations:", "    {{- if .Values.crds.keep }}",
                  f"    {KEEP}: keep", "    {{- end }}"]
        lines += _dump(annotations, 4)
    else:
        lines += ["  {{- if .Values.crds.keep }}", "  annotations:", f"    {KEEP}: keep",
                  "  {{- end }}"]
    if meta:
        lines += _dump(meta, 2)
    lines += _dump(doc, 0)
    return "\n".join(lines) + "\n"


def source_crds(directory: Path = SOURCE) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the YAML files under `directory`, by name."""
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    if not docs:
        raise SystemExit(f"no CustomResourceDefinition under {directory}")
    return sorted(docs, key=lambda d: str(d["metadata"]["name"]))


def render(directory: Path = SOURCE) -> str:
    return HEADER + "---\n".join(render_crd(d) for d in source_crds(directory)) + FOOTER


def wanted() -> dict[Path, str]:
    """Each copy's path and the text it should have."""
    out = {TARGET: render()}
    for path in sorted(SOURCE.rglob("*.y*ml")):
        out[MANIFESTS / path.relative_to(SOURCE)] = path.read_text()
    return out


def stale_files(want: dict[Path, str]) -> list[Path]:
    """Copies that differ from what crds/ gives, and files in manifests/base/crd/ it does not."""
    stale = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in sorted(MANIFESTS.rglob("*.y*ml")) if p not in want]
    return stale + extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only report whether a copy is stale")
    args = p.parse_args(argv)
    want = wanted()
    stale = stale_files(want)
    if args.check:
        for path in stale:
            have = path.read_text() if path.exists() else ""
            rel = path.relative_to(ROOT)
            sys.stdout.writelines(difflib.unified_diff(
                have.splitlines(keepends=True), want.get(path, "").splitlines(keepends=True),
                f"{rel} (committed)", f"{rel} (from crds/)"))
        if stale:
            print("stale copies of crds/: run `make chart-crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        rel = path.relative_to(ROOT)
        if path in want:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(want[path])
            print(f"wrote {rel}", file=sys.stderr)
        else:
            path.unlink()
            print(f"removed {rel} (not in crds/)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

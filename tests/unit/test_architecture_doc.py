"""docs/architecture.md stays true: every file or folder it names exists (under
operator/modelmon/ unless the path starts at the repository's root), and every dotted name
it gives as ``package.module.name`` resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.evaluation import table

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "operator" / "modelmon"
ROOT_DIRS = ("tests/", "operator/", "docs/", "benchmarks/", "hack/")


def _quoted() -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", DOC.read_text()))


def test_every_path_the_page_names_exists() -> None:
    missing = []
    for token in _quoted():
        if "/" not in token or token.startswith("/") or "<" in token:
            continue
        base = ROOT if token.startswith(ROOT_DIRS) else PACKAGE
        if not (base / token).exists():
            missing.append(token)
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_dotted_name_the_page_gives_resolves() -> None:
    # Row names of the bounds table (``check.stale``) read like dotted names but are not.
    rows = {row.name for row in table(ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "r.csv"}}, "current": {"source": {"url": "c.csv"}}}))}
    unresolved = []
    for token in set(_quoted()) - rows:
        parts = token.split(".")
        if len(parts) < 2 or not re.fullmatch(r"[a-z_][\w.]*", token) or token.endswith(".py"):
            continue
        if parts[0] not in {p.name for p in PACKAGE.iterdir()} and not (
                PACKAGE / f"{parts[0]}.py").exists():
            continue  # not one of ours (a spec field such as drift.minEffect)
        for split in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module("modelmon." + ".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:]:
                    target = getattr(target, attribute)
            except AttributeError:
                unresolved.append(token)
            break
        else:
            unresolved.append(token)
    assert not unresolved, f"docs/architecture.md names what does not exist: {unresolved}"

"""Monitor files: the ModelMonitor documents of a YAML file, a folder or a kustomize
directory, for the command line.

Beside ``cli`` at the end of the data line: ``modelmon check``, ``rules``, ``validate`` and
``report`` read monitors from files; the operator never does (it receives them parsed from
the API server). Errors name the file, the document and the field.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from modelmon.api.errors import field_errors
from modelmon.api.v1alpha1 import GROUP, KIND, ModelMonitor
from modelmon.evaluation import InvalidSpecError


def load_monitors(path: Path) -> list[ModelMonitor]:
    """Every ModelMonitor document in a YAML file; errors name the file, document, field."""
    read = read_file(path, strict=True)
    if read.problems:
        raise InvalidSpecError("\n".join(read.problems))
    return read.monitors


@dataclass
class MonitorFile:
    """What one YAML file holds: its monitors, the kinds of the documents skipped, and the
    problems found (each naming the file, the document and the field)."""

    path: Path
    monitors: list[ModelMonitor] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    kustomization: bool = False
    """A kustomization file: not read for monitors; its resources are."""


def read_file(path: Path, *, strict: bool) -> MonitorFile:
    """The monitors of one YAML file. ``strict`` (a file named on the command line): a
    document without a kind, and a file without a monitor, are problems; otherwise (a file
    found in a folder) they are skipped like documents of other kinds."""
    read = MonitorFile(path)
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except OSError as exc:
        read.problems.append(f"{path}: cannot read: {exc.strerror}")
        return read
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        read.problems.append(f"{path}: not valid YAML: {exc}")
        return read
    for number, doc in enumerate((d for d in docs if d is not None), start=1):
        where = f"{path} (document {number})"
        if not isinstance(doc, dict):
            if strict:
                read.problems.append(f"{where}: expected a mapping, got {type(doc).__name__}")
            else:
                read.skipped[type(doc).__name__] += 1
            continue
        if doc.get("kind") != "ModelMonitor":
            problem = _not_a_monitor(doc, strict=strict)
            if problem:
                read.problems.append(f"{where}: {problem}")
            else:
                read.skipped[str(doc.get("kind") or "no kind")] += 1
            continue
        try:
            read.monitors.append(ModelMonitor.model_validate(doc))
        except ValidationError as exc:
            name = (doc.get("metadata") or {}).get("name", "?")
            read.problems.extend(f"{where}, {name}: {line}" for line in field_errors(exc))
    if strict and not read.problems and not read.monitors:
        read.problems.append(f"{path}: no ModelMonitor document found")
    return read


#: The names kustomize looks for in a directory.
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def read_tree(path: Path) -> list[MonitorFile]:
    """The monitors under ``path``: a YAML file (read strictly; a kustomization file stands
    for its directory), a kustomize directory (the files and directories its ``resources``
    and ``components`` list, recursively), or a folder (every .yaml and .yml file under it;
    a kustomize directory inside it is read as one). Documents of other kinds are skipped."""
    if path.name in KUSTOMIZATION_FILES and path.is_file():
        path = path.parent  # a kustomization file named: its directory, through it
    if not path.is_dir():
        return [read_file(path, strict=True)]
    out: list[MonitorFile] = []
    _read_dir(path, out, set())
    return out


def _read_dir(folder: Path, out: list[MonitorFile], seen: set[Path]) -> None:
    if folder.resolve() in seen:
        return
    seen.add(folder.resolve())
    kustomization = next((folder / n for n in KUSTOMIZATION_FILES if (folder / n).is_file()),
                         None)
    if kustomization is None:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                _read_dir(entry, out, seen)
            elif entry.suffix in (".yaml", ".yml") and entry.resolve() not in seen:
                seen.add(entry.resolve())
                out.append(read_file(entry, strict=False))
        return
    listed = MonitorFile(kustomization, kustomization=True)
    out.append(listed)
    try:
        doc = yaml.safe_load(kustomization.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        listed.problems.append(f"{kustomization}: cannot read: {exc}")
        return
    if not isinstance(doc, dict):
        listed.problems.append(f"{kustomization}: expected a mapping")
        return
    for key in ("resources", "components"):
        for entry in doc.get(key) or []:
            target = Path(os.path.normpath(folder / str(entry)))
            if "://" in str(entry) or str(entry).startswith(("github.com/", "git@")):
                listed.skipped[f"remote resource {entry}"] += 1
            elif not target.exists():
                listed.problems.append(f"{kustomization}: {key}: {entry!r} does not exist")
            elif target.is_dir():
                _read_dir(target, out, seen)
            elif target.resolve() not in seen:
                seen.add(target.resolve())
                out.append(read_file(target, strict=False))


def _not_a_monitor(doc: dict[str, object], *, strict: bool = True) -> str | None:
    """Why a document that is not a ModelMonitor looks like a mistaken one, or None.

    Monitor files may hold other objects (the ConfigMaps a ``configMap`` source reads), so
    only a document without a kind (in a folder: one of our group without a kind), one of
    our API group, or one whose kind is a near miss of ModelMonitor is reported; the rest
    are skipped.
    """
    kind, api_version = doc.get("kind"), str(doc.get("apiVersion") or "")
    if kind is None and (strict or api_version.partition("/")[0] == GROUP):
        return "kind: required field is missing; set kind: ModelMonitor"
    if kind is None:
        return None
    near = difflib.get_close_matches(str(kind).lower(), [KIND.lower()], n=1, cutoff=0.75)
    if api_version.partition("/")[0] == GROUP or near:
        return f"kind: {kind!r} is not a kind of {GROUP}; did you mean {KIND}?"
    return None

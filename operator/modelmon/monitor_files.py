"""Monitor files: the ModelMonitor documents of a YAML file, for the command line.

Beside ``cli`` at the end of the data line: ``modelmon check``, ``rules``, ``validate`` and
``report`` read monitors from files; the operator never does (it receives them parsed from
the API server). Errors name the file, the document and the field.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import ValidationError

from modelmon.api.errors import field_errors
from modelmon.api.v1alpha1 import GROUP, KIND, ModelMonitor
from modelmon.evaluation import InvalidSpecError


def load_monitors(path: Path) -> list[ModelMonitor]:
    """Every ModelMonitor document in a YAML file; errors name the file, document, field."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except OSError as exc:
        raise InvalidSpecError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidSpecError(f"{path}: not valid YAML: {exc}") from None
    monitors: list[ModelMonitor] = []
    problems: list[str] = []
    for number, doc in enumerate((d for d in docs if d is not None), start=1):
        where = f"{path} (document {number})"
        if not isinstance(doc, dict):
            problems.append(f"{where}: expected a mapping, got {type(doc).__name__}")
            continue
        if doc.get("kind") != "ModelMonitor":
            problem = _not_a_monitor(doc)
            if problem:
                problems.append(f"{where}: {problem}")
            continue
        try:
            monitors.append(ModelMonitor.model_validate(doc))
        except ValidationError as exc:
            name = (doc.get("metadata") or {}).get("name", "?")
            problems.extend(f"{where}, {name}: {line}" for line in field_errors(exc))
    if problems:
        raise InvalidSpecError("\n".join(problems))
    if not monitors:
        raise InvalidSpecError(f"{path}: no ModelMonitor document found")
    return monitors


def _not_a_monitor(doc: dict[str, object]) -> str | None:
    """Why a document that is not a ModelMonitor looks like a mistaken one, or None.

    Monitor files may hold other objects (the ConfigMaps a ``configMap`` source reads), so
    only a document without a kind, one of our API group, or one whose kind is a near miss
    of ModelMonitor is reported; the rest are skipped.
    """
    kind, api_version = doc.get("kind"), str(doc.get("apiVersion") or "")
    if kind is None:
        return "kind: required field is missing; set kind: ModelMonitor"
    near = difflib.get_close_matches(str(kind).lower(), [KIND.lower()], n=1, cutoff=0.75)
    if api_version.partition("/")[0] == GROUP or near:
        return f"kind: {kind!r} is not a kind of {GROUP}; did you mean {KIND}?"
    return None

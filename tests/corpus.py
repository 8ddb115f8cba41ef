"""The shared test corpus: a good monitor and the bad ones made from it by merge patches."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def good_monitor() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DATA / "good_monitor.yaml").read_text())
    return doc


@dataclass(frozen=True)
class BadCase:
    name: str
    field: str
    doc: dict[str, Any]
    model_field: str

    def named_in(self, message: str, field: str | None = None) -> bool:
        """The message names ``field`` (default: the apiserver's) itself: followed by ':',
        or quoted as an unknown field. The apiserver writes map keys as ``[key]`` in CEL
        paths, which count as ``.key``."""
        name = field or self.field
        plain = re.sub(r"\[([^\]\d][^\]]*)\]", r".\1", message)
        return f"{name}:" in plain or f'unknown field "{name}"' in plain


def bad_cases() -> list[BadCase]:
    cases = yaml.safe_load((DATA / "bad_monitors.yaml").read_text())
    out = []
    for c in cases:
        doc = merge_patch(good_monitor(), c["patch"])
        doc["metadata"]["name"] = f"bad-{c['name']}"
        out.append(BadCase(c["name"], c["field"], doc, c.get("modelField", c["field"])))
    return out

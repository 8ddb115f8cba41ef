"""The ``configMap`` source: a small CSV, JSON or JSONL dataset inline in a ConfigMap.

Part of ``sources`` (second stop on the data line). For demos and tiny references: a
ConfigMap holds at most 1 MiB. The text comes from ``LoadContext.resolver`` (the
monitor's namespace in the operator, local YAML files for ``modelmon check``). JSON is
either a list of records (``[{"a": 1}, ...]``) or an object of columns
(``{"a": [1, 2]}``). The version tag is a hash of the text, which is also the cheap probe:
a ConfigMap is read whole anyway. Its size (at most 1 MiB) still counts against the
source's ``maxBytes``, and a text that does not parse is reported by its size and line,
never quoted.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import PurePosixPath
from typing import Literal

import pandas as pd

from modelmon.api.v1alpha1 import Source
from modelmon.sources.base import (
    DataError,
    LoadContext,
    Loaded,
    budget,
    register,
    register_probe,
    unparsable,
)

Format = Literal["csv", "json", "jsonl"]
EXPECTED: dict[Format, str] = {
    "csv": "CSV text with a header row",
    "json": "a JSON list of records or an object of columns",
    "jsonl": "JSON Lines (one JSON object per line)",
}
SUFFIXES: dict[str, Format] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl",
                               ".ndjson": "jsonl"}


def _text(source: Source, ctx: LoadContext) -> tuple[str, str]:
    spec = source.config_map
    assert spec is not None
    where = f"{ctx.role}.configMap"
    text = ctx.need_resolver(where).config_map(spec.name, spec.key)
    return text, where


def _version(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class ShapeError(ValueError):
    """JSON that parsed but is not a table (our own words, never the data's)."""


def parse(text: str, fmt: Format) -> pd.DataFrame:
    """A DataFrame from CSV, JSON (records or columns) or JSONL text."""
    if fmt == "csv":
        return pd.read_csv(io.StringIO(text))
    if fmt == "jsonl":
        return pd.read_json(io.StringIO(text), lines=True)
    data = json.loads(text)
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise ShapeError("a JSON list must hold objects (one per row)")
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict):
        if not all(isinstance(v, list) for v in data.values()):
            raise ShapeError("a JSON object must map each column to a list of values")
        return pd.DataFrame(data)
    raise ShapeError("expected a list of records or an object of columns")


@register("configMap")
def load_config_map(source: Source, ctx: LoadContext) -> Loaded:
    """Parse the dataset held in one key of a ConfigMap."""
    spec = source.config_map
    assert spec is not None
    text, where = _text(source, ctx)
    size = len(text.encode())
    budget(source, ctx).declare(size)
    fmt = spec.format or SUFFIXES.get(PurePosixPath(spec.key).suffix.lower())
    if fmt is None:
        raise DataError(f"{where}.format: cannot tell the format of key {spec.key!r} from "
                        "its suffix; set format to csv, json or jsonl")
    try:
        frame = parse(text, fmt)
    except ShapeError as exc:
        raise DataError(f"{where}: key {spec.key!r} of ConfigMap {spec.name!r} is not "
                        f"readable as {fmt}: {exc}") from None
    except Exception as exc:
        raise DataError(f"{where}: " + unparsable(
            f"key {spec.key!r} of ConfigMap {spec.name!r}", fmt, EXPECTED[fmt], size, exc)
            ) from None
    if frame.columns.empty:
        raise DataError(f"{where}: key {spec.key!r} of ConfigMap {spec.name!r} has no "
                        "columns")
    return Loaded(frame=frame, version=_version(text))


@register_probe("configMap")
def probe_config_map(source: Source, ctx: LoadContext) -> str | None:
    """A hash of the ConfigMap's text (small; read whole but not parsed)."""
    return _version(_text(source, ctx)[0])

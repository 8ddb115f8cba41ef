"""The configMap source: small inline datasets."""

from __future__ import annotations

import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError, load, version
from modelmon.sources.resolvers import LocalResolver

ROWS = {"x": [1.5, 2.5], "label": ["a", "b"]}
TEXTS = {
    "d.csv": "x,label\n1.5,a\n2.5,b\n",
    "d.jsonl": '{"x": 1.5, "label": "a"}\n{"x": 2.5, "label": "b"}\n',
    "records.json": '[{"x": 1.5, "label": "a"}, {"x": 2.5, "label": "b"}]',
    "columns.json": '{"x": [1.5, 2.5], "label": ["a", "b"]}',
    "data": "x,label\n1.5,a\n2.5,b\n",
    "bad.json": '{"x": 1}',
    "empty.csv": "\n",
}


class Maps(LocalResolver):
    def __init__(self, texts: dict[str, str]) -> None:
        super().__init__(env={})
        self.texts = texts

    def config_map(self, name: str, key: str) -> str:
        if name != "tiny" or key not in self.texts:
            raise SourceError(f"ConfigMap {name!r} key {key!r} not found")
        return self.texts[key]


def cm(key: str, fmt: str | None = None) -> Source:
    spec = {"name": "tiny", "key": key} | ({"format": fmt} if fmt else {})
    return Source.model_validate({"configMap": spec})


CTX = LoadContext(role="spec.reference.source", resolver=Maps(TEXTS))


@pytest.mark.parametrize("key", ["d.csv", "d.jsonl", "records.json", "columns.json"])
def test_formats(key: str) -> None:
    assert load(cm(key), CTX).frame.to_dict("list") == ROWS


def test_declared_format_and_unknown_suffix() -> None:
    assert load(cm("data", "csv"), CTX).frame.to_dict("list") == ROWS
    with pytest.raises(DataError, match=r"spec\.reference\.source\.configMap\.format"):
        load(cm("data"), CTX)


def test_unreadable_and_missing() -> None:
    with pytest.raises(DataError, match="not readable as json: a JSON object must map"):
        load(cm("bad.json"), CTX)
    with pytest.raises(DataError, match="not readable as csv"):
        load(cm("empty.csv"), CTX)
    with pytest.raises(SourceError, match="not found"):
        load(cm("nope.csv"), CTX)
    with pytest.raises(SourceError, match="no resolver"):
        load(cm("d.csv"), LoadContext())


def test_version_is_the_content_hash() -> None:
    texts = dict(TEXTS)
    ctx = LoadContext(resolver=Maps(texts))
    first = version(cm("d.csv"), ctx)
    assert first == load(cm("d.csv"), ctx).version
    texts["d.csv"] += "3.5,c\n"
    assert version(cm("d.csv"), ctx) != first

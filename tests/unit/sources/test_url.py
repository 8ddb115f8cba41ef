"""The url source: formats, local and http(s), errors and redaction."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError, load
from modelmon.sources.url import redact_url

FRAME = pd.DataFrame({"a": [1.0, 2.5, None], "b": ["x", "y", "z"], "c": [1, 2, 3]})


@pytest.fixture
def files(tmp_path: Path) -> Path:
    FRAME.to_csv(tmp_path / "d.csv", index=False)
    FRAME.to_parquet(tmp_path / "d.parquet", index=False)
    FRAME.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    FRAME.to_csv(tmp_path / "d.txt", index=False)
    return tmp_path


@pytest.mark.parametrize("name", ["d.csv", "d.parquet", "d.jsonl"])
def test_formats_by_suffix(files: Path, name: str) -> None:
    got = load(Source(url=name), LoadContext(base_dir=files)).frame
    pd.testing.assert_frame_equal(got.reset_index(drop=True), FRAME, check_dtype=False)


def test_parquet_reads_only_needed_columns(files: Path) -> None:
    got = load(Source(url="d.parquet"), LoadContext(base_dir=files, columns=["b", "zz"])).frame
    assert list(got.columns) == ["b"]


def test_declared_format_wins_and_unknown_suffix_errors(files: Path) -> None:
    got = load(Source(url="d.txt", format="csv"), LoadContext(base_dir=files)).frame
    assert len(got) == 3
    with pytest.raises(DataError, match="set format"):
        load(Source(url="d.txt"), LoadContext(base_dir=files))


def test_absolute_path_and_version_changes(files: Path) -> None:
    path = str(files / "d.csv")
    first = load(Source(url=path), LoadContext()).version
    assert load(Source(url=path), LoadContext()).version == first
    (files / "d.csv").write_text("a\n1\n2\n3\n4\n")
    assert load(Source(url=path), LoadContext()).version != first


def test_missing_file_names_role_and_base(files: Path) -> None:
    with pytest.raises(SourceError) as info:
        load(Source(url="nope.csv"), LoadContext(base_dir=files, role="spec.current.source"))
    assert "spec.current.source.url" in str(info.value) and str(files) in str(info.value)


def test_unreadable_content(files: Path) -> None:
    (files / "bad.parquet").write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="not readable as parquet"):
        load(Source(url="bad.parquet"), LoadContext(base_dir=files))


def test_unsupported_scheme() -> None:
    with pytest.raises(SourceError, match="not supported"):
        load(Source(url="ftp://host/x.csv"), LoadContext())


@pytest.fixture
def http_root(files: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_http_source(http_root: str) -> None:
    loaded = load(Source(url=f"{http_root}/d.parquet"), LoadContext())
    assert len(loaded.frame) == 3 and loaded.version.startswith("sha256:")


def test_http_errors_are_redacted(http_root: str) -> None:
    port = http_root.rsplit(":", 1)[1]
    with pytest.raises(SourceError) as info:
        load(Source(url=f"http://user:s3cret@127.0.0.1:{port}/missing.csv?token=abc"),
             LoadContext(role="spec.reference.source"))
    text = str(info.value)
    assert "not found" in text and "s3cret" not in text and "token" not in text
    with pytest.raises(SourceError) as info:
        load(Source(url="http://127.0.0.1:9/x.csv?sig=topsecret"), LoadContext())
    assert "topsecret" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("https://u:p@h.example:8443/a/b.csv?x=1#f") == "https://h.example:8443/a/b.csv"
    assert redact_url("/data/x.csv") == "/data/x.csv"

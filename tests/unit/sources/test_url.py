"""The url source: formats, local and http(s), errors and redaction."""

from __future__ import annotations

import http.server
import os
import threading
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from pydantic import ValidationError

from loopback import HttpServers
from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError, load, version
from modelmon.sources.url import partition_interval, redact_url

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
    # Refused by the model (and the CRD) now; the loader still refuses one built unchecked.
    with pytest.raises(ValidationError, match="url: scheme 'ftp' is not supported"):
        Source(url="ftp://host/x.csv")
    with pytest.raises(SourceError, match="not supported"):
        load(Source.model_construct(url="ftp://host/x.csv"), LoadContext())


@pytest.fixture
def http_root(files: Path, http_servers: HttpServers) -> str:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    return http_servers.start(handler)


def test_http_source(http_root: str) -> None:
    loaded = load(Source(url=f"{http_root}/d.parquet"), LoadContext())
    assert len(loaded.frame) == 3 and "modified=" in loaded.version  # from Last-Modified


def test_http_errors_are_redacted(http_root: str) -> None:
    port = http_root.rsplit(":", 1)[1]
    with pytest.raises(SourceError) as info:
        load(Source(url=f"http://user:s3cret@127.0.0.1:{port}/missing.csv?token=abc"),
             LoadContext(role="spec.reference.source"))
    text = str(info.value)
    assert "not found" in text and "s3cret" not in text and "token" not in text
    with pytest.raises(SourceError) as info:
        load(Source(url="http://127.0.0.1:9/x.csv?sig=topsecret"), LoadContext(retries=0))
    assert "topsecret" not in str(info.value) and info.value.transient


@pytest.mark.parametrize("query", ["", "?X-Amz-Signature=topsecret"])
def test_http_access_denied_points_at_the_url(counting_root: str, query: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(self: CountingHandler) -> None:
        self.send_error(403, "expired")

    monkeypatch.setattr(CountingHandler, "do_GET", forbidden)
    monkeypatch.setattr(CountingHandler, "do_HEAD", forbidden)
    with pytest.raises(SourceError) as info:
        load(Source(url=f"{counting_root}/d.csv{query}"),
             LoadContext(role="spec.current.source", retries=0))
    text = str(info.value)
    assert text.startswith(f"spec.current.source.url: access denied to read {counting_root}"
                           "/d.csv")
    assert "check that the url's user info or signature" in text, text
    assert "credentialsSecretRef" not in text and "topsecret" not in text
    assert not info.value.transient


def test_redact_url() -> None:
    assert redact_url("https://u:p@h.example:8443/a/b.csv?x=1#f") == "https://h.example:8443/a/b.csv"
    assert redact_url("/data/x.csv") == "/data/x.csv"


# ------------------------------------------------------------------- prefixes, partitions


def _write(root: Path, relative: str, frame: pd.DataFrame) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if relative.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def test_prefix_concatenates_data_files_in_path_order(tmp_path: Path) -> None:
    _write(tmp_path, "d/b/part-1.csv", pd.DataFrame({"x": [3, 4]}))
    _write(tmp_path, "d/a/part-0.csv", pd.DataFrame({"x": [1, 2]}))
    (tmp_path / "d/_SUCCESS").write_text("")
    (tmp_path / "d/notes.txt").write_text("not data")
    (tmp_path / "d/_temporary").mkdir()
    (tmp_path / "d/_temporary/part-9.csv").write_text("x\n99\n")
    got = load(Source(url="d/"), LoadContext(base_dir=tmp_path)).frame
    assert got["x"].tolist() == [1, 2, 3, 4]


def test_prefix_needs_one_format_and_some_files(tmp_path: Path) -> None:
    _write(tmp_path, "m/a.csv", pd.DataFrame({"x": [1]}))
    _write(tmp_path, "m/b.parquet", pd.DataFrame({"x": [2]}))
    with pytest.raises(DataError, match="holds csv, parquet files; set format"):
        load(Source(url="m/"), LoadContext(base_dir=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no csv, parquet or jsonl files under"):
        load(Source(url="empty/"), LoadContext(base_dir=tmp_path))


def test_prefix_with_declared_format_reads_files_without_suffix(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s/part-00000").write_text("x\n1\n")
    (tmp_path / "s/part-00001").write_text("x\n2\n")
    got = load(Source(url="s/", format="csv"), LoadContext(base_dir=tmp_path)).frame
    assert got["x"].tolist() == [1, 2]


def test_prefix_schema_change_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "p/0.csv", pd.DataFrame({"a": [1], "b": [2]}))
    _write(tmp_path, "p/1.csv", pd.DataFrame({"a": [1]}))
    with pytest.raises(DataError, match=r"1\.csv lacks b"):
        load(Source(url="p/"), LoadContext(base_dir=tmp_path, role="spec.current.source"))


@pytest.mark.parametrize(("relative", "expected"), [
    ("date=2026-11-24/x.csv", ("2026-11-24T00:00", "2026-11-25T00:00")),
    ("dt=20261124/hour=07/x.csv", ("2026-11-24T07:00", "2026-11-24T08:00")),
    ("a/ds=2026-11-24/b/x.csv", ("2026-11-24T00:00", "2026-11-25T00:00")),
    ("year=2026/month=12/x.csv", ("2026-12-01T00:00", "2027-01-01T00:00")),
    ("year=2026/month=11/day=24/hour=23/x.csv", ("2026-11-24T23:00", "2026-11-25T00:00")),
    ("year=2026/x.csv", ("2026-01-01T00:00", "2027-01-01T00:00")),
    ("x.csv", None),
    ("date=2026-13-45/x.csv", None),
    ("date=2026-11-24.csv", None),
])
def test_partition_interval(relative: str, expected: tuple[str, str] | None) -> None:
    got = partition_interval(relative)
    if expected is None:
        assert got is None
    else:
        assert got == tuple(datetime.fromisoformat(e).replace(tzinfo=UTC) for e in expected)


def test_prune_partitions_keeps_overlapping_days_and_unpartitioned_files(tmp_path: Path
                                                                         ) -> None:
    for day in ("2026-11-22", "2026-11-23", "2026-11-24"):
        _write(tmp_path, f"e/date={day}/part.csv", pd.DataFrame({"day": [day]}))
    _write(tmp_path, "e/late.csv", pd.DataFrame({"day": ["unpartitioned"]}))
    window = LoadContext(base_dir=tmp_path,
                         window_start=datetime(2026, 11, 23, 22, tzinfo=UTC),
                         window_end=datetime(2026, 11, 24, 2, tzinfo=UTC))
    got = load(Source(url="e/", prune_partitions=True), window).frame
    assert sorted(got["day"]) == ["2026-11-23", "2026-11-24", "unpartitioned"]
    assert len(load(Source(url="e/"), window).frame) == 4  # not asked to prune
    outside = LoadContext(base_dir=tmp_path, window_start=datetime(2026, 1, 1, tzinfo=UTC),
                          window_end=datetime(2026, 1, 2, tzinfo=UTC))
    (tmp_path / "e/late.csv").unlink()
    with pytest.raises(SourceError, match="in the window's date partitions"):
        load(Source(url="e/", prune_partitions=True), outside)


# --------------------------------------------------------------------------- versions


def test_local_probe_reads_no_data(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations import local

    src = Source(url=str(files / "d.csv"))
    before = version(src, LoadContext())

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the probe read the data")

    monkeypatch.setattr(local.LocalFileSystem, "cat_file", no_reading)
    monkeypatch.setattr(local.LocalFileSystem, "open", no_reading)
    monkeypatch.setattr(local.LocalFileSystem, "_open", no_reading)
    assert version(src, LoadContext()) == before
    assert version(Source(url=f"{files}/"), LoadContext()) is not None
    monkeypatch.undo()
    (files / "d.csv").write_text("a\n1\n")
    after = version(src, LoadContext())
    assert after != before and load(src, LoadContext()).version == after


def test_prefix_version_follows_added_and_changed_files(tmp_path: Path) -> None:
    _write(tmp_path, "v/a.csv", pd.DataFrame({"x": [1]}))
    src, ctx = Source(url="v/"), LoadContext(base_dir=tmp_path)
    first = version(src, ctx)
    assert version(src, ctx) == first == load(src, ctx).version
    _write(tmp_path, "v/b.csv", pd.DataFrame({"x": [2]}))
    second = version(src, ctx)
    assert second != first
    (tmp_path / "v/_SUCCESS").write_text("")  # not data: no new version
    assert version(src, ctx) == second


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; counts requests by method; may fail or hide validators."""

    counts: ClassVar[dict[str, int]] = {}
    fail_next: ClassVar[int] = 0
    validators: ClassVar[bool] = True

    def log_message(self, *args: object) -> None:
        pass

    def send_header(self, keyword: str, value: str) -> None:
        if CountingHandler.validators or keyword not in ("Last-Modified", "ETag"):
            super().send_header(keyword, value)

    def _count(self) -> bool:
        CountingHandler.counts[self.command] = CountingHandler.counts.get(self.command, 0) + 1
        if CountingHandler.fail_next > 0:
            CountingHandler.fail_next -= 1
            self.send_error(503, "busy")
            return False
        return True

    def do_GET(self) -> None:
        if self._count():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._count():
            super().do_HEAD()


@pytest.fixture
def counting_root(files: Path, http_servers: HttpServers) -> str:
    CountingHandler.counts = {}
    CountingHandler.fail_next = 0
    CountingHandler.validators = True
    return http_servers.start(partial(CountingHandler, directory=str(files)))


def test_http_probe_is_a_head_request(counting_root: str, files: Path) -> None:
    src = Source(url=f"{counting_root}/d.csv")
    first = version(src, LoadContext())
    assert first is not None and CountingHandler.counts == {"HEAD": 1}
    (files / "d.csv").write_text("a\n1\n2\n")
    os.utime(files / "d.csv", (1_900_000_000, 1_900_000_000))
    assert version(src, LoadContext()) != first
    assert CountingHandler.counts.get("GET", 0) == 0


def test_http_without_validators_is_versioned_by_content(counting_root: str) -> None:
    CountingHandler.validators = False
    src = Source(url=f"{counting_root}/d.csv")
    assert version(src, LoadContext()) is None
    assert load(src, LoadContext()).version.startswith("sha256:")


def test_transient_failures_are_retried_with_backoff(counting_root: str) -> None:
    CountingHandler.fail_next = 2
    loaded = load(Source(url=f"{counting_root}/d.csv"),
                  LoadContext(retries=2, retry_delay=0.01))
    assert len(loaded.frame) == 3 and CountingHandler.counts["HEAD"] == 3
    CountingHandler.fail_next = 5
    with pytest.raises(SourceError, match="503") as info:
        load(Source(url=f"{counting_root}/d.csv"), LoadContext(retries=1, retry_delay=0.01))
    assert info.value.transient and CountingHandler.counts["HEAD"] == 5


def test_remote_prefix_over_http_and_credentials_for_http_are_refused() -> None:
    with pytest.raises(SourceError, match="http\\(s\\) has no listing"):
        load(Source(url="http://127.0.0.1:9/data/"), LoadContext())
    with pytest.raises(SourceError, match="only s3:// and gs:// urls take credentials"):
        load(Source.model_validate({"url": "http://127.0.0.1:9/x.csv",
                                    "credentialsSecretRef": {"name": "s"}}), LoadContext())


def test_s3_credentials_need_a_resolver() -> None:
    src = Source.model_validate({"url": "s3://bucket/x.csv",
                                 "credentialsSecretRef": {"name": "s3"}})
    with pytest.raises(SourceError, match=r"spec\.reference\.source\.credentialsSecretRef"):
        load(src, LoadContext(role="spec.reference.source"))


# ---------------------------------------------------------------------------- time-outs


def test_a_stalled_http_server_times_out_naming_the_field(stalled_port: int) -> None:
    src = Source.model_validate({"url": f"http://127.0.0.1:{stalled_port}/d.csv?sig=topsecret",
                                 "timeout": "1s"})
    with pytest.raises(SourceError) as info:
        load(src, LoadContext(role="spec.current.source", retries=0))
    text = str(info.value)
    assert text.startswith("spec.current.source.url: ")
    assert "did not answer within 1s (spec.current.source.timeout)" in text, text
    assert "raise spec.current.source.timeout" in text
    assert info.value.transient and "topsecret" not in text


def test_a_server_that_stalls_on_the_data_times_out(counting_root: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # HEAD answers; the GET of the data stalls (well past the timeout) before any byte.
    release = threading.Event()

    def stall_get(self: CountingHandler) -> None:
        CountingHandler.counts["GET"] = CountingHandler.counts.get("GET", 0) + 1
        release.wait(30)

    monkeypatch.setattr(CountingHandler, "do_GET", stall_get)
    src = Source.model_validate({"url": f"{counting_root}/d.csv", "timeout": "1s"})
    try:
        with pytest.raises(SourceError, match=r"did not answer within 1s \(spec\.reference"
                                              r"\.source\.timeout\)") as info:
            load(src, LoadContext(role="spec.reference.source", retries=1, retry_delay=0.01))
    finally:
        release.set()
    assert info.value.transient and CountingHandler.counts == {"HEAD": 2, "GET": 2}


@pytest.mark.parametrize(("doc", "message"), [
    ({"sql": {"connectionSecretRef": {"name": "d", "key": "u"}, "query": "SELECT 1"},
      "timeout": "5s"}, "timeout go with url"),
    ({"url": "http://h/x.csv", "timeout": "0s"}, "timeout: must be longer than 0s"),
    ({"url": "http://h/x.csv", "timeout": "soon"}, "timeout"),
])
def test_timeout_goes_with_url_and_is_positive(doc: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Source.model_validate(doc)


# ---------------------------------------------------------------- parquet byte ranges


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory with single byte ranges (as object stores and CDNs do) and
    counts the bytes of file content it sends."""

    sent: ClassVar[int] = 0
    ranges: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        wanted = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start = len(data) - int(last) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        body = data[start:end + 1]
        RangeHandler.ranges.append(wanted)
        RangeHandler.sent += len(body)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def copyfile(self, source: object, outputfile: object) -> None:
        # A whole-file answer (no Range): count its bytes too.
        data = source.read()  # type: ignore[attr-defined]
        RangeHandler.sent += len(data)
        outputfile.write(data)  # type: ignore[attr-defined]


def test_parquet_over_http_fetches_only_the_monitored_columns(
        tmp_path: Path, http_servers: HttpServers) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({c: rng.normal(size=40_000) for c in "abcdef"})
    frame.to_parquet(tmp_path / "wide.parquet", index=False)
    size = (tmp_path / "wide.parquet").stat().st_size
    root = http_servers.start(partial(RangeHandler, directory=str(tmp_path)))
    src = Source(url=f"{root}/wide.parquet")
    RangeHandler.sent, RangeHandler.ranges = 0, []
    everything = load(src, LoadContext()).frame
    all_bytes = RangeHandler.sent
    RangeHandler.sent, RangeHandler.ranges = 0, []
    two = load(src, LoadContext(columns=["c", "a"])).frame
    two_bytes = RangeHandler.sent
    assert list(everything.columns) == list("abcdef") and list(two.columns) == ["a", "c"]
    pd.testing.assert_frame_equal(two, frame[["a", "c"]])
    assert size * 0.95 <= all_bytes <= size * 1.05
    # Two of six equally sized columns, plus the footer: about a third of the file.
    assert two_bytes < size / 2, (two_bytes, size, RangeHandler.ranges)
    assert all(r.startswith("bytes=") for r in RangeHandler.ranges)


def test_the_schemes_the_api_admits_are_the_ones_the_loader_reads() -> None:
    """The CRD's url rule and the loader agree both ways: no scheme admitted at apply that
    the loader cannot read, none read that apply refuses."""
    from modelmon.api.v1alpha1 import URL_SCHEMES
    from modelmon.sources.url import REMOTE_SCHEMES

    assert set(URL_SCHEMES) == {*REMOTE_SCHEMES, "file"}
    for scheme in URL_SCHEMES:
        Source.model_validate({"url": f"{scheme}://bucket/data.csv"})

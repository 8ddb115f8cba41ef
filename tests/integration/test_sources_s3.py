"""The url source on s3:// against a real S3-compatible server (moto in server mode, a
process of its own on 127.0.0.1).

Credentials come from a Secret through the resolver, and moto checks them on every request
but the few its signature check gets wrong (``S3.unchecked``). Reads are counted from the
server's side, by its request recorder.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from servers import S3, free_port, moto_s3, stalled_server

from modelmon.api.v1alpha1 import Source
from modelmon.sources import (
    DataError,
    LoadContext,
    ReferenceCache,
    SourceError,
    load,
    version,
)
from modelmon.sources.resolvers import LocalResolver

BUCKET = "ml-data"
FRAME = pd.DataFrame({"a": [1.0, 2.5, 4.0], "b": ["x", "y", "z"], "c": [1, 2, 3]})


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with moto_s3() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def put(s3: S3, key: str, body: bytes | pd.DataFrame) -> None:
    if isinstance(body, pd.DataFrame):
        buffer = io.BytesIO()
        if key.endswith(".parquet"):
            body.to_parquet(buffer, index=False)
        elif key.endswith(".jsonl"):
            body.to_json(buffer, orient="records", lines=True)
        else:
            body.to_csv(buffer, index=False)
        body = buffer.getvalue()
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def ctx(s3: S3, *, secret: dict[str, str] | None = None, **kw: Any) -> LoadContext:
    values = s3.secret() if secret is None else secret
    resolver = LocalResolver({("s3", k): v for k, v in values.items()}, env={})
    return LoadContext(role="spec.reference.source", resolver=resolver, retries=0, **kw)


def url(path: str, **extra: Any) -> Source:
    return Source.model_validate({"url": f"s3://{BUCKET}/{path}",
                                  "credentialsSecretRef": {"name": "s3"}, **extra})


@pytest.fixture
def object_reads(s3: S3) -> S3:
    """The server, with its record of requests cleared: ``s3.object_reads(BUCKET)`` are
    then the GET Object requests of this test (HEADs and listings left out)."""
    s3.reset_requests()
    return s3


@pytest.mark.parametrize("name", ["d.csv", "d.parquet", "d.jsonl"])
def test_formats(s3: S3, name: str) -> None:
    put(s3, f"formats/{name}", FRAME)
    got = load(url(f"formats/{name}"), ctx(s3)).frame
    pd.testing.assert_frame_equal(got, FRAME, check_dtype=False)


def _ranged_bytes(reads: list[Any], size: int) -> int:
    """Bytes the GETs asked for: their Range headers (a GET without one: the object)."""
    total = 0
    for r in reads:
        wanted = r.headers.get("Range") or r.headers.get("range")
        if not wanted:
            total += size
            continue
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        total += int(last) if not first else min(int(last or size - 1), size - 1) - int(
            first) + 1
    return total


def test_parquet_reads_only_monitored_columns(s3: S3, object_reads: S3) -> None:
    put(s3, "cols/d.parquet", FRAME)
    got = load(url("cols/d.parquet"), ctx(s3, columns=["c", "a", "missing"])).frame
    assert list(got.columns) == ["a", "c"]
    rng = np.random.default_rng(7)
    wide = pd.DataFrame({c: rng.normal(size=40_000) for c in "abcdef"})
    put(s3, "cols/wide.parquet", wide)
    size = s3.client().head_object(Bucket=BUCKET, Key="cols/wide.parquet")["ContentLength"]
    s3.reset_requests()
    everything = load(url("cols/wide.parquet"), ctx(s3)).frame
    all_bytes = _ranged_bytes(s3.object_reads(BUCKET), size)
    s3.reset_requests()
    two = load(url("cols/wide.parquet"), ctx(s3, columns=["e", "b"])).frame
    reads = s3.object_reads(BUCKET)
    two_bytes = _ranged_bytes(reads, size)
    assert list(everything.columns) == list("abcdef")
    pd.testing.assert_frame_equal(two, wide[["b", "e"]])
    assert all_bytes >= size
    # The footer, then the two column chunks: about a third of the object.
    assert two_bytes < size / 2, (two_bytes, size, [r.headers.get("Range") for r in reads])
    assert len(reads) == 3


def test_prefix_reads_every_data_file_and_prunes_partitions(s3: S3) -> None:
    with s3.unchecked():  # keys with '=', listings with '/'
        for day, hour in [("2026-11-23", 23), ("2026-11-24", 10), ("2026-11-24", 11),
                          ("2026-11-24", 12)]:
            put(s3, f"events/date={day}/hour={hour:02d}/part-0.csv",
                pd.DataFrame({"ts": [f"{day}T{hour:02d}:30:00Z"], "x": [hour]}))
        put(s3, "events/_SUCCESS", b"")
        put(s3, "events/date=2026-11-24/.part-1.csv.crc", b"junk")
        everything = load(url("events/"), ctx(s3)).frame
        assert sorted(everything["x"]) == [10, 11, 12, 23]
        window = ctx(s3, window_start=datetime(2026, 11, 24, 10, 45, tzinfo=UTC),
                     window_end=datetime(2026, 11, 24, 11, 15, tzinfo=UTC))
        pruned = load(url("events/", prunePartitions=True), window).frame
    assert sorted(pruned["x"]) == [10, 11]


def test_schema_change_under_a_prefix_is_invalid_data(s3: S3) -> None:
    put(s3, "drift/part-0.csv", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    put(s3, "drift/part-1.csv", pd.DataFrame({"a": ["high", "low"], "b": ["x", "y"]}))
    with s3.unchecked(), pytest.raises(DataError) as info:
        load(url("drift/"), ctx(s3))
    text = str(info.value)
    assert "spec.reference.source.url" in text and "schema changed" in text
    assert "'a'" in text and "part-1.csv" in text


def test_credentials_from_the_secret_are_checked(s3: S3) -> None:
    put(s3, "auth/d.csv", FRAME)
    assert len(load(url("auth/d.csv"), ctx(s3)).frame) == 3
    wrong = {**s3.secret(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}
    with pytest.raises(SourceError) as info:
        load(url("auth/d.csv"), ctx(s3, secret=wrong))
    unknown = {**s3.secret(), "AWS_ACCESS_KEY_ID": "TESTUNKNOWNKEY000000"}
    with pytest.raises(SourceError) as info2:
        load(url("auth/d.csv"), ctx(s3, secret=unknown))
    for error in (info.value, info2.value):
        text = str(error)
        assert "access denied" in text and "credentialsSecretRef" in text
        assert not error.transient
        for secret in (s3.secret_key, "wrong-secret-value", s3.access_key,
                       "TESTUNKNOWNKEY000000"):
            assert secret not in text


def test_missing_secret_key_names_the_field(s3: S3) -> None:
    partial = {"AWS_ACCESS_KEY_ID": s3.access_key}
    with pytest.raises(SourceError) as info:
        load(url("auth/d.csv"), ctx(s3, secret=partial))
    assert "AWS_SECRET_ACCESS_KEY" in str(info.value) and s3.access_key not in str(info.value)


def test_missing_object_and_bucket(s3: S3) -> None:
    # s3fs tells a missing key by a listing with delimiter '/' after the HEAD's 404.
    with s3.unchecked(), pytest.raises(SourceError,
                                       match=r"s3://ml-data/nope\.csv not found") as info:
        load(url("nope.csv"), ctx(s3))
    assert not info.value.transient
    other = Source.model_validate({"url": "s3://no-such-bucket/x.csv",
                                   "credentialsSecretRef": {"name": "s3"}})
    with s3.unchecked(), pytest.raises(SourceError, match="not found"):
        load(other, ctx(s3))
    with s3.unchecked(), pytest.raises(SourceError, match="no csv, parquet or jsonl files"):
        load(url("empty-prefix/"), ctx(s3))


def test_unreachable_endpoint_is_transient(s3: S3) -> None:
    closed = {**s3.secret(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(SourceError) as info:
        load(url("auth/d.csv"), ctx(s3, secret=closed))
    assert info.value.transient and s3.secret_key not in str(info.value)


def test_a_stalled_endpoint_times_out_naming_the_field(s3: S3) -> None:
    with stalled_server() as hung:
        secret = {**s3.secret(), "AWS_ENDPOINT_URL": hung}
        with pytest.raises(SourceError) as info:
            load(url("auth/d.csv", timeout="1s"), ctx(s3, secret=secret))
    text = str(info.value)
    assert text.startswith("spec.reference.source.url: s3://ml-data/auth/d.csv")
    assert "did not answer within 1s (spec.reference.source.timeout)" in text, text
    assert info.value.transient and s3.secret_key not in text and s3.access_key not in text


def test_version_probe_reads_no_data_and_follows_changes(s3: S3, object_reads: S3) -> None:
    put(s3, "probe/ref.csv", FRAME)
    put(s3, "probe-prefix/a.csv", FRAME)
    single, prefix = url("probe/ref.csv"), url("probe-prefix/")
    with s3.unchecked():  # the prefix's listing
        first = [version(single, ctx(s3)), version(prefix, ctx(s3))]
        assert all(v is not None for v in first)
        assert [version(single, ctx(s3)), version(prefix, ctx(s3))] == first
        assert s3.object_reads(BUCKET) == []
        put(s3, "probe/ref.csv", FRAME.iloc[:2])
        put(s3, "probe-prefix/b.csv", FRAME)
        second = [version(single, ctx(s3)), version(prefix, ctx(s3))]
        assert second[0] != first[0] and second[1] != first[1]
        assert s3.object_reads(BUCKET) == []
        assert load(single, ctx(s3)).version == second[0]
        assert load(prefix, ctx(s3)).version == second[1]
    assert [r.path for r in s3.object_reads(BUCKET)] == [
        "/ml-data/probe/ref.csv", "/ml-data/probe-prefix/a.csv", "/ml-data/probe-prefix/b.csv"]


def test_reference_is_read_once_until_it_changes(s3: S3, object_reads: S3) -> None:
    put(s3, "cached/ref.csv", FRAME)
    cache: ReferenceCache[int] = ReferenceCache()
    source = url("cached/ref.csv")
    for _ in range(10):
        got = cache.get(("ns", "monitor", 1), source, ctx(s3), lambda loaded: len(loaded.frame))
        assert got.value == 3
    assert len(s3.object_reads(BUCKET)) == 1 and cache.loads == 1 and cache.hits == 9
    put(s3, "cached/ref.csv", FRAME.iloc[:1])
    got = cache.get(("ns", "monitor", 1), source, ctx(s3), lambda loaded: len(loaded.frame))
    assert got.loaded and got.built and got.value == 1
    assert len(s3.object_reads(BUCKET)) == 2 and cache.builds == 2


def test_an_object_over_max_bytes_is_refused_before_a_get(s3: S3, object_reads: S3) -> None:
    body = FRAME.to_csv(index=False).encode() * 100
    put(s3, "budget/big.csv", body)
    put(s3, "budget/prefix/one.csv", FRAME)
    put(s3, "budget/prefix/two.csv", FRAME)
    s3.reset_requests()
    with pytest.raises(DataError) as info:
        load(url("budget/big.csv", maxBytes=1000), ctx(s3))
    assert str(info.value).startswith(
        "spec.reference.source.maxBytes: the source has more than 1000 bytes "
        f"(size {len(body)}); raise maxBytes or narrow the window")
    assert s3.object_reads(BUCKET) == []  # refused from the object's size
    one = len(FRAME.to_csv(index=False).encode())
    with s3.unchecked():  # listings with '/' (moto's signature check)
        with pytest.raises(DataError, match=rf"\(2 files, size together {2 * one}\)"):
            load(url("budget/prefix/", maxBytes=one + 1), ctx(s3))
        assert len(load(url("budget/prefix/", maxBytes=2 * one), ctx(s3)).frame) == 6

"""The url source on s3:// against a real S3-compatible server (moto, server mode, 127.0.0.1).

Credentials come from a Secret through the resolver; moto checks them where it can (see
``S3.checking_credentials``).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from servers import S3, free_port, moto_s3

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
def object_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys of the GET Object requests the server answers (HEAD and listings excluded)."""
    from moto.s3.responses import S3Response

    reads: list[str] = []
    lock = threading.Lock()
    original = S3Response._key_response_get

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            reads.append(str(args[1] if len(args) > 1 else kwargs.get("key_name")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Response, "_key_response_get", counting)
    return reads


@pytest.mark.parametrize("name", ["d.csv", "d.parquet", "d.jsonl"])
def test_formats(s3: S3, name: str) -> None:
    put(s3, f"formats/{name}", FRAME)
    got = load(url(f"formats/{name}"), ctx(s3)).frame
    pd.testing.assert_frame_equal(got, FRAME, check_dtype=False)


def test_parquet_reads_only_monitored_columns(s3: S3) -> None:
    put(s3, "cols/d.parquet", FRAME)
    got = load(url("cols/d.parquet"), ctx(s3, columns=["c", "a", "missing"])).frame
    assert list(got.columns) == ["a", "c"]


def test_prefix_reads_every_data_file_and_prunes_partitions(s3: S3) -> None:
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
    with pytest.raises(DataError) as info:
        load(url("drift/"), ctx(s3))
    text = str(info.value)
    assert "spec.reference.source.url" in text and "schema changed" in text
    assert "'a'" in text and "part-1.csv" in text


def test_credentials_from_the_secret_are_checked(s3: S3) -> None:
    put(s3, "auth/d.csv", FRAME)
    with s3.checking_credentials():
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
    with pytest.raises(SourceError, match=r"s3://ml-data/nope\.csv not found") as info:
        load(url("nope.csv"), ctx(s3))
    assert not info.value.transient
    other = Source.model_validate({"url": "s3://no-such-bucket/x.csv",
                                   "credentialsSecretRef": {"name": "s3"}})
    with pytest.raises(SourceError, match="not found"):
        load(other, ctx(s3))
    with pytest.raises(SourceError, match="no csv, parquet or jsonl files under"):
        load(url("empty-prefix/"), ctx(s3))


def test_unreachable_endpoint_is_transient(s3: S3) -> None:
    closed = {**s3.secret(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(SourceError) as info:
        load(url("auth/d.csv"), ctx(s3, secret=closed))
    assert info.value.transient and s3.secret_key not in str(info.value)


def test_version_probe_reads_no_data_and_follows_changes(s3: S3,
                                                         object_reads: list[str]) -> None:
    put(s3, "probe/ref.csv", FRAME)
    put(s3, "probe-prefix/a.csv", FRAME)
    single, prefix = url("probe/ref.csv"), url("probe-prefix/")
    first = [version(single, ctx(s3)), version(prefix, ctx(s3))]
    assert all(v is not None for v in first)
    assert [version(single, ctx(s3)), version(prefix, ctx(s3))] == first
    assert object_reads == []
    put(s3, "probe/ref.csv", FRAME.iloc[:2])
    put(s3, "probe-prefix/b.csv", FRAME)
    second = [version(single, ctx(s3)), version(prefix, ctx(s3))]
    assert second[0] != first[0] and second[1] != first[1]
    assert object_reads == []
    assert load(single, ctx(s3)).version == second[0]
    assert load(prefix, ctx(s3)).version == second[1]
    assert len(object_reads) == 3


def test_reference_is_read_once_until_it_changes(s3: S3, object_reads: list[str]) -> None:
    put(s3, "cached/ref.csv", FRAME)
    cache: ReferenceCache[int] = ReferenceCache()
    source = url("cached/ref.csv")
    for _ in range(10):
        got = cache.get(("ns", "monitor", 1), source, ctx(s3), lambda loaded: len(loaded.frame))
        assert got.value == 3
    assert len(object_reads) == 1 and cache.loads == 1 and cache.hits == 9
    put(s3, "cached/ref.csv", FRAME.iloc[:1])
    got = cache.get(("ns", "monitor", 1), source, ctx(s3), lambda loaded: len(loaded.frame))
    assert got.loaded and got.built and got.value == 1
    assert len(object_reads) == 2 and cache.builds == 2

"""The url source on gs:// against a GCS-compatible server on 127.0.0.1 (fake-gcs-server, built
from its Go module at a pinned version).

The credentials are a real service account key from a Secret: gcsfs signs a JWT with it
and trades it for a bearer token at the key's ``token_uri`` (a local token service here).
fake-gcs-server accepts any token, so the 403 and 503 answers come from a pass-through
proxy in front of it (``servers.front``). Content reads are counted from the server's
access log.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from servers import Gcs, TokenService, fake_gcs, front, stalled_server, token_service

from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, ReferenceCache, SourceError, load, version
from modelmon.sources.resolvers import LocalResolver

BUCKET = "ml-data"
FRAME = pd.DataFrame({"a": [1.0, 2.5, 4.0], "b": ["x", "y", "z"], "c": [1, 2, 3]})


def service_account_key(token_uri: str) -> dict[str, str]:
    """A freshly generated service account key (RSA 2048) whose tokens come from
    ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "test-project",
            "private_key_id": secrets.token_hex(20), "private_key": pem,
            "client_email": "monitor@test-project.iam.gserviceaccount.com",
            "client_id": "100000000000000000001", "token_uri": token_uri}


@pytest.fixture(scope="module")
def gcs() -> Iterator[Gcs]:
    with fake_gcs() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenService]:
    with token_service() as service:
        yield service


@pytest.fixture(scope="module")
def key(tokens: TokenService) -> dict[str, str]:
    return service_account_key(tokens.url)


@pytest.fixture(autouse=True)
def endpoint(gcs: Gcs, tokens: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    """gcsfs talks to the local server (its documented emulator setting)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    tokens.refuse = False


def ctx(key: dict[str, str], **kw: Any) -> LoadContext:
    resolver = LocalResolver({("gcs", "service-account.json"): json.dumps(key)}, env={})
    return LoadContext(role="spec.reference.source", resolver=resolver, retries=0, **kw)


def url(path: str, **extra: Any) -> Source:
    return Source.model_validate({"url": f"gs://{BUCKET}/{path}",
                                  "credentialsSecretRef": {"name": "gcs"}, **extra})


def put(gcs: Gcs, name: str, body: bytes | pd.DataFrame) -> int:
    if isinstance(body, pd.DataFrame):
        buffer = io.BytesIO()
        if name.endswith(".parquet"):
            body.to_parquet(buffer, index=False)
        elif name.endswith(".jsonl"):
            body.to_json(buffer, orient="records", lines=True)
        else:
            body.to_csv(buffer, index=False)
        body = buffer.getvalue()
    return gcs.put(BUCKET, name, body)


@pytest.mark.parametrize("name", ["d.csv", "d.parquet", "d.jsonl"])
def test_formats(gcs: Gcs, key: dict[str, str], name: str) -> None:
    put(gcs, f"formats/{name}", FRAME)
    got = load(url(f"formats/{name}"), ctx(key)).frame
    pd.testing.assert_frame_equal(got, FRAME, check_dtype=False)


def test_the_key_from_the_secret_is_used(gcs: Gcs, tokens: TokenService) -> None:
    own = service_account_key(tokens.url)
    put(gcs, "auth/d.csv", FRAME)
    before = tokens.requests
    assert len(load(url("auth/d.csv"), ctx(own)).frame) == 3
    assert len(load(url("auth/d.csv"), ctx(own)).frame) == 3
    assert tokens.requests == before + 1  # one token, kept while it is valid


def test_parquet_reads_only_monitored_columns(gcs: Gcs, key: dict[str, str]) -> None:
    rng = np.random.default_rng(5)
    wide = pd.DataFrame({c: rng.normal(size=20_000) for c in "abcdef"})
    put(gcs, "cols/wide.parquet", wide)
    mark = gcs.mark()
    two = load(url("cols/wide.parquet"), ctx(key, columns=["e", "b", "missing"])).frame
    pd.testing.assert_frame_equal(two, wide[["b", "e"]])
    # The footer, then one ranged read per monitored column chunk.
    assert gcs.media_reads(BUCKET, since=mark) == ["cols/wide.parquet"] * 3
    mark = gcs.mark()
    assert list(load(url("cols/wide.parquet"), ctx(key)).frame.columns) == list("abcdef")
    assert gcs.media_reads(BUCKET, since=mark) == ["cols/wide.parquet"] * 7


def test_prefix_reads_every_data_file_and_prunes_partitions(gcs: Gcs,
                                                            key: dict[str, str]) -> None:
    for day, hour in [("2026-11-23", 23), ("2026-11-24", 10), ("2026-11-24", 11),
                      ("2026-11-24", 12)]:
        put(gcs, f"events/date={day}/hour={hour:02d}/part-0.csv",
            pd.DataFrame({"ts": [f"{day}T{hour:02d}:30:00Z"], "x": [hour]}))
    put(gcs, "events/_SUCCESS", b"")
    put(gcs, "events/date=2026-11-24/.part-1.csv.crc", b"junk")
    everything = load(url("events/"), ctx(key)).frame
    assert sorted(everything["x"]) == [10, 11, 12, 23]
    window = ctx(key, window_start=datetime(2026, 11, 24, 10, 45, tzinfo=UTC),
                 window_end=datetime(2026, 11, 24, 11, 15, tzinfo=UTC))
    pruned = load(url("events/", prunePartitions=True), window).frame
    assert sorted(pruned["x"]) == [10, 11]


def test_missing_object_bucket_and_prefix(gcs: Gcs, key: dict[str, str]) -> None:
    with pytest.raises(SourceError) as info:
        load(url("nope.csv"), ctx(key))
    assert str(info.value) == "spec.reference.source.url: gs://ml-data/nope.csv not found"
    assert not info.value.transient
    other = Source.model_validate({"url": "gs://no-such-bucket/x.csv",
                                   "credentialsSecretRef": {"name": "gcs"}})
    with pytest.raises(SourceError, match=r"gs://no-such-bucket/x\.csv not found"):
        load(other, ctx(key))
    with pytest.raises(SourceError, match="no csv, parquet or jsonl files under"):
        load(url("empty-prefix/"), ctx(key))


def test_version_probe_is_the_generation_and_reads_no_data(gcs: Gcs,
                                                           key: dict[str, str]) -> None:
    generation = put(gcs, "probe/ref.csv", FRAME)
    put(gcs, "probe-prefix/a.csv", FRAME)
    single, prefix = url("probe/ref.csv"), url("probe-prefix/")
    mark = gcs.mark()
    first = [version(single, ctx(key)), version(prefix, ctx(key))]
    assert first[0] is not None and f"gen={generation};" in first[0]
    assert first[1] is not None
    assert [version(single, ctx(key)), version(prefix, ctx(key))] == first
    assert gcs.media_reads(BUCKET, since=mark) == []
    regenerated = put(gcs, "probe/ref.csv", FRAME)  # the same bytes, a new generation
    put(gcs, "probe-prefix/b.csv", FRAME)
    second = [version(single, ctx(key)), version(prefix, ctx(key))]
    assert second[0] is not None and f"gen={regenerated};" in second[0]
    assert second[0] != first[0] and second[1] != first[1]
    assert gcs.media_reads(BUCKET, since=mark) == []
    assert load(single, ctx(key)).version == second[0]
    assert load(prefix, ctx(key)).version == second[1]
    assert gcs.media_reads(BUCKET, since=mark) == [
        "probe/ref.csv", "probe-prefix/a.csv", "probe-prefix/b.csv"]


def test_reference_is_read_once_until_it_changes(gcs: Gcs, key: dict[str, str]) -> None:
    put(gcs, "cached/ref.csv", FRAME)
    cache: ReferenceCache[int] = ReferenceCache()
    source = url("cached/ref.csv")
    mark = gcs.mark()
    for _ in range(10):
        got = cache.get(("ns", "monitor", 1), source, ctx(key),
                        lambda loaded: len(loaded.frame))
        assert got.value == 3
    assert gcs.media_reads(BUCKET, since=mark) == ["cached/ref.csv"]
    assert cache.loads == 1 and cache.hits == 9
    put(gcs, "cached/ref.csv", FRAME.iloc[:1])
    got = cache.get(("ns", "monitor", 1), source, ctx(key), lambda loaded: len(loaded.frame))
    assert got.loaded and got.built and got.value == 1
    assert gcs.media_reads(BUCKET, since=mark) == ["cached/ref.csv"] * 2
    assert cache.builds == 2


def _says_access_denied(error: SourceError, key: dict[str, str]) -> None:
    text = str(error)
    assert text.startswith("spec.reference.source.url: access denied to read gs://ml-data/")
    assert "check the credentials (credentialsSecretRef" in text
    assert not error.transient
    for value in (key["private_key"], key["private_key_id"]):
        assert value not in text


def test_a_key_the_token_service_refuses_is_access_denied_at_once(
        gcs: Gcs, tokens: TokenService) -> None:
    revoked = service_account_key(tokens.url)  # no token of it is cached yet
    put(gcs, "auth/d.csv", FRAME)
    tokens.refuse = True
    before, mark = tokens.requests, gcs.mark()
    with pytest.raises(SourceError) as info:
        load(url("auth/d.csv"), ctx(revoked))
    _says_access_denied(info.value, revoked)
    assert "(the token service refused the key)" in str(info.value)
    assert tokens.requests == before + 1  # asked once: no retries of a refused key
    assert gcs.mark() == mark  # and the storage server was never asked


def test_forbidden_object_is_access_denied(gcs: Gcs, key: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    put(gcs, "locked/d.csv", FRAME)
    with front(gcs.endpoint) as proxy:
        proxy.faults["locked/d.csv"] = 403
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        assert len(load(url("formats/d.csv"), ctx(key)).frame) == 3  # passed through
        with pytest.raises(SourceError) as info:
            load(url("locked/d.csv"), ctx(key))
    _says_access_denied(info.value, key)


def test_unavailable_server_is_transient(gcs: Gcs, key: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # gcsfs retries a 503 itself (six attempts, about 31 s of backoff) before it gives up.
    put(gcs, "busy/d.csv", FRAME)
    with front(gcs.endpoint) as proxy:
        proxy.faults["busy/d.csv"] = 503
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with pytest.raises(SourceError) as info:
            load(url("busy/d.csv"), ctx(key))
    text = str(info.value)
    assert info.value.transient, text
    assert "gs://ml-data/busy/d.csv" in text and "503" in text
    assert "access denied" not in text and "not found" not in text


def test_a_stalled_server_times_out_naming_the_field(key: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with stalled_server() as hung:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", hung)
        with pytest.raises(SourceError) as info:
            load(url("auth/d.csv", timeout="1s"), ctx(key))
    text = str(info.value)
    assert text.startswith("spec.reference.source.url: gs://ml-data/auth/d.csv")
    assert "did not answer within 1s (spec.reference.source.timeout)" in text, text
    assert info.value.transient and key["private_key"] not in text

"""The registry, retries with backoff, and scrubbing secrets out of messages."""

from __future__ import annotations

import itertools
import time

import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError, source_kinds
from modelmon.sources.base import first_line, register, retrying, scrub


def test_every_kind_is_registered() -> None:
    assert source_kinds() == ["configMap", "prometheus", "sql", "url"]
    with pytest.raises(ValueError, match="registered twice"):
        register("url")(lambda source, ctx: None)  # type: ignore[arg-type,return-value]


def test_retrying_backs_off_on_transient_errors_only() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise SourceError("busy", transient=True)
        return "ok"

    assert retrying(flaky, LoadContext(retries=2, retry_delay=0.05)) == "ok"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # doubling

    calls.clear()

    def lasting() -> str:
        calls.append(time.monotonic())
        raise SourceError("not found")

    with pytest.raises(SourceError):
        retrying(lasting, LoadContext(retries=5, retry_delay=0.01))
    assert len(calls) == 1

    def bad_data() -> str:
        raise DataError("bad")

    with pytest.raises(DataError):
        retrying(bad_data, LoadContext(retries=5, retry_delay=0.01))


def test_scrub_and_first_line() -> None:
    assert scrub("user:hunter2@h and hunter2", ["hunter2", None, ""]) == "user:***@h and ***"
    assert scrub("abc", ["ab"]) == "abc"  # too short to be a credential
    assert scrub("token=abcdef", ["abc", "abcdef"]) == "token=***"
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("")) == "ValueError"
    assert len(first_line(ValueError("x" * 500))) == 200


def test_source_kind_must_be_unique() -> None:
    with pytest.raises(ValueError, match="exactly one kind of source"):
        Source.model_validate({"url": "a.csv", "configMap": {"name": "c", "key": "k"}})
    with pytest.raises(ValueError, match="go with url"):
        Source.model_validate({"configMap": {"name": "c", "key": "k.csv"}, "format": "csv"})

"""sql.pushdown keeps the sql source's boundaries: the egress policy before connecting, no
secret in a message, the local-path rule for a DuckDB file, unsupported databases refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, SourceError
from modelmon.sources.egress import EgressRefusedError
from modelmon.sources.pushdown import AggregateRequest, NumericRequest, aggregate
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines
from netguard import Listener

REQUEST = AggregateRequest(numeric=(NumericRequest("x", (1.0,), None, False),),
                           columns=("x",))


@pytest.fixture
def listener() -> Iterator[Listener]:
    one = Listener()
    yield one
    one.close()
    dispose_engines()


def run(url: str, policy: Policy, base: Path | None = None) -> object:
    source = Source.model_validate({"sql": {
        "connectionSecretRef": {"name": "db", "key": "url"}, "query": "SELECT 1 AS x",
        "timeout": "5s", "pushdown": True}})
    ctx = LoadContext(base_dir=base or Path.cwd(), role="spec.current.source", retries=0,
                      policy=policy, resolver=LocalResolver({("db", "url"): url}, env={}))
    return aggregate(source, ctx, REQUEST)


def test_the_egress_policy_holds_before_connecting(listener: Listener) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://monitor:pw-123@127.0.0.1:{listener.port}/db"
    with pytest.raises(EgressRefusedError) as info:
        run(url, Policy.operator())
    assert "spec.current.source.sql.connectionSecretRef" in str(info.value)
    assert "pw-123" not in str(info.value)
    assert listener.accepted == 0


def test_a_duckdb_file_is_a_local_file_under_the_administrators_rule(tmp_path: Path) -> None:
    pytest.importorskip("duckdb_engine")
    with pytest.raises(SourceError) as info:
        run(f"duckdb:///{tmp_path / 'secret.duckdb'}", Policy.operator())
    assert "spec.current.source.sql.connectionSecretRef" in str(info.value)
    assert "DuckDB database" in str(info.value)


def test_unsupported_databases_are_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        run(f"sqlite:///{tmp_path / 'x.db'}", Policy.local(), tmp_path)
    assert str(info.value).startswith("spec.current.source.sql.pushdown: sqlite is not "
                                      "supported")

"""Resolvers: LocalResolver (flags, environment, YAML files) and KubeResolver's mapping."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from modelmon.sources import MissingKeyError, SourceError
from modelmon.sources.resolvers import KubeResolver, LocalResolver, env_name, parse_secret_arg


def test_env_name() -> None:
    assert env_name("predictions-db", "url") == "MODELMON_SECRET_PREDICTIONS_DB_URL"
    assert env_name("s3", "AWS_ACCESS_KEY_ID") == "MODELMON_SECRET_S3_AWS_ACCESS_KEY_ID"
    assert env_name("gcs", "service-account.json") == "MODELMON_SECRET_GCS_SERVICE_ACCOUNT_JSON"


def test_parse_secret_arg(tmp_path: Path) -> None:
    assert parse_secret_arg("db/url=postgresql://u:p@h/d") == (("db", "url"),
                                                              "postgresql://u:p@h/d")
    assert parse_secret_arg("db/url=a=b") == (("db", "url"), "a=b")
    (tmp_path / "key.json").write_text('{"k": 1}\n')
    assert parse_secret_arg("gcs/service-account.json=@key.json", tmp_path) == (
        ("gcs", "service-account.json"), '{"k": 1}')
    for bad in ("db=value", "/url=value", "db/=value", "db/url"):
        with pytest.raises(ValueError, match="NAME/KEY=VALUE") as info:
            parse_secret_arg(bad)
        assert "value" not in str(info.value).replace("VALUE", "")


def test_local_secrets_flags_win_over_environment() -> None:
    env = {"MODELMON_SECRET_DB_URL": "from-env", "MODELMON_SECRET_DB_OTHER": "env-only"}
    r = LocalResolver({("db", "url"): "from-flag"}, env=env)
    assert r.secret("db", "url") == "from-flag"
    assert r.secret("db", "other") == "env-only"
    with pytest.raises(MissingKeyError) as info:
        r.secret("db", "password")
    assert "--secret db/password=VALUE" in str(info.value)
    assert "MODELMON_SECRET_DB_PASSWORD" in str(info.value)
    assert "from-flag" not in str(info.value) and "from-env" not in str(info.value)


def test_local_config_maps_from_the_monitor_and_its_neighbours(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor.yaml"
    monitor.write_text(
        "apiVersion: modelmon.io/v1alpha1\nkind: ModelMonitor\nmetadata: {name: m}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ref}\n"
        "data: {ref.csv: \"x\\n1\\n\"}\n")
    (tmp_path / "other.yml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ref}\ndata: {ref.csv: shadowed}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: packed}\nbinaryData:\n"
        f"  d.jsonl: {base64.b64encode(b'{}').decode()}\n")
    (tmp_path / "broken.yaml").write_text("{ not yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.yaml").write_text(
        "kind: ConfigMap\nmetadata: {name: deep}\ndata: {k: v}\n")
    r = LocalResolver.for_monitor(monitor, ["db/url=sqlite://"], env={})
    assert r.config_map("ref", "ref.csv") == "x\n1\n"
    assert r.config_map("packed", "d.jsonl") == "{}"
    assert r.secret("db", "url") == "sqlite://"
    with pytest.raises(SourceError, match=r"ConfigMap 'deep' not found in monitor\.yaml"):
        r.config_map("deep", "k")
    with pytest.raises(MissingKeyError, match=r"has no key 'nope' \(its keys: ref.csv\)"):
        r.config_map("ref", "nope")


class FakeCore:
    """The two CoreV1Api calls KubeResolver makes, answered from dicts."""

    def __init__(self, secrets: dict[str, dict[str, str]],
                 config_maps: dict[str, dict[str, str]], status: int | None = None) -> None:
        self.secrets, self.config_maps, self.status = secrets, config_maps, status

    def _fail(self, name: str, objects: dict[str, Any]) -> None:
        if self.status is not None:
            raise ApiException(status=self.status, reason="Nope")
        if name not in objects:
            raise ApiException(status=404, reason="Not Found")

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        self._fail(name, self.secrets)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        return SimpleNamespace(data=data)

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:
        self._fail(name, self.config_maps)
        return SimpleNamespace(data=self.config_maps[name], binary_data=None)


def test_kube_resolver_decodes_and_explains() -> None:
    core = FakeCore({"db": {"url": "postgresql://u:hunter2@h/d\n"}}, {"cm": {"a.csv": "x\n"}})
    r = KubeResolver(core, "ml", use_label=None)  # the opt-in label: tests/integration
    assert r.secret("db", "url") == "postgresql://u:hunter2@h/d"
    assert r.config_map("cm", "a.csv") == "x\n"
    with pytest.raises(MissingKeyError) as info:
        r.secret("db", "token")
    assert "hunter2" not in str(info.value) and "(its keys: url)" in str(info.value)
    with pytest.raises(SourceError, match="Secret ml/other not found"):
        r.secret("other", "url")
    assert r.reads == 3


@pytest.mark.parametrize(("status", "message", "transient"), [
    (403, "grant its service account get on secrets", False),
    (500, "HTTP 500", True),
])
def test_kube_resolver_api_failures(status: int, message: str, transient: bool) -> None:
    with pytest.raises(SourceError, match=message) as info:
        KubeResolver(FakeCore({}, {}, status=status), "ml").secret("db", "url")
    assert info.value.transient is transient

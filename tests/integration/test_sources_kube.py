"""KubeResolver against the real API server: Secrets and ConfigMaps of a monitor's namespace."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kube import Cluster, Kubectl, manifest
from kubernetes import client, config

from corpus import good_monitor, merge_patch
from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, MissingKeyError, SourceError, load
from modelmon.sources.resolvers import KubeResolver

CSV = "x,label\n1.5,a\n2.5,b\n3.5,a\n"


def core_api(cluster: Cluster, token: str | None = None) -> Any:
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), client_configuration=cfg)
    if token is not None:  # the same server, as someone else
        cfg.cert_file = cfg.key_file = None
        cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.CoreV1Api(client.ApiClient(cfg))


def apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(obj))


@pytest.fixture
def objects(kubectl: Kubectl, namespace: str) -> str:
    apply(kubectl, namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"url": base64.b64encode(b"sqlite:///x.db\n").decode()}})
    apply(kubectl, namespace, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tiny"},
        "data": {"reference.csv": CSV},
        "binaryData": {"packed.jsonl": base64.b64encode(b'{"x": 1}\n{"x": 2}\n').decode()}})
    return namespace


def test_secret_values_and_errors(cluster: Cluster, objects: str) -> None:
    resolver = KubeResolver(core_api(cluster), objects)
    assert resolver.secret("db", "url") == "sqlite:///x.db"  # the trailing newline dropped
    with pytest.raises(MissingKeyError) as info:
        resolver.secret("db", "password")
    assert f"Secret {objects}/db has no key 'password' (its keys: url)" in str(info.value)
    assert "sqlite" not in str(info.value)
    with pytest.raises(SourceError, match=f"Secret {objects}/nope not found"):
        resolver.secret("nope", "url")
    resolver.secret("db", "url")
    assert resolver.reads == 2  # db once, nope once


def test_config_map_source_through_the_api(cluster: Cluster, objects: str) -> None:
    resolver = KubeResolver(core_api(cluster), objects)
    ctx = LoadContext(role="spec.reference.source", resolver=resolver)
    frame = load(Source.model_validate(
        {"configMap": {"name": "tiny", "key": "reference.csv"}}), ctx).frame
    assert frame["x"].tolist() == [1.5, 2.5, 3.5]
    packed = load(Source.model_validate(
        {"configMap": {"name": "tiny", "key": "packed.jsonl"}}), ctx).frame
    assert packed["x"].tolist() == [1, 2]
    with pytest.raises(MissingKeyError, match=r"its keys: packed\.jsonl, reference\.csv"):
        resolver.config_map("tiny", "other.csv")


def test_forbidden_reads_say_which_permission_is_missing(cluster: Cluster, kubectl: Kubectl,
                                                         objects: str) -> None:
    kubectl("-n", objects, "create", "serviceaccount", "nobody")
    token = kubectl("-n", objects, "create", "token", "nobody").stdout.strip()
    resolver = KubeResolver(core_api(cluster, token), objects)
    with pytest.raises(SourceError) as info:
        resolver.secret("db", "url")
    assert f"may not read Secret {objects}/db" in str(info.value)
    assert "get on secrets" in str(info.value) and not info.value.transient
    with pytest.raises(SourceError, match="get on configmaps"):
        resolver.config_map("tiny", "reference.csv")


@pytest.mark.parametrize(("source", "accepted", "message"), [
    ({"url": "s3://ml-data/ref.parquet", "timeout": "2m"}, True, ""),
    ({"url": "https://data.example/ref.csv", "timeout": "0s"}, False,
     "spec.reference.source.timeout: Invalid value: \"object\": timeout must be longer "
     "than 0s"),
    ({"url": None, "configMap": {"name": "tiny", "key": "reference.csv"}, "timeout": "5s"},
     False, "format, credentialsSecretRef, prunePartitions and timeout go with url"),
])
def test_the_apiserver_checks_the_url_timeout(kubectl: Kubectl, namespace: str,
                                              source: dict[str, Any], accepted: bool,
                                              message: str) -> None:
    doc = merge_patch(good_monitor(), {"metadata": {"namespace": namespace},
                                       "spec": {"reference": {"source": source}}})
    done = kubectl("apply", "-f", "-", input=manifest(doc), check=False)
    assert (done.returncode == 0) is accepted, done.stderr
    assert message in done.stderr

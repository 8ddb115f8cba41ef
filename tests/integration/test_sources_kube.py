"""KubeResolver against the real API server: Secrets and ConfigMaps of a monitor's namespace,
usable only with the opt-in label (``modelmon.io/use: "true"``)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kube import Cluster, Kubectl, manifest
from kubernetes import client, config

from corpus import good_monitor, merge_patch
from modelmon.api.policy import USE_LABEL, Egress, Policy
from modelmon.api.v1alpha1 import AlertingSpec, Finding, Source
from modelmon.outputs.notifiers import Context, notify
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


#: The opt-in label every Secret and ConfigMap a monitor uses must carry.
USE = {USE_LABEL: "true"}


@pytest.fixture
def objects(kubectl: Kubectl, namespace: str) -> str:
    apply(kubectl, namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": USE},
        "data": {"url": base64.b64encode(b"sqlite:///x.db\n").decode()}})
    apply(kubectl, namespace, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tiny", "labels": USE},
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
    with pytest.raises(SourceError, match=f"Secret {objects}/nope does not exist or is not "
                       "labeled modelmon.io/use=true"):
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


# ------------------------------------------------------------------ the opt-in label


def unlabeled(kubectl: Kubectl, namespace: str, kind: str, name: str,
              data: dict[str, str], labels: dict[str, str] | None = None) -> None:
    """A Secret or ConfigMap that monitors may not use (no label, or another value)."""
    body = ({k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            if kind == "Secret" else data)
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": kind,
                               "metadata": {"name": name, "labels": labels or {}},
                               "data": body})


def sqlite_db(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE predictions (score REAL)")
        db.executemany("INSERT INTO predictions VALUES (?)", [(0.25,), (0.75,)])
    return f"sqlite:///{path}"


SQL = {"sql": {"connectionSecretRef": {"name": "other-app-db", "key": "url"},
               "query": "SELECT score FROM predictions"}}


def test_an_unlabeled_secret_is_refused_naming_the_field_and_the_label(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """The confused deputy of issue 14: a monitor points connectionSecretRef at another
    application's database Secret. Refused, with the field and the fix named and nothing
    of the Secret shown; labeled by its owner, the same monitor reads the database."""
    url = sqlite_db(tmp_path / "other-app.db")
    unlabeled(kubectl, namespace, "Secret", "other-app-db",
              {"url": url, "password": "planted-password-5kq"})
    source = Source.model_validate(SQL)
    ctx = LoadContext(role="spec.current.source", retries=0,
                      resolver=KubeResolver(core_api(cluster), namespace,
                                            Policy.operator().use_label))
    with pytest.raises(SourceError) as info:
        load(source, ctx)
    text = str(info.value)
    assert text.startswith("spec.current.source.sql.connectionSecretRef: Secret "
                           f"{namespace}/other-app-db does not exist or is not labeled "
                           "modelmon.io/use=true"), text
    assert f"kubectl label secret -n {namespace} other-app-db modelmon.io/use=true" in text
    assert not info.value.transient
    for leaked in ("sqlite", "other-app.db", "password", "planted", "keys"):
        assert leaked not in text, text
    # A Secret that does not exist reads the same (no oracle for the Secrets' names).
    missing = KubeResolver(core_api(cluster), namespace)
    with pytest.raises(SourceError) as gone:
        missing.secret("no-such-db", "url")
    assert str(gone.value).replace("no-such-db", "other-app-db") == \
        text.removeprefix("spec.current.source.sql.connectionSecretRef: ")
    # Another value than "true" is no consent either.
    unlabeled(kubectl, namespace, "Secret", "other-app-db", {"url": url},
              labels={USE_LABEL: "false"})
    with pytest.raises(SourceError, match=r"is not labeled modelmon\.io/use=true"):
        load(source, LoadContext(role="spec.current.source", retries=0,
                                 resolver=KubeResolver(core_api(cluster), namespace)))
    # Labeled by its owner: the same monitor reads the data.
    kubectl("-n", namespace, "label", "secret", "other-app-db", f"{USE_LABEL}=true",
            "--overwrite")
    frame = load(source, LoadContext(role="spec.current.source", retries=0,
                                     resolver=KubeResolver(core_api(cluster), namespace))
                 ).frame
    assert frame["score"].tolist() == [0.25, 0.75]


def test_an_unlabeled_config_map_source_is_refused(cluster: Cluster, kubectl: Kubectl,
                                                    namespace: str) -> None:
    unlabeled(kubectl, namespace, "ConfigMap", "features", {"reference.csv": CSV})
    source = Source.model_validate({"configMap": {"name": "features", "key": "reference.csv"}})

    def ctx() -> LoadContext:
        return LoadContext(role="spec.reference.source", retries=0,
                           resolver=KubeResolver(core_api(cluster), namespace))

    with pytest.raises(SourceError) as info:
        load(source, ctx())
    text = str(info.value)
    assert text.startswith(f"spec.reference.source.configMap: ConfigMap {namespace}/features "
                           "does not exist or is not labeled modelmon.io/use=true"), text
    assert f"kubectl label configmap -n {namespace} features modelmon.io/use=true" in text
    assert "reference.csv" not in text and "1.5" not in text
    kubectl("-n", namespace, "label", "configmap", "features", f"{USE_LABEL}=true")
    assert load(source, ctx()).frame["x"].tolist() == [1.5, 2.5, 3.5]
    # `modelmon check`'s policy needs no label (the person running it reads what it reads).
    assert Policy.local().use_label is None


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hook.received.append(dict(self.headers))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    Hook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_notifier_secret_needs_the_label_too(cluster: Cluster, kubectl: Kubectl,
                                              namespace: str, hook: str) -> None:
    unlabeled(kubectl, namespace, "Secret", "hooks", {"hmac": "planted-hmac-key-8xv"})
    spec = AlertingSpec.model_validate({"notifiers": [
        {"name": "audit", "webhook": {"url": hook,
                                      "hmacSecretRef": {"name": "hooks", "key": "hmac"}}}]})
    finding = Finding(name="drift.dataset", severity="warning", value=0.6, bound=0.5,
                      message="6 of 10 features drifted")
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    # The receiver is on loopback, which the operator's egress policy opens only on request.
    policy = replace(Policy.operator(), egress=Egress(allow=("127.0.0.0/8",)))
    ctx = Context(namespace, "credit", "credit-risk", None, "Drifting", 600.0, policy=policy)

    def send() -> Any:
        resolver = KubeResolver(core_api(cluster), namespace, Policy.operator().use_label)
        (state,) = asyncio.run(notify(spec, [finding], [], ctx, resolver, now))
        return state

    state = send()
    assert (state.last_error or "").startswith(
        "audit: spec.alerting.notifiers[0].webhook.hmacSecretRef: Secret "
        f"{namespace}/hooks does not exist or is not labeled modelmon.io/use=true"), state
    assert "planted" not in (state.last_error or "") and Hook.received == []
    kubectl("-n", namespace, "label", "secret", "hooks", f"{USE_LABEL}=true")
    state = send()
    assert not state.last_error, state
    assert [h["X-Modelmon-Signature"][:7] for h in Hook.received] == ["sha256="]

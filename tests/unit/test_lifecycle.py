"""kopf's login and settings: one identity for the watch and the writes, least RBAC."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import kopf
import pytest

from modelmon.handlers.lifecycle import apply_settings, connection_info

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot checked here\n"
                      b"-----END CERTIFICATE-----\n").decode()


def kubeconfig(path: Path, server: str, token: str) -> Path:
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "certificate-authority-data": CA}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(cfg))
    return path


def test_kopf_logs_in_with_the_kubeconfig_flag_not_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # $KUBECONFIG names an admin; --kubeconfig a service account's token. kopf must use the
    # latter, as modelmon's own client does, or its watch bypasses the RBAC under test.
    admin = kubeconfig(tmp_path / "admin", "https://127.0.0.1:1111", "admin-token")
    sa = kubeconfig(tmp_path / "sa", "https://127.0.0.1:2222", "sa-token")
    monkeypatch.setenv("KUBECONFIG", str(admin))
    info = connection_info(str(sa))
    assert info.server == "https://127.0.0.1:2222"
    assert (info.scheme, info.token) == ("Bearer", "sa-token")
    assert info.ca_path and Path(str(info.ca_path)).read_text().startswith("-----BEGIN")
    assert not info.insecure and info.certificate_path is None


def test_without_the_flag_kopf_uses_kubeconfig_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    env = kubeconfig(tmp_path / "env", "https://127.0.0.1:3333", "env-token")
    monkeypatch.setenv("KUBECONFIG", str(env))
    # The kubernetes package reads $KUBECONFIG when imported; point its default at it too,
    # as a fresh process would see it.
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(env))
    info = connection_info(None)
    assert (info.server, info.token) == ("https://127.0.0.1:3333", "env-token")


@pytest.mark.parametrize(("namespaces", "scanning_disabled"),
                         [([], False), (["ml-prod", "ml-staging"], True)])
def test_namespaced_operator_does_not_scan_the_cluster(
        namespaces: list[str], scanning_disabled: bool) -> None:
    settings = kopf.OperatorSettings()
    apply_settings(settings, namespaces)
    assert settings.scanning.disabled is scanning_disabled
    assert settings.posting.enabled is False


def test_kopf_builds_no_essence_of_the_body_modelmon_never_diffs() -> None:
    """kopf's default would deep-copy every event's body, status and all."""
    settings = kopf.OperatorSettings()
    apply_settings(settings, [])
    body = kopf.Body({"metadata": {"name": "m", "labels": {"a": "b"}},
                      "spec": {"model": {"name": "x"}}, "status": {"history": [1, 2]}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}

"""The local node runs pods (hack/cluster.sh with MODELMON_NODE=1), and the operator's
image built by `make image-local` runs there.

Each test uses the `node` fixture, so it is marked `node` and skipped on a cluster
without a Ready node. They guard what the operator's pod will rely on: a pod is
scheduled, its image comes from the node's local store (no registry), it runs to
completion, `kubectl logs` reaches the kubelet, and an in-cluster client reaches the
API server at KUBERNETES_SERVICE_HOST with its service account's token.
"""

from __future__ import annotations

from typing import Any

import pytest
from kube import Kubectl, Node, manifest, pinned_versions, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _pod(name: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                }
            ],
            **spec,
        },
    }


def _finished(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    phase = kubectl.json("get", "pod", name, "-n", namespace)["status"].get("phase")
    return phase if phase in {"Succeeded", "Failed"} else None


def test_node_is_ready_with_the_pinned_kubelet(kubectl: Kubectl, node: Node) -> None:
    info = kubectl.json("get", "node", node.name)["status"]["nodeInfo"]
    assert info["kubeletVersion"] == pinned_versions()["KUBE_VERSION"]
    assert info["containerRuntimeVersion"].startswith("containerd://")


def test_busybox_pod_runs_to_completion(kubectl: Kubectl, namespace: str, node: Node) -> None:
    pod = _pod("hello", node.busybox_image, 'echo "hello from $(hostname)"; exit 0')
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))
    phase = wait_for(
        lambda: _finished(kubectl, namespace, "hello"), timeout=120, what="pod hello to finish"
    )
    status = kubectl.json("get", "pod", "hello", "-n", namespace)["status"]
    assert phase == "Succeeded", status
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert kubectl("logs", "-n", namespace, "hello").stdout == "hello from hello\n"
    assert status["hostIP"] != status["podIP"]


def test_a_failing_container_fails_the_pod(kubectl: Kubectl, namespace: str, node: Node) -> None:
    pod = _pod("fails", node.busybox_image, "exit 3")
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))
    phase = wait_for(
        lambda: _finished(kubectl, namespace, "fails"), timeout=120, what="pod fails to finish"
    )
    status = kubectl.json("get", "pod", "fails", "-n", namespace)["status"]
    assert phase == "Failed"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_pod_reaches_the_api_server_with_its_service_account(
    kubectl: Kubectl, namespace: str, node: Node
) -> None:
    # The pod reads itself through kubernetes.default's address, as an in-cluster
    # client does; the role makes a 200 prove that the token was accepted.
    kubectl("create", "role", "self-reader", "--verb=get", "--resource=pods", "-n", namespace)
    kubectl(
        "create",
        "rolebinding",
        "self-reader",
        "--role=self-reader",
        f"--serviceaccount={namespace}:default",
        "-n",
        namespace,
    )
    script = (
        "sa=/var/run/secrets/kubernetes.io/serviceaccount; "
        'wget -q -O- --header "Authorization: Bearer $(cat $sa/token)" '
        '"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT'
        '/api/v1/namespaces/$(cat $sa/namespace)/pods/$(hostname)"'
    )
    pod = _pod("reader", node.busybox_image, script)
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))
    phase = wait_for(
        lambda: _finished(kubectl, namespace, "reader"), timeout=120, what="pod reader to finish"
    )
    out = kubectl("logs", "-n", namespace, "reader").stdout
    assert phase == "Succeeded", out
    assert '"kind":"Pod"' in out.replace(" ", "")
    assert f'"namespace":"{namespace}"' in out.replace(" ", "")


def test_an_image_missing_from_the_node_is_never_pulled(
    kubectl: Kubectl, namespace: str, node: Node
) -> None:
    # No registry is reachable: the node's containerd pulls through a proxy that nothing
    # serves on 127.0.0.1, so the pull fails at once and nothing leaves the machine.
    pod = _pod("absent", "modelmon.invalid/absent:1", "true")
    pod["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))

    def pull_failure() -> str | None:
        events = kubectl.json(
            "get", "events", "-n", namespace, "--field-selector=involvedObject.name=absent"
        )["items"]
        failed = [e["message"] for e in events if e["reason"] == "Failed"]
        return next((m for m in failed if "pull" in m), None)

    message = wait_for(pull_failure, timeout=60, what="the pull of an absent image to fail")
    assert "127.0.0.1:9" in message, message


# The image fixture builds it when the build context changed (about 3 minutes on 2 cores;
# `make test-node` builds it before the tests, so there it is cached) and imports it.
@pytest.mark.timeout(600)
def test_the_local_image_runs_as_the_charts_user(
    kubectl: Kubectl, namespace: str, operator_image: str
) -> None:
    # The chart's pod security: uid 65532, read-only root filesystem, no privileges.
    pod = _pod("image", operator_image, "modelmon --version && id -u && ! touch /probe")
    pod["spec"]["containers"][0]["securityContext"] = {
        "runAsUser": 65532,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))
    phase = wait_for(
        lambda: _finished(kubectl, namespace, "image"), timeout=120, what="pod image to finish"
    )
    out = kubectl("logs", "-n", namespace, "image").stdout
    assert phase == "Succeeded", out
    version, uid = out.split()[1:3]
    assert operator_image.rsplit(":", 1)[1].startswith(version), (version, operator_image)
    assert uid == "65532"

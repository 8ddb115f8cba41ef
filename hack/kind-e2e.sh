#!/usr/bin/env bash
# Run tests/integration against a kind cluster, for machines with Docker.
#
# NOT RUN in CI or on the project's own machines: they have no container
# engine, so they use hack/cluster.sh (processes on 127.0.0.1) instead. This
# is the same suite through KUBECONFIG, as tests/integration/conftest.py
# reuses any reachable loopback cluster it is pointed at.
#
# Usage: hack/kind-e2e.sh [pytest args...]
#   KIND_NODE_IMAGE     node image (default: kind's own for 1.34)
#   KEEP_KIND_CLUSTER=1 leave the cluster running (kind export kubeconfig --name modelmon-e2e)
# kubectl and helm are the pinned ones from hack/cluster.sh (built with Go on
# first use) unless MODELMON_KUBECTL / MODELMON_HELM name others.
set -euo pipefail

KIND_VERSION=v0.30.0
NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.0}
CLUSTER=${KIND_CLUSTER_NAME:-modelmon-e2e}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${MODELMON_CACHE:-$HOME/.cache/modelmon}

command -v docker >/dev/null || { echo "kind-e2e: docker is required" >&2; exit 1; }
kind=$(command -v kind || true)
if [[ -z $kind ]]; then
  kind=$CACHE_DIR/bin/kind-$KIND_VERSION/kind
  [[ -x $kind ]] || GOBIN=$(dirname "$kind") go install "sigs.k8s.io/kind@$KIND_VERSION"
fi

kubeconfig=$(mktemp)
cleanup() {
  if [[ ${KEEP_KIND_CLUSTER:-} != 1 ]]; then "$kind" delete cluster --name "$CLUSTER" || true; fi
  rm -f "$kubeconfig"
}
trap cleanup EXIT
"$kind" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --kubeconfig "$kubeconfig" --wait 180s

# The version test expects the node image's version, not hack/cluster.sh's.
tag=${NODE_IMAGE##*:v}
cd "$ROOT"
KUBECONFIG=$kubeconfig MODELMON_EXPECT_KUBE_VERSION=v${tag%%@*} \
  python -m pytest tests/integration "$@"

#!/usr/bin/env bash
# The node step (`make test-node`, the last step of `make test`): the tests marked `node`
# on a cluster with a node of its own, where this machine can run one (docs/local-node.md).
#
# Exit 0 when the machine cannot run the node (packages, `hack/cluster.sh node-check` or
# the start fail): its tests stay skipped, as in `make test`. When the node starts, the
# exit status is pytest's. The node is stopped at the end, also on SIGTERM (timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[ci-node] %s\n' "$*" >&2; }

if ! hack/install-test-deps.sh --node || ! hack/cluster.sh node-check; then
  log "this machine cannot run the local node; the node tests stay skipped"
  exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/modelmon-ci-node.XXXXXX")
stop() { MODELMON_CLUSTER_DIR=$dir hack/cluster.sh down >/dev/null 2>&1 || log "down failed in $dir"; }
trap stop EXIT
trap 'exit 143' TERM INT

start=$SECONDS
if ! up=$(MODELMON_CLUSTER_DIR=$dir MODELMON_NODE=1 hack/cluster.sh up); then
  log "MODELMON_NODE=1 hack/cluster.sh up failed (its log is above); the node tests stay skipped"
  exit 0
fi
log "node up in $((SECONDS - start))s"
eval "$up"
export KUBECONFIG
# The image the node tests run, built (or found in the cache) and loaded before the tests,
# so that no test's time limit has to hold a build of several minutes.
start=$SECONDS
hack/image-local.sh >/dev/null
log "image ready in $((SECONDS - start))s"
"${PYTHON:-python3}" -m pytest tests/integration -m node -q -p no:cacheprovider

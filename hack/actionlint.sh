#!/usr/bin/env bash
# actionlint, the linter of GitHub Actions workflows (`make lint` runs it on .github/workflows).
#
# Built once from the Go module proxy at the version pinned below (`go install`) and cached,
# like the cluster's binaries (hack/cluster.sh), in
# $MODELMON_CACHE/bin/actionlint-<version>/actionlint (default cache: $HOME/.cache/modelmon).
# Concurrent runs share one build (a lock in the cache). The build runs niced.
#
# Usage: hack/actionlint.sh [actionlint arguments]   run it (default: every workflow)
#        hack/actionlint.sh bin                        build if missing, print the binary's path
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
CACHE_DIR=${MODELMON_CACHE:-$HOME/.cache/modelmon}
OUT=$CACHE_DIR/bin/actionlint-$ACTIONLINT_VERSION/actionlint

log() { printf '[actionlint] %s\n' "$*" >&2; }
die() { printf '[actionlint] error: %s\n' "$*" >&2; exit 1; }

build() {
  [[ -x $OUT ]] && return 0
  command -v go >/dev/null || die "go is not on PATH (needed to build actionlint $ACTIONLINT_VERSION)"
  local gobin logfile=$CACHE_DIR/logs/build-actionlint-$ACTIONLINT_VERSION.log start=$SECONDS
  mkdir -p "$(dirname "$OUT")" "$CACHE_DIR/logs" "$CACHE_DIR/src"
  gobin=$(mktemp -d "$CACHE_DIR/src/actionlint-gobin.XXXXXX")
  log "building actionlint $ACTIONLINT_VERSION (log: $logfile)"
  if ! (cd "$CACHE_DIR" && CGO_ENABLED=0 GOWORK=off GOBIN=$gobin \
        nice -n 10 go install -trimpath -ldflags "-s -w" \
        "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION") >"$logfile" 2>&1; then
    tail -n 20 "$logfile" >&2
    rm -rf "$gobin"
    die "building actionlint failed (log: $logfile)"
  fi
  # Rename last: a binary in place always means a finished build.
  mv -f "$gobin/actionlint" "$OUT.tmp.$$" && rmdir "$gobin"
  mv -f "$OUT.tmp.$$" "$OUT"
  log "built actionlint in $((SECONDS - start))s -> $OUT"
}

locked_build() {
  mkdir -p "$CACHE_DIR"
  (
    flock 9
    build
  ) 9>"$CACHE_DIR/actionlint.lock"
}

locked_build
if [[ ${1:-} == bin ]]; then
  printf '%s\n' "$OUT"
  exit 0
fi
exec "$OUT" "$@"

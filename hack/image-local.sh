#!/usr/bin/env bash
# The operator's image, built on this machine from the real Dockerfile (`make image-local`).
#
# No public image registry is reachable here, so the base image the Dockerfile names by
# default (python:X.Y-slim-bookworm) is replaced by one built from Debian packages with
# debootstrap: Debian bookworm with the same Python minor version, `python` on PATH and
# venv. The Dockerfile is then built unchanged with buildah (daemonless), with only the
# PYTHON_IMAGE build argument pointing at that base. The image is saved as a tarball in
# the cache and imported into the local node's containerd when one runs
# (MODELMON_NODE=1 hack/cluster.sh up).
#
# Usage: hack/image-local.sh     the image reference is the last line of stdout
#
# Both images are cached: the base by its recipe (suite, Python version, packages), the
# operator's by the content of the build context (the files .dockerignore lets in), the
# Dockerfile, the extras and the base. A rebuild happens only when one of them changes.
#
# Environment (all optional):
#   MODELMON_CACHE          tarballs under images/, buildah's storage under buildah/
#                           (default: $HOME/.cache/modelmon)
#   MODELMON_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the first one in
#                           this machine's apt sources)
#   MODELMON_IMAGE_EXTRAS   the Dockerfile's EXTRAS build argument (default: its own)
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${MODELMON_CACHE:-$HOME/.cache/modelmon}
IMAGES_DIR=$CACHE_DIR/images
REGISTRY=modelmon.local
SUITE=bookworm
# What the base must hold for the Dockerfile: python (python-is-python3) with venv and
# ensurepip, bash for its SHELL, passwd (essential) for useradd, CA certificates for pip.
BASE_PACKAGES=(python3 python3-venv python-is-python3 ca-certificates)

log() { printf '[image-local] %s\n' "$*" >&2; }
die() { printf '[image-local] error: %s\n' "$*" >&2; exit 1; }

bah() {
  buildah --root "$CACHE_DIR/buildah/root" --runroot "$CACHE_DIR/buildah/run" \
    --storage-driver overlay "$@"
}

need() { # command package
  command -v "$1" >/dev/null || die "$1 is missing (Debian package $2; hack/install-test-deps.sh --node installs it)"
}

# The Python minor version of the Dockerfile's default base, e.g. 3.11.
dockerfile_python() {
  local image
  image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$REPO/Dockerfile")
  [[ $image =~ ^python:([0-9]+\.[0-9]+)- ]] ||
    die "cannot read a Python version from the Dockerfile's ARG PYTHON_IMAGE ($image)"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

debian_mirror() {
  if [[ -n ${MODELMON_DEBIAN_MIRROR:-} ]]; then printf '%s\n' "$MODELMON_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ {print $2}' | grep -v -- '-security' | head -n 1) || true
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null) || true
  [[ -n $uri ]] || die "no Debian mirror in this machine's apt sources; set MODELMON_DEBIAN_MIRROR"
  printf '%s\n' "$uri"
}

sha() { sha256sum | cut -c1-12; }

# Work directories and mounts to remove on exit, whatever the outcome.
CLEANUP_DIRS=()
cleanup() {
  local d
  for d in "${CLEANUP_DIRS[@]}"; do
    umount -l "$d/proc" 2>/dev/null || true
    rm -rf "$d"
  done
}
trap cleanup EXIT

# Build the base image unless buildah's storage has it; print its reference.
base_image() {
  local py=$1 key ref mirror root c started=$SECONDS
  key=$(printf '%s\n' "$SUITE" "$py" "${BASE_PACKAGES[@]}" "$(sed -n '/^base_image()/,/^}/p' "$0")" | sha)
  ref=$REGISTRY/python:$py-$SUITE-$key
  if bah inspect --type image "$ref" >/dev/null 2>&1; then printf '%s\n' "$ref"; return; fi
  need debootstrap debootstrap
  mirror=$(debian_mirror)
  root=$(mktemp -d "$CACHE_DIR/base-rootfs.XXXXXX")
  CLEANUP_DIRS+=("$root")
  trap cleanup EXIT # this runs in $(...), which does not inherit the script's trap
  log "debootstrap $SUITE (minbase + ${BASE_PACKAGES[*]}) from the machine's Debian mirror"
  debootstrap --variant=minbase --include="$(IFS=,; printf '%s' "${BASE_PACKAGES[*]}")" \
    "$SUITE" "$root" "$mirror" >"$CACHE_DIR/logs/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE_DIR/logs/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE_DIR/logs/debootstrap.log)"; }
  # Updates and security fixes, as the official slim images have them.
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
    "$mirror" "$SUITE" "$mirror" "$SUITE" "${mirror%/debian}/debian" "$SUITE" >"$root/etc/apt/sources.list"
  mount -t proc proc "$root/proc"
  chroot "$root" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive;
    apt-get update -qq && apt-get upgrade -y -qq >/dev/null && apt-get clean' \
    >>"$CACHE_DIR/logs/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE_DIR/logs/debootstrap.log" >&2; die "upgrading the base failed"; }
  umount -l "$root/proc"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
    "$root"/usr/share/man/* "$root"/usr/share/locale/*
  local have
  have=$(chroot "$root" python -c 'import sys, venv, ensurepip; print("%d.%d" % sys.version_info[:2])')
  [[ $have == "$py" ]] || die "Debian $SUITE has Python $have, the Dockerfile's base $py"
  c=$(bah from scratch)
  local mnt
  mnt=$(bah mount "$c")
  tar -C "$root" -cf - . | tar -C "$mnt" -xpf -
  bah umount "$c" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' --os linux --arch amd64 "$c"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  rm -rf "$root"
  # Older bases (another recipe) are not needed any more.
  local old
  for old in $(bah images --format '{{.Name}}:{{.Tag}}' | grep -F "$REGISTRY/python:" | grep -vxF "$ref" || true); do
    bah rmi "$old" >/dev/null 2>&1 || true
  done
  log "built $ref in $((SECONDS - started))s"
  printf '%s\n' "$ref"
}

# Hash of what the Dockerfile reads: the files .dockerignore lets in (pyproject.toml,
# README.md, constraints/test.txt, operator/ without caches) and the Dockerfile.
context_key() {
  (
    cd "$REPO"
    {
      find pyproject.toml README.md constraints/test.txt Dockerfile .dockerignore operator \
        -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.pyc' -print0 |
        sort -z | xargs -0 sha256sum
      printf '%s\n' "$@"
    } | sha
  )
}

main() {
  case ${1:-} in
    "") ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, buildah's storage)"
  need buildah buildah
  mkdir -p "$IMAGES_DIR" "$CACHE_DIR/logs"
  # Its own lock: buildah locks its storage itself, and the node's small images
  # (hack/images.sh) need not wait for this build.
  exec 9>"$CACHE_DIR/image-local.lock"
  flock 9
  local py base version extras key ref tar started=$SECONDS
  py=$(dockerfile_python)
  base=$(base_image "$py")
  version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' "$REPO/helm/modelmon/Chart.yaml")
  extras=${MODELMON_IMAGE_EXTRAS-$(sed -n 's/^ARG EXTRAS=//p' "$REPO/Dockerfile")}
  key=$(context_key "$base" "EXTRAS=$extras")
  ref=$REGISTRY/modelmon:$version-$key
  tar=$IMAGES_DIR/modelmon-$version-$key.tar
  if [[ -f $tar ]]; then
    log "cached: $ref ($tar)"
  else
    log "building $ref from the Dockerfile on $base (log: $CACHE_DIR/logs/image-local.log)"
    # Docker format: the Dockerfile's SHELL (bash with pipefail) is kept only there.
    # Host network, chroot isolation and, for the RUN steps only (nothing is committed),
    # this machine's CA bundle where Debian's pip reads it: pip reaches the package index
    # as this machine's pip does, behind whatever TLS proxy the machine trusts.
    local -a trust=()
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
      trust=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    if ! bah bud --format docker --isolation chroot --network host --layers=false "${trust[@]}" \
      --build-arg "PYTHON_IMAGE=$base" --build-arg "EXTRAS=$extras" \
      -f "$REPO/Dockerfile" -t "$ref" "$REPO" >"$CACHE_DIR/logs/image-local.log" 2>&1; then
      tail -n 40 "$CACHE_DIR/logs/image-local.log" >&2
      die "buildah bud failed (log: $CACHE_DIR/logs/image-local.log)"
    fi
    rm -f "$tar.tmp"
    bah push --quiet "$ref" "docker-archive:$tar.tmp:$ref" >/dev/null
    mv -f "$tar.tmp" "$tar"
    # The tarball is the cache; keep buildah's storage to the base images, and the two
    # newest tarballs (about 1 GB each).
    bah rmi "$ref" >/dev/null || true
    local old
    while IFS= read -r old; do rm -f "${old#* }"; done < <(
      find "$IMAGES_DIR" -maxdepth 1 -name 'modelmon-*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +3)
    log "built $ref in $((SECONDS - started))s"
  fi
  # Into the running node's containerd, if a node runs (hack/node.sh records its cluster).
  local owner=/run/modelmon-node.owner
  if [[ -f $owner ]]; then
    MODELMON_CLUSTER_DIR=$(<"$owner") "$REPO/hack/cluster.sh" load-image "$tar" "$ref" >&2
    log "loaded into the node of $(<"$owner")"
  else
    log "no node runs: load it later with hack/cluster.sh load-image $tar"
  fi
  printf '%s\n' "$ref"
}

main "$@"

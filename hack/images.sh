#!/usr/bin/env bash
# Container images built on this machine, for the local node (hack/cluster.sh with
# MODELMON_NODE=1). No public image registry is reachable here, so every image a pod
# runs is built from Debian packages or pinned sources with buildah (daemonless) and
# saved as an image tarball in the cache; the node's containerd imports the tarballs.
#
# Usage: hack/images.sh COMMAND
#   pause      the pod sandbox image: pause.c from the pinned k8s.io/kubernetes module,
#              compiled statically (gcc); prints the tarball's path
#   busybox    a busybox-like image from Debian's busybox-static; prints the tarball's path
#   ref NAME   print the image reference of pause or busybox
#
# Environment (all optional):
#   MODELMON_CACHE   tarballs under images/, buildah's storage under buildah/
#                    (default: $HOME/.cache/modelmon)
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_DIR=${MODELMON_CACHE:-$HOME/.cache/modelmon}
IMAGES_DIR=$CACHE_DIR/images

# kubeadm's pause version for Kubernetes 1.34 (constants.PauseVersion).
PAUSE_VERSION=3.10.1
REGISTRY=modelmon.local

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# buildah with its storage in the cache, not in /var/lib/containers.
bah() {
  buildah --root "$CACHE_DIR/buildah/root" --runroot "$CACHE_DIR/buildah/run" \
    --storage-driver overlay "$@"
}

need() { # command package
  command -v "$1" >/dev/null || die "$1 is missing (Debian package $2; hack/install-test-deps.sh --node installs it)"
}

kube_version() { "$HERE/cluster.sh" versions | sed -n 's/^KUBE_VERSION=//p'; }

busybox_version() {
  local v
  v=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null) || return 0
  v=${v#*:} # no epoch; a tag allows letters, digits, '.', '_' and '-'
  printf '%s\n' "${v//[^A-Za-z0-9._]/-}"
}

ref() {
  case $1 in
    pause) printf '%s/pause:%s\n' "$REGISTRY" "$PAUSE_VERSION" ;;
    busybox)
      local v
      v=$(busybox_version)
      [[ -n $v ]] || die "busybox-static is not installed (hack/install-test-deps.sh --node installs it)"
      printf '%s/busybox:%s\n' "$REGISTRY" "$v" ;;
    *) die "unknown image '$1' (known: pause busybox)" ;;
  esac
}

# Commit a working container and save it as a docker-archive tarball, then drop it
# from buildah's storage: the tarball is the cache.
save() { # container image-ref tarball
  local tmp=$3.tmp.$$
  bah commit --quiet --rm "$1" "$2" >/dev/null
  rm -f "$tmp"
  bah push --quiet "$2" "docker-archive:$tmp:$2" >/dev/null
  bah rmi "$2" >/dev/null
  mv -f "$tmp" "$3"
}

build_pause() {
  local tar kv src work c
  kv=$(kube_version)
  tar=$IMAGES_DIR/pause-$PAUSE_VERSION-$kv.tar
  if [[ -f $tar ]]; then printf '%s\n' "$tar"; return; fi
  need buildah buildah
  need gcc gcc
  [[ -f /usr/lib/x86_64-linux-gnu/libc.a || -n $(compgen -G '/usr/lib/*/libc.a') ]] ||
    die "no static libc (Debian package libc6-dev)"
  src=$(cd "$CACHE_DIR" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$kv" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -f $src/build/pause/linux/pause.c ]] || die "pause.c not found in k8s.io/kubernetes@$kv"
  mkdir -p "$IMAGES_DIR"
  work=$(mktemp -d)
  WORK_DIRS+=("$work")
  trap cleanup EXIT # with_lock's subshell does not inherit the script's trap
  gcc -Os -static -Wall -DVERSION="v$PAUSE_VERSION-modelmon" -o "$work/pause" "$src/build/pause/linux/pause.c"
  strip "$work/pause"
  c=$(bah from scratch)
  bah copy "$c" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$c"
  save "$c" "$(ref pause)" "$tar"
  log "built $(ref pause) -> $tar"
  printf '%s\n' "$tar"
}

build_busybox() {
  local tar r work c applet
  r=$(ref busybox)
  tar=$IMAGES_DIR/busybox-${r##*:}.tar
  if [[ -f $tar ]]; then printf '%s\n' "$tar"; return; fi
  need buildah buildah
  [[ -x /bin/busybox ]] || die "/bin/busybox is missing (Debian package busybox-static)"
  mkdir -p "$IMAGES_DIR"
  work=$(mktemp -d)
  WORK_DIRS+=("$work")
  trap cleanup EXIT # with_lock's subshell does not inherit the script's trap
  mkdir -p "$work/root/bin" "$work/root/tmp" "$work/root/etc"
  cp /bin/busybox "$work/root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$work/root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/root/etc/group"
  chmod 1777 "$work/root/tmp"
  c=$(bah from scratch)
  bah copy "$c" "$work/root/" / >/dev/null
  bah config --cmd '["/bin/sh"]' --env PATH=/bin --os linux --arch amd64 "$c"
  save "$c" "$r" "$tar"
  log "built $r -> $tar"
  printf '%s\n' "$tar"
}

# Work directories to remove on exit, whatever the outcome.
WORK_DIRS=()
cleanup() { if ((${#WORK_DIRS[@]})); then rm -rf "${WORK_DIRS[@]}"; fi; }
trap cleanup EXIT

with_lock() { # serialise builds sharing buildah's storage
  mkdir -p "$CACHE_DIR"
  (
    flock 9
    "$@"
  ) 9>"$CACHE_DIR/images.lock"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    pause) with_lock build_pause ;;
    busybox) with_lock build_busybox ;;
    ref) [[ $# -eq 1 ]] || die "usage: $0 ref pause|busybox"; ref "$1" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"

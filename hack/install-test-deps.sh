#!/usr/bin/env bash
# Install the Debian packages the tests run for real: promtool (prometheus),
# Alertmanager and amtool, PostgreSQL, openssl for hack/cluster.sh, and Lua 5.1
# for the Argo CD health check (Argo CD runs gopher-lua, a Lua 5.1); shellcheck
# for `make lint`; Chromium for the browser tests of the HTML report
# (tests/browser: headless, driven over its DevTools protocol).
#
# With --node, also what the local node of hack/cluster.sh needs (MODELMON_NODE=1, and
# hack/images.sh): containerd, runc, the CNI plugins, iptables, conntrack, buildah,
# busybox-static, gcc with a static libc for the pause image, and debootstrap for the
# operator image's base (hack/image-local.sh).
#
# Idempotent: when every command is already there it touches nothing and
# returns at once. It only installs: the tests start their own servers on
# 127.0.0.1, so the services the packages would enable are kept from
# starting (policy-rc.d) and stopped if an install started them anyway.
set -euo pipefail

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

# package -> a command it provides (checked in PATH and the usual sbin/lib places)
declare -A PROVIDES=(
  [prometheus]=promtool
  [prometheus-alertmanager]=prometheus-alertmanager
  [postgresql]=initdb
  [openssl]=openssl
  [lua5.1]=lua5.1
  [shellcheck]=shellcheck
  [chromium]=chromium
)
if [[ ${1:-} == --node ]]; then
  PROVIDES+=(
    [containerd]=containerd
    [runc]=runc
    [containernetworking-plugins]=/usr/lib/cni/bridge
    [iptables]=iptables
    [conntrack]=conntrack
    [buildah]=buildah
    [debootstrap]=debootstrap
    [busybox-static]=/usr/share/doc/busybox-static
    [gcc]=gcc
    [libc6-dev]='/usr/lib/*/libc.a'
  )
elif [[ $# -gt 0 ]]; then
  log "usage: $0 [--node]"
  exit 2
fi

have() {
  # A path (or a glob) is looked for as a file.
  if [[ $1 == /* ]]; then compgen -G "$1" >/dev/null; return; fi
  command -v "$1" >/dev/null 2>&1 && return 0
  # Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<major>/bin, off PATH.
  compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}

missing=()
for pkg in "${!PROVIDES[@]}"; do
  have "${PROVIDES[$pkg]}" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "all present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
  sudo=(sudo)
fi

log "installing: ${missing[*]}"
# Exit code 101 tells invoke-rc.d not to start services during this install.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  added_policy=true
fi
cleanup() { if $added_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Without systemd nothing was started; with it, stop what the packages enabled.
if [[ -d /run/systemd/system ]]; then
  for svc in prometheus prometheus-alertmanager postgresql containerd; do
    "${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

for pkg in "${missing[@]}"; do
  have "${PROVIDES[$pkg]}" || { log "$pkg installed but ${PROVIDES[$pkg]} not found"; exit 1; }
done
log "done"

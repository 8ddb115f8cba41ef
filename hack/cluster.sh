#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, built from Go modules.
#
# There is no container engine on the machines we develop and test on, so
# kind cannot run. Instead this script builds etcd, kube-apiserver,
# kube-controller-manager, kubectl and helm from the Go module proxy at the
# versions pinned below, caches the binaries outside the repository, and runs
# the three control-plane processes in the background (no kubelet, no
# scheduler: pods stay Pending, everything else the API does is real).
# With MODELMON_NODE=1 it also runs a node (hack/node.sh): kube-scheduler,
# containerd, a kubelet and kube-proxy, so pods run (docs/local-node.md).
#
# Usage: hack/cluster.sh COMMAND
#   build [COMPONENT...]  build missing binaries (etcd kube-apiserver
#                         kube-controller-manager kubectl helm); seconds when cached
#   up                    build what is missing, start the cluster, print
#                         `export KUBECONFIG=...` (the only line on stdout)
#   down                  stop the cluster and remove its state directory
#   env                   print `export KUBECONFIG=...` of the running cluster
#   status                show processes, ports and readiness (exit 1 if down)
#   bin COMPONENT         print the path of a built binary (building it if missing)
#   kubectl ARGS...       run the pinned kubectl against the running cluster
#   versions              print the pinned versions as NAME=VALUE lines
#   prometheusrule-crd    print the path of the upstream PrometheusRule CRD
#                         (downloads the prometheus-operator module if missing)
#   node-check            exit 0 if this machine has what the node needs
#   node-build            build the node's binaries and images (cached)
#   load-image TARBALL [REF]
#                         import an image tarball into the running node's containerd
#                         (with REF: only if the node does not have REF yet)
#
# Environment (all optional):
#   MODELMON_CACHE          binaries, wrapper modules, build logs
#                           (default: $HOME/.cache/modelmon)
#   MODELMON_CLUSTER_DIR    state: certs, etcd data, logs, pids, kubeconfig
#                           (default: ${TMPDIR:-/tmp}/modelmon-cluster)
#   MODELMON_ETCD_PORT, MODELMON_APISERVER_PORT, MODELMON_KCM_PORT
#                           fixed ports; unset means pick free ones
#   MODELMON_READY_TIMEOUT  seconds to wait for readiness (default 120)
#   MODELMON_STOP_GRACE     seconds between SIGTERM and SIGKILL (default 15)
#   MODELMON_BUILD_JOBS     go build -p (default 2, sized for 2 cores)
#   MODELMON_NODE=1         `up` also starts the node (one per machine; needs
#                           root and hack/install-test-deps.sh --node)
#   MODELMON_NODE_READY_TIMEOUT  seconds to wait for the node (default 180)
#   MODELMON_APISERVER_ARGS, MODELMON_KCM_ARGS
#                           extra flags, split on spaces; a later flag wins,
#                           except list flags, which add up (--controllers=-job
#                           turns the job controller off)
set -euo pipefail
shopt -s inherit_errexit

# --- pinned versions ---------------------------------------------------------
# Kubernetes 1.34: the newest 1.34 patch whose module the checksum database
# verifies. etcd 3.6.5 is the version Kubernetes 1.34 tests against
# (hack/lib/etcd.sh, kubeadm's default). Helm 3.19 is built on the 1.34 client
# libraries. prometheus-operator only provides the PrometheusRule CRD.
KUBE_VERSION=v1.34.10
ETCD_VERSION=v3.6.5
HELM_VERSION=v3.19.5
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# crictl of the same minor, for the node only (its `down` removes pod sandboxes).
CRICTL_VERSION=v1.34.0

KUBE_MINOR=${KUBE_VERSION#v1.}
KUBE_MINOR=${KUBE_MINOR%%.*}

COMPONENTS=(etcd kube-apiserver kube-controller-manager kubectl helm)
# Built only for the node (MODELMON_NODE=1): a scheduler, the kubelet and kube-proxy,
# from the same k8s.io/kubernetes module and wrapper as the control plane.
NODE_COMPONENTS=(kube-scheduler kubelet kube-proxy crictl)

CACHE_DIR=${MODELMON_CACHE:-$HOME/.cache/modelmon}
STATE_DIR=${MODELMON_CLUSTER_DIR:-${TMPDIR:-/tmp}/modelmon-cluster}
# Absolute and without a trailing slash: pids are matched on this string.
[[ $STATE_DIR == /* ]] || STATE_DIR=$PWD/$STATE_DIR
STATE_DIR=${STATE_DIR%/}
READY_TIMEOUT=${MODELMON_READY_TIMEOUT:-120}
STOP_GRACE=${MODELMON_STOP_GRACE:-15}
BUILD_JOBS=${MODELMON_BUILD_JOBS:-2}

# Addresses inside the cluster's virtual service network; nothing is routed
# there, the apiserver only allocates Service IPs from it.
SERVICE_CIDR=10.0.0.0/24
SERVICE_IP=10.0.0.1
SA_ISSUER=https://kubernetes.default.svc.cluster.local

# The marker tells `down` that a directory is ours before it deletes it.
MARKER=.modelmon-cluster

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# The control plane's processes; the node's (hack/node.sh) join them when it runs.
PROCS=(etcd kube-apiserver kube-controller-manager)
# shellcheck source=hack/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/node.sh"

# --- building ------------------------------------------------------------------

bin_path() { # component -> path of its cached binary
  local c=$1 v
  case $c in
    etcd) v=$ETCD_VERSION ;;
    helm) v=$HELM_VERSION ;;
    crictl) v=$CRICTL_VERSION ;;
    kube-apiserver | kube-controller-manager | kubectl | kube-scheduler | kubelet | kube-proxy)
      v=$KUBE_VERSION ;;
    *) die "unknown component '$c' (known: ${COMPONENTS[*]} ${NODE_COMPONENTS[*]})" ;;
  esac
  printf '%s/bin/%s-%s/%s\n' "$CACHE_DIR" "$c" "$v" "$c"
}

# Build environment shared by every component: static binaries, no go.work
# from the caller, and a bounded number of parallel compiles for 2 cores.
go_build_env() {
  export CGO_ENABLED=0 GOWORK=off
  export GOFLAGS="${GOFLAGS:-} -p=$BUILD_JOBS"
}

# Run a build step with its output in the log, print a line every minute so
# a long build shows it is alive, and show the log's tail if it fails.
run_logged() {
  local logfile=$1 pid rc=0 t=0; shift
  "$@" >>"$logfile" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    if ((t % 60 == 0)); then log "  still running after $((t / 60)) min: $1 $2"; fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    tail -n 40 "$logfile" >&2 || true
    die "build step failed (exit $rc): $* (full log: $logfile)"
  fi
}

# k8s.io/kubernetes replaces its staging modules (k8s.io/api, ...) with local
# directories, which `go install pkg@version` refuses. A wrapper module that
# replaces each of them with the published v0.X.Y module makes it buildable.
# The staging list is read from the pinned go.mod, so it follows the version.
kube_wrapper() {
  local dir=$CACHE_DIR/src/kubernetes-$KUBE_VERSION logfile=$1
  if [[ -f $dir/.ready ]]; then printf '%s\n' "$dir"; return; fi
  local staging_version=v0.${KUBE_VERSION#v1.} gomod m
  rm -rf "$dir" && mkdir -p "$dir"
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>>"$logfile" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION (see $logfile)"
  (
    cd "$dir"
    # Same go and godebug lines as Kubernetes, so runtime defaults match.
    printf 'module modelmon.local/kubernetes-build\n\ngo 1.24.0\n\ngodebug default=go1.24\n' >go.mod
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod" |
      while read -r m; do go mod edit -replace="$m=$m@$staging_version"; done
    run_logged "$logfile" go get -tool \
      "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION"
  )
  touch "$dir/.ready"
  printf '%s\n' "$dir"
}

# The node's binaries come from the same wrapper: their packages are added as
# tools once (same k8s.io/kubernetes version, so no selected version changes).
kube_node_wrapper() {
  local dir logfile=$1
  dir=$(kube_wrapper "$logfile")
  if [[ ! -f $dir/.node-ready ]]; then
    (
      cd "$dir"
      run_logged "$logfile" go get -tool \
        "k8s.io/kubernetes/cmd/kube-scheduler@$KUBE_VERSION" \
        "k8s.io/kubernetes/cmd/kubelet@$KUBE_VERSION" \
        "k8s.io/kubernetes/cmd/kube-proxy@$KUBE_VERSION"
    )
    touch "$dir/.node-ready"
  fi
  printf '%s\n' "$dir"
}

# etcd's server module replaces its sibling modules with local paths too;
# as a dependency of a wrapper those replaces are ignored and the published
# siblings at the same version are used.
etcd_wrapper() {
  local dir=$CACHE_DIR/src/etcd-$ETCD_VERSION logfile=$1
  if [[ -f $dir/.ready ]]; then printf '%s\n' "$dir"; return; fi
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module modelmon.local/etcd-build\n\ngo 1.24\n' >go.mod
    run_logged "$logfile" go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  )
  touch "$dir/.ready"
  printf '%s\n' "$dir"
}

build_one() {
  local c=$1 out tmp logfile dir ldflags start
  out=$(bin_path "$c")
  [[ -x $out ]] && return 0
  command -v go >/dev/null || die "go is not on PATH (needed to build $c)"
  mkdir -p "$CACHE_DIR/logs" "$(dirname "$out")"
  logfile=$CACHE_DIR/logs/build-$(basename "$(dirname "$out")").log
  : >"$logfile"
  start=$SECONDS
  log "building $(basename "$(dirname "$out")") (log: $logfile)"
  tmp=$out.tmp.$$
  go_build_env
  case $c in
    kube-apiserver | kube-controller-manager | kubectl | kube-scheduler | kubelet | kube-proxy)
      case $c in
        kube-scheduler | kubelet | kube-proxy) dir=$(kube_node_wrapper "$logfile") ;;
        *) dir=$(kube_wrapper "$logfile") ;;
      esac
      # Real version strings, as the release build sets them, so /version
      # and the apiserver's compatibility version are the pinned ones.
      ldflags="-s -w"
      local pkg
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      done
      (cd "$dir" && run_logged "$logfile" go build -trimpath -ldflags "$ldflags" -o "$tmp" "k8s.io/kubernetes/cmd/$c")
      ;;
    etcd)
      dir=$(etcd_wrapper "$logfile")
      (cd "$dir" && run_logged "$logfile" go build -trimpath -ldflags "-s -w" -o "$tmp" go.etcd.io/etcd/server/v3)
      ;;
    helm)
      # Helm has no replace directives, so a plain `go install` works. The
      # k8sVersion flags are what Helm's Makefile derives from client-go.
      local hv=helm.sh/helm/v3 gobin
      gobin=$(mktemp -d "$CACHE_DIR/src/helm-gobin.XXXXXX")
      ldflags="-s -w -X $hv/internal/version.version=$HELM_VERSION -X $hv/internal/version.gitTreeState=clean"
      ldflags+=" -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR"
      ldflags+=" -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR"
      (cd "$CACHE_DIR" && GOBIN=$gobin run_logged "$logfile" go install -trimpath -ldflags "$ldflags" "$hv/cmd/helm@$HELM_VERSION")
      mv "$gobin/helm" "$tmp" && rmdir "$gobin"
      ;;
    crictl)
      local cv=sigs.k8s.io/cri-tools gobin
      gobin=$(mktemp -d "$CACHE_DIR/src/crictl-gobin.XXXXXX")
      ldflags="-s -w -X $cv/pkg/version.Version=$CRICTL_VERSION"
      (cd "$CACHE_DIR" && GOBIN=$gobin run_logged "$logfile" go install -trimpath -ldflags "$ldflags" "$cv/cmd/crictl@$CRICTL_VERSION")
      mv "$gobin/crictl" "$tmp" && rmdir "$gobin"
      ;;
  esac
  # Rename last: a binary in place always means a finished build.
  mv -f "$tmp" "$out"
  log "built $c in $((SECONDS - start))s -> $out"
}

with_lock() { # name command... : serialise concurrent runs on one cache
  mkdir -p "$CACHE_DIR"
  (
    flock 9
    "${@:2}"
  ) 9>"$CACHE_DIR/$1.lock"
}

build() {
  local c
  local -a want=("$@")
  [[ ${#want[@]} -gt 0 ]] || want=("${COMPONENTS[@]}")
  for c in "${want[@]}"; do bin_path "$c" >/dev/null; done # validate names first
  for c in "${want[@]}"; do with_lock build build_one "$c"; done
}

# --- certificates ------------------------------------------------------------

gen_certs() {
  local d=$STATE_DIR/certs
  command -v openssl >/dev/null || die "openssl is required (hack/install-test-deps.sh installs it)"
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    new_ca ca "/CN=modelmon-test-ca"
    # serving: kube-apiserver and kube-controller-manager on 127.0.0.1
    issue ca serving "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local$(node_enabled && printf ',IP:%s' "$NODE_IP")
extendedKeyUsage=serverAuth"
    # system:masters bypasses RBAC: this is the cluster admin.
    issue ca admin "/O=system:masters/CN=modelmon-admin" "extendedKeyUsage=clientAuth"
    # The bootstrap RBAC policy grants this user what the controller manager needs.
    issue ca kcm "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
    # The aggregation layer's front proxy, as on a kubeadm cluster: its CA is
    # what delegated authentication (kube-controller-manager, extension API
    # servers, webhooks built on k8s.io/apiserver) expects to find.
    new_ca front-proxy-ca "/CN=modelmon-front-proxy-ca"
    issue front-proxy-ca front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

new_ca() { # name subject: self-signed CA in cwd
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$1.key" -out "$1.crt" \
    -subj "$2" 2>/dev/null
}

issue() { # ca name subject extensions: key + certificate signed by the CA, in cwd
  openssl req -newkey rsa:2048 -nodes -keyout "$2.key" -out "$2.csr" -subj "$3" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n%s\n' "$4" >"$2.ext"
  openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial -days 3650 \
    -extfile "$2.ext" -out "$2.crt" 2>/dev/null
  rm -f "$2.csr" "$2.ext"
}

write_kubeconfig() { # path user-cert-name
  local d=$STATE_DIR/certs
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelmon
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$d/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 <"$d/$2.crt")
    client-key-data: $(base64 -w0 <"$d/$2.key")
contexts:
- name: modelmon
  context: {cluster: modelmon, user: $2}
current-context: modelmon
EOF
  chmod 600 "$1"
}

# --- processes and ports -------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Free ports below Linux's ephemeral range, so that no outgoing connection
# can be holding them.
declare -a TAKEN=()
pick_port() { # env-var-name -> port
  local p=${!1:-} i
  if [[ -n $p ]]; then
    port_in_use "$p" && die "port $p ($1) is already in use"
    TAKEN+=("$p"); printf '%s\n' "$p"; return
  fi
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 10000))
    [[ " ${TAKEN[*]} " == *" $p "* ]] && continue
    if ! port_in_use "$p"; then TAKEN+=("$p"); printf '%s\n' "$p"; return; fi
  done
  die "found no free port on 127.0.0.1"
}

# A pid is ours only while its command line names our state directory; this
# guards against killing an unrelated process that reused a stale pid.
our_pid() { # name -> pid, if that process is alive and ours
  local f=$STATE_DIR/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # No pipe into `grep -q` here: under pipefail, grep exiting at the first match can
  # SIGPIPE tr and turn a live process into a "dead" one (a flake seen under load).
  # A live process is asked up to three times: while setsid execs the daemon, the
  # kernel briefly shows an empty command line, which once failed a CI start-up.
  local cmd i
  for ((i = 0; i < 3; i++)); do
    alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || cmd=
    if [[ $cmd == *"$STATE_DIR/"* ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start() { # name binary args...
  local name=$1; shift
  # setsid: own session, so a Ctrl-C or hang-up of the calling terminal does
  # not reach the cluster; `down` stops it. Not forking here keeps $! exact.
  # fd 9 is the `up` lock: a daemon holding it would block every later `down`.
  setsid "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$! i
  printf '%s\n' "$pid" >"$STATE_DIR/$name.pid"
  # Until the forked shell has exec'd, the pid's command line is still this
  # script's and our_pid would call the process gone: wait for the exec.
  for ((i = 0; i < 100; i++)); do
    our_pid "$name" >/dev/null && return 0
    alive "$pid" || return 0 # died at once: wait_for reports it with the log
    sleep 0.05
  done
}

# Alive and not a zombie: a zombie is dead, whoever is late reaping it.
alive() {
  local _pid _comm state
  read -r _pid _comm state _ 2>/dev/null <"/proc/$1/stat" || return 1
  [[ $state != Z ]]
}

stop() { # names...: SIGTERM to all of them, SIGKILL after the grace period
  local -A pids=()
  local n pid i waiting
  for n in "$@"; do
    if pid=$(our_pid "$n"); then
      log "stopping $n (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids[$n]=$pid
    fi
  done
  for ((i = 0; i < STOP_GRACE * 10; i++)); do
    waiting=0
    for pid in "${pids[@]}"; do alive "$pid" && waiting=1; done
    ((waiting)) || break
    sleep 0.1
  done
  for n in "${!pids[@]}"; do
    pid=${pids[$n]}
    alive "$pid" || continue
    log "$n did not exit within ${STOP_GRACE}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  done
  for n in "$@"; do rm -f "$STATE_DIR/$n.pid"; done
}

logs_tail() {
  local f
  for f in "$STATE_DIR"/logs/*.log; do
    [[ -f $f ]] || continue
    printf '\n--- last lines of %s ---\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

kctl() { "$(bin_path kubectl)" --kubeconfig="$STATE_DIR/admin.kubeconfig" "$@"; }

running() { # true when all three processes are ours and the apiserver is ready
  [[ -f $STATE_DIR/$MARKER ]] || return 1
  local n
  for n in "${PROCS[@]}"; do our_pid "$n" >/dev/null || return 1; done
  if node_present; then
    for n in "${NODE_PROCS[@]}"; do our_pid "$n" >/dev/null || return 1; done
  fi
  kctl get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

print_env() { printf 'export KUBECONFIG=%q\n' "$STATE_DIR/admin.kubeconfig"; }

# Poll until `check` passes; fail early if a process died, with log tails.
wait_for() { # description command...
  local what=$1 deadline=$((SECONDS + READY_TIMEOUT)) n; shift
  until "$@" >/dev/null 2>&1; do
    for n in "${PROCS[@]}" "${NODE_PROCS[@]}"; do
      [[ -f $STATE_DIR/$n.pid ]] || continue
      our_pid "$n" >/dev/null || abort_up "$n exited while waiting for $what"
    done
    ((SECONDS < deadline)) || abort_up "timed out after ${READY_TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

# A failed start leaves no processes behind, but keeps the logs to read.
abort_up() {
  logs_tail
  node_down
  stop kube-controller-manager kube-apiserver
  stop etcd
  die "$1 (logs kept in $STATE_DIR/logs; '$0 down' removes them)"
}

# --- commands ------------------------------------------------------------------

cmd_up() {
  if node_enabled; then node_check || die "MODELMON_NODE=1, but this machine cannot run the node (see above)"; fi
  build etcd kube-apiserver kube-controller-manager kubectl helm
  if node_enabled; then node_build; fi
  if running; then
    if node_enabled && ! node_present; then
      die "a cluster without a node runs in $STATE_DIR; stop it first ($0 down) to start one with a node"
    fi
    log "cluster already running in $STATE_DIR"
    print_env
    return
  fi
  if [[ -e $STATE_DIR ]]; then
    if [[ -f $STATE_DIR/$MARKER ]]; then
      log "cleaning up a stale cluster in $STATE_DIR"
      cmd_down
    elif [[ -n $(ls -A "$STATE_DIR") ]]; then
      die "$STATE_DIR exists and is not a modelmon cluster directory; set MODELMON_CLUSTER_DIR elsewhere"
    fi
  fi
  mkdir -p "$STATE_DIR/logs"
  touch "$STATE_DIR/$MARKER"
  local started=$SECONDS
  gen_certs
  ETCD_PORT=$(pick_port MODELMON_ETCD_PORT)
  APISERVER_PORT=$(pick_port MODELMON_APISERVER_PORT)
  KCM_PORT=$(pick_port MODELMON_KCM_PORT)
  printf 'ETCD_PORT=%s\nAPISERVER_PORT=%s\nKCM_PORT=%s\nKUBE_VERSION=%s\n' \
    "$ETCD_PORT" "$APISERVER_PORT" "$KCM_PORT" "$KUBE_VERSION" >"$STATE_DIR/ports.env"
  write_kubeconfig "$STATE_DIR/admin.kubeconfig" admin
  write_kubeconfig "$STATE_DIR/kcm.kubeconfig" kcm
  local c=$STATE_DIR/certs
  local -a node_args=()
  if node_enabled; then
    node_certs
    mapfile -t node_args < <(node_apiserver_args)
  fi

  log "starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT"
  # Peer port 0: a single member needs no reachable peer listener. fsync is
  # off because the data is thrown away; it keeps tests fast on slow disks.
  start etcd "$(bin_path etcd)" \
    --name=modelmon --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls=http://127.0.0.1:0 \
    --unsafe-no-fsync=true --log-level=warn
  wait_for "etcd" port_in_use "$ETCD_PORT"

  log "starting kube-apiserver $KUBE_VERSION on https://127.0.0.1:$APISERVER_PORT"
  # No endpoint reconciler: it would publish 127.0.0.1 as the `kubernetes`
  # Service's endpoint, which validation rejects (loopback), every 10s.
  # shellcheck disable=SC2086 # MODELMON_APISERVER_ARGS is a list of flags
  start kube-apiserver "$(bin_path kube-apiserver)" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" --cert-dir="$c" \
    --tls-cert-file="$c/serving.crt" --tls-private-key-file="$c/serving.key" \
    --client-ca-file="$c/ca.crt" \
    --authorization-mode="$(node_enabled && printf 'Node,')RBAC" \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$c/sa.pub" \
    --service-account-signing-key-file="$c/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --requestheader-client-ca-file="$c/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$c/front-proxy-client.crt" \
    --proxy-client-key-file="$c/front-proxy-client.key" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true --profiling=false \
    "${node_args[@]}" ${MODELMON_APISERVER_ARGS:-}
  wait_for "kube-apiserver /readyz" kctl get --raw /readyz --request-timeout=5s

  log "starting kube-controller-manager on https://127.0.0.1:$KCM_PORT"
  # One instance, so no leader election (it would delay start-up). Each
  # controller gets its own service account, as on a kubeadm cluster.
  # shellcheck disable=SC2086 # MODELMON_KCM_ARGS is a list of flags
  start kube-controller-manager "$(bin_path kube-controller-manager)" \
    --kubeconfig="$STATE_DIR/kcm.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kcm.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$c" \
    --tls-cert-file="$c/serving.crt" --tls-private-key-file="$c/serving.key" \
    --controllers='*' --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$c/sa.key" \
    --root-ca-file="$c/ca.crt" \
    --cluster-signing-cert-file="$c/ca.crt" --cluster-signing-key-file="$c/ca.key" \
    --profiling=false \
    ${MODELMON_KCM_ARGS:-}
  wait_for "kube-controller-manager /healthz" \
    kctl --server="https://127.0.0.1:$KCM_PORT" get --raw /healthz --request-timeout=5s
  # The service account controller filling in `default` proves the
  # controllers are running, not just the process.
  wait_for "the default service account" kctl -n default get serviceaccount default
  if node_enabled; then node_up; fi

  log "cluster ready in $((SECONDS - started))s (state: $STATE_DIR)"
  print_env
}

cmd_down() {
  if [[ ! -e $STATE_DIR ]]; then
    log "no cluster in $STATE_DIR"
    return
  fi
  [[ -f $STATE_DIR/$MARKER ]] || die "$STATE_DIR is not a modelmon cluster directory; not touching it"
  local p deadline
  # The node first (it needs the API server to go cleanly), etcd last, so the API
  # server does not spend its shutdown retrying it.
  node_down
  stop kube-controller-manager kube-apiserver
  stop etcd
  if [[ -f $STATE_DIR/ports.env ]]; then
    deadline=$((SECONDS + 30))
    while read -r p; do
      while port_in_use "$p"; do
        ((SECONDS < deadline)) || die "port $p is still in use after stopping the cluster"
        sleep 0.2
      done
    done < <(sed -n 's/^[A-Z_]*_PORT=//p' "$STATE_DIR/ports.env")
  fi
  rm -rf "$STATE_DIR"
  log "cluster stopped, $STATE_DIR removed"
}

cmd_env() {
  running || die "no running cluster in $STATE_DIR (start one with: $0 up)"
  print_env
}

cmd_status() {
  local n pid ok=0
  printf 'versions: kubernetes %s, etcd %s, helm %s\n' "$KUBE_VERSION" "$ETCD_VERSION" "$HELM_VERSION"
  printf 'state dir: %s\n' "$STATE_DIR"
  local -a names=("${PROCS[@]}")
  node_present && names+=("${NODE_PROCS[@]}")
  for n in "${names[@]}"; do
    if pid=$(our_pid "$n"); then printf '%-24s running (pid %s)\n' "$n" "$pid"
    else printf '%-24s not running\n' "$n"; ok=1; fi
  done
  [[ -f $STATE_DIR/ports.env ]] && sed 's/^/  /' "$STATE_DIR/ports.env"
  if running; then print_env; else printf 'apiserver: not ready\n'; ok=1; fi
  return "$ok"
}

cmd_prometheusrule_crd() {
  local dir file
  mkdir -p "$CACHE_DIR"
  dir=$(cd "$CACHE_DIR" && GOWORK=off go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  file=$dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
  [[ -n $dir && -f $file ]] || die "PrometheusRule CRD not found in prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
  printf '%s\n' "$file"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    build) build "$@" ;;
    up) with_lock cluster cmd_up ;;
    down) with_lock cluster cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    bin)
      [[ $# -eq 1 ]] || die "usage: $0 bin COMPONENT"
      build "$1"; bin_path "$1" ;;
    kubectl) build kubectl; kctl "$@" ;;
    versions)
      printf 'KUBE_VERSION=%s\nETCD_VERSION=%s\nHELM_VERSION=%s\nPROMETHEUS_OPERATOR_VERSION=%s\nCRICTL_VERSION=%s\n' \
        "$KUBE_VERSION" "$ETCD_VERSION" "$HELM_VERSION" "$PROMETHEUS_OPERATOR_VERSION" "$CRICTL_VERSION" ;;
    prometheusrule-crd) cmd_prometheusrule_crd ;;
    node-check) node_check && log "node: this machine has what the node needs" ;;
    node-build) node_check || die "this machine cannot run the node (see above)"; node_build ;;
    load-image)
      [[ $# -eq 1 || $# -eq 2 ]] || die "usage: $0 load-image TARBALL [REF]"
      node_load_image "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"

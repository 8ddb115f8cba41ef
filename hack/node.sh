# shellcheck shell=bash
# The local node of hack/cluster.sh (MODELMON_NODE=1): sourced by cluster.sh, which
# provides log, die, bin_path, build, start, stop, our_pid, alive, kctl, pick_port,
# issue, write_kubeconfig and the state variables.
#
# One node on one machine: a kube-scheduler, containerd and runc (Debian packages) with
# the CNI bridge, host-local and loopback plugins (Debian's containernetworking-plugins),
# a kubelet on cgroup v1 with the cgroupfs driver, and kube-proxy in iptables mode, so
# that pods reach `kubernetes.default` (10.0.0.1:443) at the API server. No cluster DNS:
# in-cluster clients use KUBERNETES_SERVICE_HOST, an address.
#
# What it changes on the machine, all undone by `down`: a bridge (NODE_BRIDGE) whose
# address is the node's IP, iptables rules (kube-proxy's KUBE-* chains and the MODELMON-*
# chains below: pods reach each other and this host, nothing beyond; the API server,
# which listens on every address so that pods can reach it, answers on loopback and the
# bridge only), the cgroup NODE_CGROUP in every cgroup v1 hierarchy, and
# net.ipv4.ip_forward, which the CNI bridge plugin turns on (restored).

NODE_NAME=modelmon-node
NODE_BRIDGE=modelmon0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
NODE_CGROUP=modelmon-node
NODE_DIR=$STATE_DIR/node
# Who runs the one node of this machine: the state directory of its cluster.
NODE_OWNER=/run/modelmon-node.owner
# shellcheck disable=SC2034 # read by cluster.sh (wait_for, running, status)
NODE_PROCS=(kube-scheduler containerd kubelet kube-proxy)
NODE_READY_TIMEOUT=${MODELMON_NODE_READY_TIMEOUT:-180}
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

node_enabled() { [[ ${MODELMON_NODE:-0} == 1 ]]; }
node_present() { [[ -d $NODE_DIR ]]; }

# Everything a node needs from the machine; prints what is missing and fails.
node_check() {
  local missing=() c f
  for c in containerd containerd-shim-runc-v2 runc ctr iptables ip6tables conntrack buildah gcc ip; do
    command -v "$c" >/dev/null || missing+=("command $c")
  done
  for f in bridge host-local loopback; do
    [[ -x /usr/lib/cni/$f ]] || missing+=("CNI plugin /usr/lib/cni/$f")
  done
  [[ -x /bin/busybox ]] || missing+=("/bin/busybox (busybox-static)")
  if ((${#missing[@]})); then
    printf '[cluster] node: missing %s\n' "${missing[@]}" >&2
    printf '[cluster] node: hack/install-test-deps.sh --node installs them\n' >&2
    return 1
  fi
  for c in cpu cpuacct cpuset memory devices freezer pids; do
    [[ -d /sys/fs/cgroup/$c ]] || { log "node: cgroup v1 hierarchy /sys/fs/cgroup/$c is not mounted"; return 1; }
  done
  [[ $(id -u) -eq 0 ]] || { log "node: needs root (kubelet, containerd, iptables)"; return 1; }
  swapon --show=NAME --noheadings 2>/dev/null | grep -q . &&
    log "node: swap is on; the kubelet runs with failSwapOn: false"
  return 0
}

node_build() {
  build kube-scheduler kubelet kube-proxy crictl
  "$HACK_DIR/images.sh" pause >/dev/null
  "$HACK_DIR/images.sh" busybox >/dev/null
}

# One node per machine: the bridge, pod range, cgroup and kube-proxy's chains are global.
node_claim() {
  local owner
  if [[ -f $NODE_OWNER ]]; then
    owner=$(<"$NODE_OWNER")
    if [[ $owner != "$STATE_DIR" && -d $owner/node ]]; then
      die "a node already runs for the cluster in $owner; stop it first (MODELMON_CLUSTER_DIR=$owner $0 down)"
    fi
  fi
  printf '%s\n' "$STATE_DIR" >"$NODE_OWNER"
}

node_certs() {
  local d=$STATE_DIR/certs
  (
    cd "$d" || exit
    umask 077
    issue ca kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
    issue ca kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
    issue ca kube-scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
    # The API server's client certificate towards kubelets (logs, exec).
    issue ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      "extendedKeyUsage=clientAuth"
    issue ca kubelet-serving "/CN=$NODE_NAME" \
      "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME
extendedKeyUsage=serverAuth"
  )
  write_kubeconfig "$STATE_DIR/kubelet.kubeconfig" kubelet
  write_kubeconfig "$STATE_DIR/kube-proxy.kubeconfig" kube-proxy
  write_kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" kube-scheduler
}

# Flags appended to the API server's (a later flag wins): it listens on every address
# (pods reach it through the bridge; MODELMON-INPUT drops other interfaces), advertises
# the node's IP so that the `kubernetes` Service's endpoint is reachable from pods, and
# restricts kubelets to their own node (cluster.sh adds the Node authorizer).
node_apiserver_args() {
  local c=$STATE_DIR/certs
  printf '%s\n' --bind-address=0.0.0.0 --advertise-address="$NODE_IP" \
    --endpoint-reconciler-type=lease \
    --enable-admission-plugins=NodeRestriction --kubelet-preferred-address-types=InternalIP \
    --kubelet-client-certificate="$c/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$c/apiserver-kubelet-client.key"
}

sysctl_save() { # key: remember its value before the node's first change
  local f=/proc/sys/${1//.//}
  [[ -e $f ]] || return 0
  grep -qF "$f=" "$NODE_DIR/sysctl.saved" 2>/dev/null || printf '%s=%s\n' "$f" "$(<"$f")" >>"$NODE_DIR/sysctl.saved"
}

node_network_up() {
  ip link add "$NODE_BRIDGE" type bridge 2>/dev/null || true
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # The CNI bridge plugin turns forwarding on; kube-proxy needs bridged traffic to
  # pass iptables (a pod reaching a Service backed by a pod on the same bridge).
  sysctl_save net.ipv4.ip_forward
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter 2>/dev/null || true
  sysctl_save net.bridge.bridge-nf-call-iptables
  printf '1\n' >/proc/sys/net/bridge/bridge-nf-call-iptables
  # Pods talk to each other and to this host, never beyond it: no masquerading in
  # the CNI config, and forwarded traffic from the pod range out of the bridge is dropped.
  iptables -w -N MODELMON-FORWARD 2>/dev/null || iptables -w -F MODELMON-FORWARD
  iptables -w -A MODELMON-FORWARD -s "$POD_CIDR" ! -o "$NODE_BRIDGE" -j DROP
  iptables -w -A MODELMON-FORWARD -d "$POD_CIDR" ! -i "$NODE_BRIDGE" -j DROP
  iptables -w -C FORWARD -j MODELMON-FORWARD 2>/dev/null || iptables -w -I FORWARD -j MODELMON-FORWARD
  # The API server listens on every address: answer on loopback and the bridge only.
  iptables -w -N MODELMON-INPUT 2>/dev/null || iptables -w -F MODELMON-INPUT
  iptables -w -A MODELMON-INPUT -p tcp --dport "$APISERVER_PORT" -i lo -j RETURN
  iptables -w -A MODELMON-INPUT -p tcp --dport "$APISERVER_PORT" -i "$NODE_BRIDGE" -j RETURN
  iptables -w -A MODELMON-INPUT -p tcp --dport "$APISERVER_PORT" -j DROP
  iptables -w -C INPUT -j MODELMON-INPUT 2>/dev/null || iptables -w -I INPUT -j MODELMON-INPUT
}

node_network_down() {
  local chain parent
  for chain in MODELMON-FORWARD:FORWARD MODELMON-INPUT:INPUT; do
    parent=${chain#*:}
    chain=${chain%:*}
    while iptables -w -D "$parent" -j "$chain" 2>/dev/null; do :; done
    iptables -w -F "$chain" 2>/dev/null || true
    iptables -w -X "$chain" 2>/dev/null || true
  done
  # What kube-proxy --cleanup leaves (KUBE-FIREWALL, the kubelet's KUBE-IPTABLES-HINT
  # and canaries): every KUBE-* chain is the node's, there is one node on the machine.
  local ipt
  for ipt in iptables ip6tables; do purge_kube_chains "$ipt"; done
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  if [[ -f $NODE_DIR/sysctl.saved ]]; then
    local kv
    while IFS= read -r kv; do
      printf '%s\n' "${kv#*=}" >"${kv%%=*}" 2>/dev/null || true
    done <"$NODE_DIR/sysctl.saved"
  fi
}

purge_kube_chains() { # iptables|ip6tables
  local t rule chain
  for t in filter nat mangle raw; do
    while IFS= read -r rule; do
      eval "$1 -w -t $t -D ${rule#-A }" 2>/dev/null || true
    done < <("$1" -w -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' || true)
    while IFS= read -r chain; do "$1" -w -t "$t" -F "$chain" 2>/dev/null || true; done \
      < <("$1" -w -t "$t" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\)$/\1/p')
    while IFS= read -r chain; do "$1" -w -t "$t" -X "$chain" 2>/dev/null || true; done \
      < <("$1" -w -t "$t" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\)$/\1/p')
  done
}

node_cgroups_up() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ $h == */unified/ ]] && continue
    mkdir -p "$h$NODE_CGROUP"
  done
}

# Kill what is left in the node's cgroups (containers whose shim is gone), then
# remove the cgroups, deepest first.
node_cgroups_down() {
  local h pid d i left
  for ((i = 0; i < 10; i++)); do
    left=0
    while read -r pid; do
      left=1
      kill -KILL "$pid" 2>/dev/null || true
    done < <(find "/sys/fs/cgroup/pids/$NODE_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null)
    ((left)) || break
    sleep 0.2
  done
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h$NODE_CGROUP ]] || continue # unified too: runc mirrors v1 cgroups there
    while IFS= read -r d; do rmdir "$d" 2>/dev/null || true; done \
      < <(find "$h$NODE_CGROUP" -depth -type d)
  done
}

node_write_configs() {
  local c=$STATE_DIR/certs
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam" "$NODE_DIR/containerd" "$NODE_DIR/kubelet" \
    "$NODE_DIR/pod-logs"
  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$NODE_DIR/containerd.sock"
[ttrpc]
  address = "$NODE_DIR/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$("$HACK_DIR/images.sh" ref pause)"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  systemd_cgroup = false
  # Without CAP_SYS_RESOURCE (sandboxes here lack it) no process may lower its OOM
  # score: containers get at least containerd's own instead of -998 (pause) or -997.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  cat >"$NODE_DIR/cni/net.d/10-modelmon.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelmon",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    }
  ]
}
EOF
  # No cluster DNS: an empty resolvConf gives pods no name server. Pods have a route to
  # the pod range and the Service range only (CNI config above): nothing else is reachable.
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $c/kubelet-serving.crt
tlsPrivateKeyFile: $c/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $c/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$NODE_DIR/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
cgroupsPerQOS: true
failSwapOn: false
podCIDR: $POD_CIDR
podLogsDir: $NODE_DIR/pod-logs
resolvConf: ""
clusterDomain: cluster.local
localStorageCapacityIsolation: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
maxPods: 30
serializeImagePulls: false
registerNode: true
EOF
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE_DIR/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

ctr_() { ctr --address "$NODE_DIR/containerd.sock" -n k8s.io "$@"; }

# Import an image tarball into the node's containerd (the kubelet's namespace); with the
# image's reference, nothing is imported when the node already has that reference.
node_load_image() { # tarball [reference]
  [[ -S $NODE_DIR/containerd.sock ]] || die "no node running in $STATE_DIR (start one with MODELMON_NODE=1 $0 up)"
  if [[ -n ${2:-} ]] && [[ -n $(ctr_ images ls -q "name==$2") ]]; then
    log "the node already has $2"
    return 0
  fi
  ctr_ images import "$1" >&2 || die "could not import $1 into the node's containerd"
}

node_ready() {
  [[ $(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

node_up() {
  node_check || die "this machine cannot run the node (see above)"
  node_claim
  mkdir -p "$NODE_DIR"
  KUBELET_PORT=$(pick_port MODELMON_KUBELET_PORT)
  KUBELET_HEALTHZ_PORT=$(pick_port MODELMON_KUBELET_HEALTHZ_PORT)
  PROXY_HEALTHZ_PORT=$(pick_port MODELMON_PROXY_HEALTHZ_PORT)
  PROXY_METRICS_PORT=$(pick_port MODELMON_PROXY_METRICS_PORT)
  SCHEDULER_PORT=$(pick_port MODELMON_SCHEDULER_PORT)
  printf 'KUBELET_PORT=%s\nKUBELET_HEALTHZ_PORT=%s\nPROXY_HEALTHZ_PORT=%s\nPROXY_METRICS_PORT=%s\nSCHEDULER_PORT=%s\n' \
    "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$PROXY_HEALTHZ_PORT" "$PROXY_METRICS_PORT" \
    "$SCHEDULER_PORT" >>"$STATE_DIR/ports.env"
  node_write_configs
  local c=$STATE_DIR/certs

  log "starting kube-scheduler on https://127.0.0.1:$SCHEDULER_PORT"
  start kube-scheduler "$(bin_path kube-scheduler)" \
    --kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --tls-cert-file="$c/serving.crt" --tls-private-key-file="$c/serving.key" \
    --leader-elect=false --profiling=false

  log "node: bridge $NODE_BRIDGE ($NODE_IP), iptables, cgroup /$NODE_CGROUP"
  node_network_up
  node_cgroups_up

  log "starting containerd $(containerd --version | awk '{print $3}') (runc, CNI bridge)"
  # Images come from the local store only: a pod naming any other image fails at once
  # (ErrImagePull) instead of reaching for a registry, through a proxy nothing serves.
  start containerd env HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
    containerd --config "$NODE_DIR/containerd.toml" --log-level=warn
  wait_for "containerd" ctr_ version
  local img
  for img in pause busybox; do
    node_load_image "$("$HACK_DIR/images.sh" "$img")"
  done

  log "starting kubelet $KUBE_VERSION (node $NODE_NAME, $NODE_IP:$KUBELET_PORT)"
  start kubelet "$(bin_path kubelet)" \
    --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$STATE_DIR/kubelet.kubeconfig" \
    --root-dir="$NODE_DIR/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

  log "starting kube-proxy (iptables mode)"
  start kube-proxy "$(bin_path kube-proxy)" --config="$NODE_DIR/kube-proxy.yaml" --v=1

  local saved=$READY_TIMEOUT
  READY_TIMEOUT=$NODE_READY_TIMEOUT
  wait_for "node $NODE_NAME Ready" node_ready
  wait_for "kube-proxy /healthz" curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  READY_TIMEOUT=$saved
}

# Undo node_up, whatever state it reached. Never fails: what could not be undone is
# logged.
node_down() {
  node_present || return 0
  stop kubelet kube-scheduler
  if our_pid containerd >/dev/null; then
    # Pod sandboxes: containers stopped, CNI torn down, network namespaces removed.
    timeout 60 "$(bin_path crictl)" --runtime-endpoint "unix://$NODE_DIR/containerd.sock" \
      --timeout 30s rmp --all --force >/dev/null 2>&1 || log "node: crictl rmp failed; killing what is left"
  fi
  stop kube-proxy
  if [[ -f $NODE_DIR/kube-proxy.yaml ]]; then
    "$(bin_path kube-proxy)" --config="$NODE_DIR/kube-proxy.yaml" --cleanup >/dev/null 2>&1 ||
      log "node: kube-proxy --cleanup failed"
  fi
  stop containerd
  # containerd's shims outlive it; theirs is the only command line naming our socket.
  local pid cmd
  for pid in $(pgrep -f containerd-shim-runc-v2 || true); do
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    # A shim may exit by itself meanwhile: a failed kill is no error.
    if [[ $cmd == *"$NODE_DIR/containerd.sock"* ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  node_cgroups_down
  # Mounts under the state directory (container root filesystems, volumes), deepest first.
  local m
  while IFS= read -r m; do
    umount -l "$m" 2>/dev/null || log "node: could not unmount $m"
  done < <(findmnt -rn -o TARGET | grep -F "$STATE_DIR/" | sort -r)
  node_network_down
  # containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its state
  # directory; remove the directories if nothing else uses them (rmdir: only if empty).
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  # Paths the kubelet and CNI use whatever their configuration: the device-plugin
  # socket (fixed in the kubelet) and libcni's result cache (emptied as pods go).
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
    2>/dev/null || true
  if [[ -f $NODE_OWNER && $(<"$NODE_OWNER") == "$STATE_DIR" ]]; then rm -f "$NODE_OWNER"; fi
}

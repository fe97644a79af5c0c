# -*- bash -*-
#
# End-to-end test helpers for amd-host-device.
#
# Every test builds its own world (the pattern of containers/netavark's
# test/helpers.bash):
#
#   * a throwaway "host" namespace (network + private mount namespace) kept
#     alive by a `sleep infinity`, with its own sysfs and a fake PCI tree
#     bind-mounted over /sys/bus/pci/devices;
#   * a "pod" network namespace, also kept alive by a `sleep infinity`;
#   * veth "NICs" created inside the host namespace;
#   * its own state directory and log file under $WORKDIR, named by its own
#     node policy ($WORKDIR/node.json), which every plugin run is pointed at
#     with AMD_HOST_DEVICE_NODE_POLICY.
#
# The plugin runs inside the host namespace exactly as a runtime runs it
# (CNI_* environment + config on stdin). Nothing here touches the machine's
# real interfaces, so tests can run in parallel and a failure never leaks
# into the next test.

bats_require_minimum_version 1.5.0

# A hung test fails (and is torn down) instead of hanging the suite (bats >= 1.7).
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-240}

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PLUGIN=${AMD_HOST_DEVICE_BIN:-$REPO/target/debug/amd-host-device}
CNI_PLUGIN_DIR=${CNI_PLUGIN_DIR:-/usr/lib/cni}
PLUGIN_TIMEOUT=${PLUGIN_TIMEOUT:-60}

# Multus-style CNI_ARGS (static IPAM rejects unknown keys without IgnoreUnknown).
multus_cni_args() {
    local cid=$1
    printf 'IgnoreUnknown=true;K8S_POD_NAMESPACE=testns;K8S_POD_NAME=pod-%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-%s' \
        "$cid" "$cid" "$cid"
}

HOST_NS_PID=
POD_NS_PID=
EXTRA_NS_PIDS=()
WORKDIR=

###########################################################################
# setup / teardown
###########################################################################

# Skips (with the reason) when the world cannot be built on this machine.
require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        skip "needs root: the tests create network and mount namespaces, veth pairs and mount sysfs"
    fi
    if ! unshare -n -m --propagation private true 2>/dev/null; then
        skip "needs CAP_SYS_ADMIN: 'unshare -n -m' failed (running in a restricted container?)"
    fi
    local tool
    for tool in ip jq nsenter unshare timeout; do
        command -v "$tool" >/dev/null || skip "needs $tool (apt-get install iproute2 jq util-linux coreutils)"
    done
    if [[ ! -x $CNI_PLUGIN_DIR/host-device || ! -x $CNI_PLUGIN_DIR/static ]]; then
        skip "needs the reference plugins in $CNI_PLUGIN_DIR (apt-get install containernetworking-plugins)"
    fi
}

# Keeps a namespace alive: stdio must not be inherited or bats hangs.
# Usage: spawn_ns_holder VAR UNSHARE-FLAGS... ; sets VAR to the pid.
# Not run in $(...): the holder must be our child so teardown can reap it.
# Consequence: never use a bare `wait` in a test (it would wait for the
# holders forever); wait for the specific pids you started.
spawn_ns_holder() {
    local -n _pidvar=$1
    shift
    unshare "$@" sleep infinity </dev/null &>/dev/null 3>&- &
    _pidvar=$!
}

# Waits until the holder process has actually entered its new namespace.
wait_ns_ready() {
    local pid=$1 i
    for i in $(seq 1 100); do
        if [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) != "$(readlink /proc/self/ns/net)" &&
            -n $(readlink "/proc/$pid/ns/net" 2>/dev/null) ]]; then
            # unshare execs sleep after creating the namespaces
            [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && return 0
        fi
        sleep 0.02
    done
    die "namespace holder $pid never became ready"
}

basic_setup() {
    require_root

    TID=$(printf '%x%x' "$$" "${BATS_TEST_NUMBER:-0}" | tail -c 6)
    CID="ctr${TID}"
    WORKDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/amdhd-${TID}.XXXXXX")
    STATE_DIR=$WORKDIR/state
    LOG_FILE=$WORKDIR/plugin.log
    POLICY_FILE=$WORKDIR/node.json
    KUBELET_CHECKPOINT=$WORKDIR/device-plugins/kubelet_internal_checkpoint
    mkdir -p "$WORKDIR/pci" "$WORKDIR/drivers/fakenic"
    write_policy

    [[ -x $PLUGIN ]] || die "plugin binary not found or not executable: $PLUGIN (run 'cargo build' or set AMD_HOST_DEVICE_BIN)"

    # The throwaway host: own netns + private mount namespace.
    spawn_ns_holder HOST_NS_PID -n -m --propagation private
    wait_ns_ready "$HOST_NS_PID"
    run_in_host_ns ip link set lo up
    # sysfs shows the netns it was mounted in: remount so /sys/class/net is ours,
    # then hide the real PCI devices behind our fake tree.
    run_in_host_ns mount -t sysfs sysfs /sys
    run_in_host_ns mount --bind "$WORKDIR/pci" /sys/bus/pci/devices

    # The pod.
    spawn_ns_holder POD_NS_PID -n
    wait_ns_ready "$POD_NS_PID"
    POD_NETNS=/proc/$POD_NS_PID/ns/net
    run_in_pod_ns ip link set lo up
    # static IPAM must not wait for (or fail) IPv6 DAD.
    run_in_pod_ns sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
}

basic_teardown() {
    if [[ -z ${BATS_TEST_COMPLETED:-} && -n $HOST_NS_PID ]]; then
        dump_world "test failed"
    fi
    local pid
    for pid in "$POD_NS_PID" "${EXTRA_NS_PIDS[@]}" "$HOST_NS_PID"; do
        [[ -n $pid ]] || continue
        kill -9 "$pid" 2>/dev/null || true
    done
    # The holders are our children: reap them (their namespaces go with them).
    for pid in "$POD_NS_PID" "${EXTRA_NS_PIDS[@]}" "$HOST_NS_PID"; do
        [[ -n $pid ]] || continue
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORKDIR && -d $WORKDIR ]]; then
        rm -rf "$WORKDIR"
    fi
}

setup() {
    basic_setup
}

teardown() {
    basic_teardown
}

###########################################################################
# running things in the namespaces
###########################################################################

run_in_host_ns() {
    nsenter -n -m -t "$HOST_NS_PID" "$@"
}

run_in_pod_ns() {
    nsenter -n -t "$POD_NS_PID" "$@"
}

# A second pod, killed in teardown; its netns path is left in NEW_POD_NETNS.
# (Call it directly, not in $(...), so the holder stays our child.)
new_pod_ns() {
    local pid
    spawn_ns_holder pid -n
    wait_ns_ready "$pid"
    EXTRA_NS_PIDS+=("$pid")
    nsenter -n -t "$pid" ip link set lo up
    nsenter -n -t "$pid" sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    NEW_POD_NETNS=/proc/$pid/ns/net
}

# ns_exec <host|pod|/proc/PID/ns/net> CMD...
ns_exec() {
    local ns=$1
    shift
    case $ns in
    host) run_in_host_ns "$@" ;;
    pod) run_in_pod_ns "$@" ;;
    /proc/*/ns/net) nsenter --net="$ns" "$@" ;;
    *) die "ns_exec: unknown namespace '$ns'" ;;
    esac
}

###########################################################################
# building the world
###########################################################################

# make_nic <name> <pci-addr> [addr...]
#   A veth pair in the host ns: <name> is the "NIC", its peer <name>p stays in
#   the host ns, UP. Addresses get added (IPv6 with nodad), the NIC is brought
#   UP and a fake PCI entry <pci-addr>/net/<name> is created.
#   Env knobs: NIC_MTU=1400 sets the MTU before UP; NIC_DOWN=1 leaves it DOWN;
#   NIC_MAC=02:... gives the NIC that MAC (else the kernel picks a random one).
make_nic() {
    local name=$1 pci=$2
    shift 2
    (( ${#name} <= 13 )) || die "make_nic: name '$name' too long (peer name must fit 15 bytes)"
    run_in_host_ns ip link add "$name" ${NIC_MAC:+address "$NIC_MAC"} type veth peer name "${name}p" ||
        die "make_nic: cannot create veth $name"
    run_in_host_ns ip link set "${name}p" up
    if [[ -n ${NIC_MTU:-} ]]; then
        run_in_host_ns ip link set "$name" mtu "$NIC_MTU"
        run_in_host_ns ip link set "${name}p" mtu "$NIC_MTU"
    fi
    if [[ -z ${NIC_DOWN:-} ]]; then
        run_in_host_ns ip link set "$name" up
    fi
    local a
    for a in "$@"; do
        if [[ $a == *:* ]]; then
            run_in_host_ns ip -6 addr add "$a" dev "$name" nodad || die "make_nic: cannot add $a"
        else
            run_in_host_ns ip addr add "$a" dev "$name" || die "make_nic: cannot add $a"
        fi
    done
    if [[ -n $pci ]]; then
        add_fake_pci "$pci" "$name"
    fi
}

# add_fake_pci <pci-addr> <ifname>: <pci>/net/<ifname>/ plus a driver symlink and
# the class of an Ethernet controller (0x020000), as sysfs shows a NIC.
add_fake_pci() {
    local pci=$1 ifname=$2
    mkdir -p "$WORKDIR/pci/$pci/net/$ifname"
    [[ -e $WORKDIR/pci/$pci/driver ]] || ln -s "$WORKDIR/drivers/fakenic" "$WORKDIR/pci/$pci/driver"
    [[ -e $WORKDIR/pci/$pci/class ]] || echo 0x020000 >"$WORKDIR/pci/$pci/class"
}

# add_route <dst> <gw> <dev> (in the host ns)
add_route() {
    run_in_host_ns ip route add "$1" via "$2" dev "$3" || die "add_route: cannot add $1 via $2 dev $3"
}

# The standard NIC most tests use: $NIC at $PCI with $NIC_V4 + $NIC_V6.
standard_nic() {
    NIC=n${TID}
    PCI=0000:5e:00.1
    NIC_V4=10.77.0.2/24
    NIC_V6=2001:db8:77::2/64
    make_nic "$NIC" "$PCI" "$NIC_V4" "$NIC_V6"
    NIC_MAC_ADDR=$(nic_mac "$NIC")
}

nic_mac() {
    run_in_host_ns ip -j link show dev "$1" | jq -r '.[0].address'
}

# rich_nic: the standard NIC with everything a restore has to bring back (MTU
# 1400, IPv4 + IPv6 with nodad, a route 10.99.0.0/16 via 10.77.0.1), and CONF,
# the Multus-style config that selects it. assert_nic_restored checks it all.
rich_nic() {
    NIC_MTU=1400 standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    CONF=$(multus_config)
}

###########################################################################
# the node policy
###########################################################################

# write_policy [extra-json]: (re)writes the test's node policy $POLICY_FILE:
#   {"stateDir":$STATE_DIR,"logFile":$LOG_FILE,"kubeletCheckpoint":$KUBELET_CHECKPOINT}
#   + extra; a key set to null in extra is left out (the plugin's default then).
#   The checkpoint does not exist unless a test writes it, so a machine that is
#   a kubelet node itself does not change the suite. Root's, mode 0644, as the
#   plugin requires. basic_setup writes the default one; a test that needs
#   another node calls it again before the plugin runs.
write_policy() {
    local extra=${1:-"{}"}
    jq -n --arg state "$STATE_DIR" --arg log "$LOG_FILE" --arg kubelet "$KUBELET_CHECKPOINT" \
        --argjson extra "$extra" \
        '{comment: "the node policy of one bats test", stateDir: $state, logFile: $log,
          kubeletCheckpoint: $kubelet} + $extra
         | with_entries(select(.value != null))' >"$POLICY_FILE" ||
        die "write_policy: bad extra json: $extra"
    chown 0:0 "$POLICY_FILE"
    chmod 0644 "$POLICY_FILE"
}

# allow_nad_keys <key>...: a policy whose nadMayOverride is the plugin's default
# (logLevel, podInterfaceName) plus these keys; the rest as write_policy.
allow_nad_keys() {
    write_policy "$(jq -cn '{nadMayOverride: (["logLevel", "podInterfaceName"] + $ARGS.positional)}' --args "$@")"
}

# The environment entry that points a plugin run at the test's policy
# (PLUGIN_NODE_POLICY=<path> points it elsewhere, e.g. at a missing file; set
# but empty, the variable is passed empty).
node_policy_env() {
    echo "AMD_HOST_DEVICE_NODE_POLICY=${PLUGIN_NODE_POLICY-$POLICY_FILE}"
}

# private_var_lib: a tmpfs over /var/lib in the host mount namespace, for the
# tests of the plugin's built-in defaults (state in /var/lib/cni/amd-host-device,
# kubelet's checkpoint under /var/lib/kubelet): they must never reach the
# machine's own /var/lib. Dies with the namespace.
private_var_lib() {
    run_in_host_ns mount -t tmpfs -o mode=0755 amdhd-var-lib /var/lib ||
        die "cannot mount a tmpfs over /var/lib in the host ns"
}

###########################################################################
# kvp-ipoib-ipam and its pool files, written as hv_kvp_daemon writes them
###########################################################################

KVP_IPAM=${KVP_IPAM_BIN:-$REPO/target/debug/kvp-ipoib-ipam}

# kvp_setup: $POOL, where the test's KVP pool goes (not written yet), and
# $KVP_CNI_DIR, a plugin directory where host-device finds kvp-ipoib-ipam next
# to the reference plugins (CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin ...).
kvp_setup() {
    [[ -x $KVP_IPAM ]] || die "kvp-ipoib-ipam not built: $KVP_IPAM (run 'cargo build')"
    POOL=$WORKDIR/kvp_pool_0
    KVP_CNI_DIR=$WORKDIR/cni-bin
    mkdir -p "$KVP_CNI_DIR"
    ln -s "$CNI_PLUGIN_DIR"/* "$KVP_CNI_DIR/"
    ln -s "$KVP_IPAM" "$KVP_CNI_DIR/kvp-ipoib-ipam"
}

# kvp_record <file> <key> <value>: appends a 512-byte NUL-padded key and a
# 2048-byte NUL-padded value.
kvp_record() {
    local file=$1 key=$2 value=$3 rec
    rec=$(mktemp "$WORKDIR/rec.XXXXXX")
    printf '%s' "$key" >"$rec"
    truncate -s 512 "$rec"
    printf '%s' "$value" >>"$rec"
    truncate -s 2560 "$rec"
    cat "$rec" >>"$file"
    rm -f "$rec"
}

# make_pool <file> <IPoIB_Data value>: the IPoIB record between unrelated ones.
make_pool() {
    local file=$1 value=$2
    : >"$file"
    kvp_record "$file" HostName hv-host-17
    kvp_record "$file" PhysicalHostNameFullyQualified hv-host-17.example.net
    kvp_record "$file" IPoIB_Data "$value"
    kvp_record "$file" VirtualMachineName vm-0
}

###########################################################################
# configs
###########################################################################

# config_for <name> [extra-json]
#   {"cniVersion":"0.3.1","name":<name>,"type":"amd-host-device",
#    "logLevel":"debug"} + extra (extra may override cniVersion). The state
#   dir and the log file are the node policy's (write_policy), not the config's.
config_for() {
    local name=$1 extra=${2:-"{}"}
    jq -cn --arg name "$name" --argjson extra "$extra" \
        '{cniVersion: "0.3.1", name: $name, type: "amd-host-device", logLevel: "debug"} + $extra' ||
        die "config_for: bad extra json: $extra"
}

# multus_config [pci]: the config as Multus delegates it, the PCI address
# ($PCI by default) injected as both deviceID and pciBusID; network net-$TID.
multus_config() {
    local pci=${1:-$PCI}
    config_for "net-$TID" "$(jq -cn --arg pci "$pci" '{deviceID: $pci, pciBusID: $pci}')"
}

# The state file of an attachment.
state_file() {
    echo "$STATE_DIR/$1-$2.json"
}

# hand_back_to_host <pod-name> <new-name>: the kernel's hand-back of a physical
# NIC when the pod's netns dies, simulated for a veth (which would die with the
# netns): DOWN, no addresses, renamed, on the host. A link cannot be renamed to
# one of its own alternative names, so a <new-name> the NIC answers to
# (CNI_IFNAME in the pod) is taken off it first: the kernel hands the NIC back
# under one name.
hand_back_to_host() {
    local pod_name=$1 new_name=$2
    # A name the link already answers to (its alternative name) cannot be its new name.
    run_in_pod_ns ip link property del dev "$pod_name" altname "$new_name" 2>/dev/null || true
    run_in_pod_ns ip link set "$pod_name" down
    if [[ $new_name != "$pod_name" ]] && link_altnames pod "$pod_name" | grep -qxF -- "$new_name"; then
        run_in_pod_ns ip link property del dev "$pod_name" altname "$new_name"
    fi
    run_in_pod_ns ip link set "$pod_name" name "$new_name"
    run_in_pod_ns ip link set "$new_name" netns "$HOST_NS_PID"
    run_in_host_ns ip addr flush dev "$new_name"
}

# vendor_attach <nic> <pod-side name> <netns> <addr>...: what the vendor
# plugin's ADD left behind: host-device moved <nic> into <netns> (pod or a
# netns path), renamed it <pod-side name> and set its alias to the host name;
# the pod got the addresses (no flags: the vendor used static IPAM) and the
# link is UP.
vendor_attach() {
    local nic=$1 pod_name=$2 ns=$3 pid a
    shift 3
    case $ns in
    pod) pid=$POD_NS_PID ;;
    *) pid=${ns#/proc/} && pid=${pid%%/*} ;;
    esac
    run_in_host_ns ip link set "$nic" netns "$pid" || die "vendor_attach: cannot move $nic"
    if [[ $pod_name != "$nic" ]]; then
        ns_exec "$ns" ip link set "$nic" name "$pod_name"
    fi
    ns_exec "$ns" ip link set dev "$pod_name" alias "$nic"
    for a in "$@"; do
        ns_exec "$ns" ip addr add "$a" dev "$pod_name" || die "vendor_attach: cannot add $a"
    done
    ns_exec "$ns" ip link set "$pod_name" up
}

# vendor_entry <host name> <state> [addr...]: one value of the vendor's
# ip-interface-mappings.json (no addresses: null; an empty state is left out,
# as Go's omitempty does).
vendor_entry() {
    local name=$1 state=$2
    shift 2
    jq -cn --arg name "$name" --arg state "$state" '
        {hostInterfaceName: $name,
         hostInterfaceIPs: (if $ARGS.positional == [] then null else $ARGS.positional end)}
        + (if $state == "" then {} else {state: $state} end)' --args "$@"
}

# write_mappings <json-object>: the vendor's file in $STATE_DIR, as the vendor
# writes it (Go's MarshalIndent, two spaces, mode 0644).
write_mappings() {
    local file=$STATE_DIR/ip-interface-mappings.json
    mkdir -p -m 0700 "$STATE_DIR"
    jq --indent 2 . <<<"$1" >"$file" || die "write_mappings: bad json: $1"
    chmod 0644 "$file"
}

# kubelet_allocates <pod-uid>: kubelet's device checkpoint ($KUBELET_CHECKPOINT)
# gives $PCI (amd.com/nic) to that pod, and nothing else to anyone.
kubelet_allocates() {
    mkdir -p "$(dirname "$KUBELET_CHECKPOINT")"
    jq -n --arg uid "$1" --arg pci "$PCI" \
        '{Data: {RegisteredDevices: {"amd.com/nic": [$pci]},
                 PodDeviceEntries: [{PodUID: $uid, ContainerName: "c", ResourceName: "amd.com/nic",
                                     DeviceIDs: {"0": [$pci]}, AllocResp: "CgA="}]},
          Checksum: 1}' >"$KUBELET_CHECKPOINT"
}

# Kills the pod's netns holder and waits until its netns is gone.
kill_pod_netns() {
    kill -9 "$POD_NS_PID"
    wait "$POD_NS_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        [[ -e $POD_NETNS ]] || return 0
        sleep 0.02
    done
    die "pod netns $POD_NETNS did not go away"
}

###########################################################################
# running the plugin
###########################################################################

# run_plugin <CMD> <containerid> <netns> <ifname> <config-json>
#   Runs the plugin in the host ns with a runtime's environment, bats `run`
#   style with stdout and stderr separate: sets $status, $output (stdout),
#   $stderr. The literal value <unset> leaves that variable out of the
#   environment. CNI_ARGS may be overridden by setting PLUGIN_CNI_ARGS.
#   Does not check the exit status: use assert_plugin_ok / assert_cni_error.
run_plugin() {
    local cmd=$1 cid=$2 netns=$3 ifname=$4 config=$5
    # A runtime's PATH, not the test runner's.
    local -a envs
    cni_env envs "$cmd" "$cid" "$netns" "$ifname"
    _run_plugin_env "$config" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}"
}

# cni_env <array-name> <CMD> <cid> <netns> <ifname>: fills the array with the
#   CNI_* variables a runtime passes (every run of the plugin in the suite gets
#   them from here), and the node policy (node_policy_env), as a node's runtime
#   environment carries it. <unset> leaves that variable out (also as
#   PLUGIN_NODE_POLICY: then the plugin reads /etc/amd-host-device/node.json,
#   so only with an /etc of the test's own, see 420-node-policy.bats). CNI_PATH is
#   $PLUGIN_CNI_PATH if set, else $CNI_PLUGIN_DIR; CNI_ARGS is $PLUGIN_CNI_ARGS
#   if set (even empty), else multus_cni_args.
cni_env() {
    local -n _cni_env_out=$1
    local cmd=$2 cid=$3 netns=$4 ifname=$5
    _cni_env_out=(CNI_PATH="${PLUGIN_CNI_PATH:-$CNI_PLUGIN_DIR}")
    [[ ${PLUGIN_NODE_POLICY-} == "<unset>" ]] || _cni_env_out+=("$(node_policy_env)")
    [[ $cmd == "<unset>" ]] || _cni_env_out+=(CNI_COMMAND="$cmd")
    [[ $cid == "<unset>" ]] || _cni_env_out+=(CNI_CONTAINERID="$cid")
    [[ $netns == "<unset>" ]] || _cni_env_out+=(CNI_NETNS="$netns")
    [[ $ifname == "<unset>" ]] || _cni_env_out+=(CNI_IFNAME="$ifname")
    _cni_env_out+=(CNI_ARGS="${PLUGIN_CNI_ARGS-$(multus_cni_args "$cid")}")
}

# plugin_bg <outfile> <CMD> <cid> <netns> <ifname> <config> [VAR=value...]: the
#   plugin in the background (in the host ns, the runtime's environment of
#   cni_env plus the extra variables given), its stdout, stderr and exit status
#   in <outfile>.stdout, .stderr and .status. wait_bg waits for every run
#   started so; assert_bg_ok checks one; between bg_hold and bg_release they
#   start together.
BG_PIDS=()
plugin_bg() {
    local out=$1 cmd=$2 cid=$3 netns=$4 ifname=$5 config=$6
    shift 6
    local -a envs
    cni_env envs "$cmd" "$cid" "$netns" "$ifname"
    printf '%s' "$config" >"$out.conf"
    rm -f "$out.status"
    (
        set +e # bats runs with errexit; a failing plugin must still record its status
        if [[ -n ${BG_START:-} ]]; then
            exec {BG_START_FD}>&-
            flock -s -w 30 "$BG_START" true
        fi
        timeout 60 nsenter -n -m -t "$HOST_NS_PID" env -i PATH="$PATH" "${envs[@]}" "$@" \
            "$PLUGIN" <"$out.conf" >"$out.stdout" 2>"$out.stderr"
        echo $? >"$out.status"
    ) 3>&- &
    BG_PIDS+=($!)
}

# bg_hold: the plugin_bg runs started from now on wait at a start line (a lock
# held here) until bg_release lets them all go at once, so they really run at
# the same moment instead of one spawn after the other.
bg_hold() {
    BG_START=$WORKDIR/bg-start
    : >"$BG_START"
    exec {BG_START_FD}>>"$BG_START"
    flock -x "$BG_START_FD"
}

bg_release() {
    flock -u "$BG_START_FD"
    exec {BG_START_FD}>&-
    BG_START=
}

# Waits for the plugin_bg runs only (a bare `wait` would also wait for bats' own helpers).
wait_bg() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" || true
    done
    BG_PIDS=()
}

# assert_bg_ok <outfile>: exited 0 (stdout and stderr shown on failure)
assert_bg_ok() {
    [[ $(cat "$1.status" 2>/dev/null) == 0 ]] ||
        die "$1 exited $(cat "$1.status" 2>/dev/null): stdout $(cat "$1.stdout") stderr $(cat "$1.stderr")"
}

# wait_for_file <path> [seconds, default 20]: until <path> exists (a paused run's
# <point>.reached), else the test fails.
wait_for_file() {
    local path=$1 tries=$((${2:-20} * 50))
    while ((tries-- > 0)); do
        [[ -e $path ]] && return 0
        sleep 0.02
    done
    die "$path did not appear"
}

# run_bare_plugin <binary> <CMD> <cid> <netns> <ifname> <config-json>: same
# environment, for the reference plugins (comparison tests).
run_bare_plugin() {
    local bin=$1
    shift
    PLUGIN="$bin" run_plugin "$@"
}

# run_plugin_env <extra-env> <CMD> <cid> <netns> <ifname> <config>: run_plugin
# with extra environment (e.g. AMD_HOST_DEVICE_TEST_FAULT=<point>, words split on
# spaces) and without the timeout wrapper, whose exit status would hide a
# SIGKILL (both are 137).
run_plugin_env() {
    local extra=$1 cmd=$2 cid=$3 netns=$4 ifname=$5 config=$6
    local -a envs
    cni_env envs "$cmd" "$cid" "$netns" "$ifname"
    printf '%s' "$config" >"$WORKDIR/config-env.json"
    # shellcheck disable=SC2086
    run --separate-stderr nsenter -n -m -t "$HOST_NS_PID" env -i PATH="$PATH" "${envs[@]}" $extra \
        "$PLUGIN" <"$WORKDIR/config-env.json" 3>&-
    echo "# run_plugin_env $extra $cmd: status $status stdout: $output stderr: $stderr"
}

# add_del_ok <config>: ADD $CID into the pod as net1, then DEL it; both succeed.
add_del_ok() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$1"
    assert_plugin_ok
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$1"
    assert_plugin_ok_silent
}

# The plumbing: stdin from a file (printf, so empty means empty), env -i so
# nothing leaks from the caller, a timeout so a hang is a failure, fd 3
# closed so a stray child cannot hang bats.
_run_plugin_env() {
    local config=$1
    shift
    local n=$((${PLUGIN_RUNS:-0} + 1))
    PLUGIN_RUNS=$n
    LAST_CONFIG_FILE=$WORKDIR/config-$n.json
    printf '%s' "$config" >"$LAST_CONFIG_FILE"
    LAST_PLUGIN_CMD="$(printf '%q ' env -i "$@" "$PLUGIN") < $LAST_CONFIG_FILE"
    run --separate-stderr timeout --kill-after=5 "$PLUGIN_TIMEOUT" \
        nsenter -n -m -t "$HOST_NS_PID" env -i "$@" "$PLUGIN" <"$LAST_CONFIG_FILE" 3>&-
    # Shown by bats only when the test fails.
    echo "# run #$n: $LAST_PLUGIN_CMD"
    echo "#   config: $config"
    echo "#   exit status: $status"
    echo "#   stdout: $output"
    echo "#   stderr: $stderr"
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        die "plugin timed out after ${PLUGIN_TIMEOUT}s"
    fi
}

# Dumps everything useful for a post-mortem.
dump_world() {
    echo "#################### $* ####################"
    if [[ -n ${LAST_PLUGIN_CMD:-} ]]; then
        echo "# last plugin command: $LAST_PLUGIN_CMD"
        echo "# last config: $(cat "$LAST_CONFIG_FILE" 2>/dev/null)"
        echo "# last exit status: ${status:-}"
        echo "# last stdout: ${output:-}"
        echo "# last stderr: ${stderr:-}"
    fi
    echo "# ---- host ns: ip addr"
    run_in_host_ns ip addr 2>&1 | sed 's/^/#   /'
    echo "# ---- host ns: ip route / ip -6 route"
    run_in_host_ns ip route 2>&1 | sed 's/^/#   /'
    run_in_host_ns ip -6 route 2>&1 | sed 's/^/#   /'
    if [[ -n ${POD_NS_PID:-} ]] && kill -0 "$POD_NS_PID" 2>/dev/null; then
        echo "# ---- pod ns: ip addr"
        run_in_pod_ns ip addr 2>&1 | sed 's/^/#   /'
        echo "# ---- pod ns: ip route / ip -6 route"
        run_in_pod_ns ip route 2>&1 | sed 's/^/#   /'
        run_in_pod_ns ip -6 route 2>&1 | sed 's/^/#   /'
    fi
    echo "# ---- node policy $POLICY_FILE ($(stat -c '%U %a' "$POLICY_FILE" 2>&1))"
    sed 's/^/#   /' "$POLICY_FILE" 2>/dev/null
    echo "# ---- state dir $STATE_DIR"
    local f
    while IFS= read -r f; do
        echo "#   $f: $(cat "$f")"
    done < <(find "$STATE_DIR" -type f 2>/dev/null | sort)
    if [[ -s $LOG_FILE ]]; then
        echo "# ---- plugin log $LOG_FILE"
        sed 's/^/#   /' "$LOG_FILE"
    fi
}

###########################################################################
# assertions
###########################################################################

die() {
    echo "#/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" >&2
    echo "#| FAIL: $*" >&2
    echo "#\\^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^" >&2
    false
}

# stdout of the last run_plugin is exactly one JSON object.
assert_stdout_is_json() {
    [[ -n $output ]] || die "stdout is empty; expected a JSON object"
    local count
    count=$(jq -s 'length' <<<"$output" 2>/dev/null) || die "stdout is not JSON: $output"
    [[ $count == 1 ]] || die "stdout holds $count JSON values, expected exactly one: $output"
    jq -e 'type == "object"' <<<"$output" >/dev/null || die "stdout is not a JSON object: $output"
}

# Success with a JSON result (ADD) on stdout.
assert_plugin_ok() {
    [[ $status -eq 0 ]] || die "plugin exited $status, expected 0 (stdout: $output; stderr: $stderr)"
    assert_stdout_is_json
    jq -e 'has("code") | not' <<<"$output" >/dev/null || die "exit 0 but stdout is a CNI error: $output"
}

# Success with nothing on stdout (DEL).
assert_plugin_ok_silent() {
    [[ $status -eq 0 ]] || die "plugin exited $status, expected 0 (stdout: $output; stderr: $stderr)"
    [[ -z $output ]] || die "expected no stdout, got: $output"
}

# assert_cni_error <code>: non-zero exit, stdout is a CNI error with that code.
assert_cni_error() {
    local code=$1
    [[ $status -ne 0 ]] || die "plugin exited 0, expected a failure with CNI error code $code (stdout: $output)"
    assert_stdout_is_json
    jq -e '(.code | type) == "number" and (.msg | type) == "string" and (.msg | length) > 0
           and (.cniVersion | type) == "string"' <<<"$output" >/dev/null ||
        die "stdout is not a CNI error {cniVersion, code, msg}: $output"
    local got
    got=$(jq -r '.code' <<<"$output")
    [[ $got == "$code" ]] || die "CNI error code is $got, expected $code: $output"
}

# assert_msg_contains <text>: the CNI error message names what was wrong.
assert_msg_contains() {
    jq -e --arg m "$1" '.msg | contains($m)' <<<"$output" >/dev/null ||
        die "error message does not contain '$1': $output"
}

# Global-scope addresses of <ifname> in <ns> as sorted "addr/prefix" lines.
link_addrs() {
    ns_exec "$1" ip -j addr show dev "$2" |
        jq -r '.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"' | sort
}

# assert_addrs <ns> <ifname> <addr/prefix>...: exactly these global addresses.
assert_addrs() {
    local ns=$1 ifname=$2
    shift 2
    local json want got
    json=$(ns_exec "$ns" ip -j addr show dev "$ifname" 2>&1) ||
        die "assert_addrs: no link '$ifname' in $ns ns: $json"
    got=$(jq -r '.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"' <<<"$json" | sort)
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
    [[ $got == "$want" ]] ||
        die "addresses of $ifname in $ns ns: expected [$(echo $want)], got [$(echo $got)]"
}

# assert_addr_flag <ns> <ifname> <addr> <flag>: e.g. nodad
assert_addr_flag() {
    local ns=$1 ifname=$2 addr=${3%/*} flag=$4
    ns_exec "$ns" ip -j addr show dev "$ifname" |
        jq -e --arg a "$addr" --arg f "$flag" '.[0].addr_info[] | select(.local == $a) | .[$f] == true' >/dev/null ||
        die "address $addr on $ifname in $ns ns lacks flag '$flag': $(ns_exec "$ns" ip addr show dev "$ifname")"
}

# assert_link_up <ns> <ifname>: administratively UP
assert_link_up() {
    local json
    json=$(ns_exec "$1" ip -j link show dev "$2" 2>&1) || die "no link '$2' in $1 ns: $json"
    jq -e '.[0].flags | index("UP")' <<<"$json" >/dev/null || die "link $2 in $1 ns is not UP: $json"
}

assert_link_down() {
    local json
    json=$(ns_exec "$1" ip -j link show dev "$2" 2>&1) || die "no link '$2' in $1 ns: $json"
    jq -e '.[0].flags | index("UP") | not' <<<"$json" >/dev/null || die "link $2 in $1 ns is UP, expected DOWN: $json"
}

assert_link_exists() {
    ns_exec "$1" ip link show dev "$2" &>/dev/null ||
        die "no link '$2' in $1 ns: $(ns_exec "$1" ip -br link 2>&1)"
}

assert_no_link() {
    if ns_exec "$1" ip link show dev "$2" &>/dev/null; then
        die "link '$2' unexpectedly present in $1 ns: $(ns_exec "$1" ip -br link 2>&1)"
    fi
}

# assert_altname <ns> <ifname> <altname>: <altname> is an alternative name of <ifname>
# (the same link), not a link of its own.
assert_altname() {
    local names
    names=$(ns_exec "$1" ip -j link show dev "$2" | jq -c '.[0].altnames // []')
    jq -e --arg a "$3" 'index($a) != null' <<<"$names" >/dev/null ||
        die "$2 in $1 ns does not answer to $3 (altnames: $names)"
    [[ $(ns_exec "$1" ip -j link show dev "$3" | jq -r '.[0].ifname') == "$2" ]] ||
        die "$3 in $1 ns is not $2: $(ns_exec "$1" ip -br link 2>&1)"
}

# assert_no_altnames <ns> <ifname>: the link has no alternative name left.
assert_no_altnames() {
    local names
    names=$(ns_exec "$1" ip -j link show dev "$2" | jq -c '.[0].altnames // []')
    [[ $names == "[]" ]] || die "$2 in $1 ns still has alternative names $names"
}

# assert_mtu <ns> <ifname> <mtu>
assert_mtu() {
    local got
    got=$(ns_exec "$1" ip -j link show dev "$2" | jq -r '.[0].mtu')
    [[ $got == "$3" ]] || die "MTU of $2 in $1 ns is $got, expected $3"
}

# assert_mac <ns> <ifname> <mac>
assert_mac() {
    local got
    got=$(ns_exec "$1" ip -j link show dev "$2" | jq -r '.[0].address')
    [[ $got == "$3" ]] || die "MAC of $2 in $1 ns is $got, expected $3"
}

# assert_route <ns> <dst> <gw> <dev>
assert_route() {
    local ns=$1 dst=$2 gw=$3 dev=$4 fam=-4 json
    [[ $dst == *:* ]] && fam=-6
    json=$(ns_exec "$ns" ip -j "$fam" route show "$dst" 2>&1)
    jq -e --arg dst "$dst" --arg gw "$gw" --arg dev "$dev" \
        'any(.[]; .dst == $dst and .gateway == $gw and .dev == $dev)' <<<"$json" >/dev/null ||
        die "no route $dst via $gw dev $dev in $ns ns; routes: $(ns_exec "$ns" ip "$fam" route 2>&1 | tr '\n' ';')"
}

assert_no_route() {
    local ns=$1 dst=$2 fam=-4 json
    [[ $dst == *:* ]] && fam=-6
    json=$(ns_exec "$ns" ip -j "$fam" route show "$dst" 2>&1)
    jq -e 'length == 0' <<<"$json" >/dev/null || die "unexpected route to $dst in $ns ns: $json"
}

# assert_json <jq-filter> <expected> [json]: jq -r of $output (or given json)
assert_json() {
    local filter=$1 want=$2 json=${3-$output} got
    got=$(jq -r "$filter" <<<"$json" 2>&1) || die "jq '$filter' failed on: $json"
    [[ $got == "$want" ]] || die "jq '$filter': expected '$want', got '$got' in: $json"
}

# Sorted "addr/prefix" list of a result's ips.
result_addrs() {
    jq -r '.ips[].address' <<<"${1-$output}" | sort
}

# assert_result_addrs <addr>...: the result's ips are exactly these.
assert_result_addrs() {
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(result_addrs)
    [[ $got == "$want" ]] || die "result ips: expected [$(echo $want)], got [$(echo $got)]: $output"
}

# assert_nic_home [mtu]: $NIC (standard_nic) is on the host as it was made:
# under its name, UP, with $NIC_V4 and $NIC_V6 (nodad kept), the MTU (default
# 1500) and its MAC.
assert_nic_home() {
    local mtu=${1:-1500}
    assert_link_exists host "$NIC"
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_addr_flag host "$NIC" "$NIC_V6" nodad
    assert_mtu host "$NIC" "$mtu"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
}

# assert_nic_restored: $NIC is on the host exactly as rich_nic made it (with
# its route), not in the pod (checked while the pod's netns lives), and the
# attachment $CID/net1 has no state file left.
assert_nic_restored() {
    assert_nic_home 1400
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    if kill -0 "$POD_NS_PID" 2>/dev/null; then
        assert_no_link pod "$NIC"
    fi
    [[ ! -e $(state_file "$CID" net1) ]] || die "state file still there: $(cat "$(state_file "$CID" net1)")"
}

# assert_refused_untouched <code> <message part>: the last run was refused with
# that CNI error, and nothing happened: $NIC (standard_nic) is home with its
# addresses and not in the pod, and the state dir was not even created.
assert_refused_untouched() {
    assert_cni_error "$1"
    assert_msg_contains "$2"
    assert_nic_home
    assert_no_link pod "$NIC"
    [[ ! -e $STATE_DIR ]] || die "a refused ADD created the state dir: $(ls -la "$STATE_DIR")"
}

# assert_no_state_left [when]: no attachment's state file and no claim is left
# in $STATE_DIR (a state dir never created counts as empty).
assert_no_state_left() {
    [[ -d $STATE_DIR ]] || return 0
    local left
    left=$(find "$STATE_DIR" -maxdepth 1 \( -name '*.json' -o -name 'claim-*' \) -printf '%f ')
    [[ -z $left ]] || die "state left in $STATE_DIR${1:+ $1}: $left"
}

# assert_no_alias <ns> <ifname>: the link carries no ifalias (host-device's
# mark of a moved device).
assert_no_alias() {
    assert_json '.[0].ifalias // "none"' none "$(ns_exec "$1" ip -j -d link show dev "$2")"
}

# The start of every log line: "2026-12-01T13:08:11.123Z info ".
LOG_LINE_START='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|info|debug) '

# assert_one_event_per_line <what> <text> [injected]: every line of <text> (a
# log, or a run's stderr) starts with a timestamp and a level, and none starts
# with <injected>, the text a tenant put after a newline.
assert_one_event_per_line() {
    local what=$1 text=$2 injected=${3:-} line
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        [[ $line =~ $LOG_LINE_START ]] ||
            { die "$what: a line does not start with a timestamp and a level: '$line'" || return; }
        [[ -z $injected || $line != "$injected"* ]] || { die "$what: a forged line: '$line'" || return; }
    done <<<"$text"
}

# known_plugin_bug <what>: a test that shows a bug of the plugin found by the
# suite and not fixed yet. It skips, saying so, unless AMD_HOST_DEVICE_KNOWN_BUGS=1,
# which runs it (and it fails until the plugin is fixed; then drop this line).
known_plugin_bug() {
    [[ ${AMD_HOST_DEVICE_KNOWN_BUGS:-} == 1 ]] ||
        skip "known plugin bug (AMD_HOST_DEVICE_KNOWN_BUGS=1 runs it): $1"
}

###########################################################################
# names in the pod, lost state, the fake PCI tree, the admin commands
###########################################################################

# link_altnames <ns> <ifname>: the link's alternative names, one a line, sorted.
link_altnames() {
    ns_exec "$1" ip -j -d link show dev "$2" | jq -r '.[0].altnames // [] | .[]' | sort
}

# assert_altnames <ns> <ifname> [altname...]: the link has exactly these
# alternative names (none given: none at all).
assert_altnames() {
    local ns=$1 ifname=$2 want got
    shift 2
    ns_exec "$ns" ip link show dev "$ifname" &>/dev/null || die "assert_altnames: no link '$ifname' in $ns ns"
    got=$(link_altnames "$ns" "$ifname")
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
    [[ $got == "$want" ]] ||
        die "alternative names of $ifname in $ns ns: expected [$(echo $want)], got [$(echo $got)]"
}

# assert_answers_to <ns> <name> <kernel-name>: a lookup of <name> in <ns> (as
# `ip link show <name>`, host-device or tuning do it) finds the link whose
# kernel name is <kernel-name>.
assert_answers_to() {
    local ns=$1 name=$2 want=$3 got
    got=$(ns_exec "$ns" ip -j link show dev "$name" 2>/dev/null | jq -r '.[0].ifname')
    [[ $got == "$want" ]] ||
        die "'$name' in $ns ns is not $want (found: ${got:-nothing}): $(ns_exec "$ns" ip -br link 2>&1)"
}

# wipe_state: everything in the state directory goes (state files, claims,
# locks, spares), as when /var/lib/cni is lost or restored from an old backup.
wipe_state() {
    [[ -d $STATE_DIR ]] || die "wipe_state: no state dir $STATE_DIR"
    find "$STATE_DIR" -mindepth 1 -delete
    [[ -z $(ls -A "$STATE_DIR") ]] || die "wipe_state: $STATE_DIR not empty: $(ls -A "$STATE_DIR")"
}

# rename_fake_netdev <pci> <old> <new>: the fake PCI tree follows a rename of
# the function's netdev, as sysfs does (<pci>/net/<old> becomes <pci>/net/<new>).
rename_fake_netdev() {
    local dir=$WORKDIR/pci/$1/net
    [[ -d $dir/$2 ]] || die "rename_fake_netdev: no $dir/$2"
    mv "$dir/$2" "$dir/$3"
}

# run_admin ARGS...: the plugin binary as a person runs it (no CNI_COMMAND), in
# the host ns under the test's node policy (whose stateDir is the default of
# --state-dir), bats `run` style ($status, $output = stdout, $stderr).
run_admin() {
    run --separate-stderr timeout --kill-after=5 "$PLUGIN_TIMEOUT" \
        nsenter -n -m -t "$HOST_NS_PID" \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$(node_policy_env)" "$PLUGIN" "$@" 3>&-
    echo "# admin: amd-host-device $*"
    echo "#   exit status: $status"
    echo "#   stdout: $output"
    echo "#   stderr: $stderr"
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        die "admin command timed out after ${PLUGIN_TIMEOUT}s"
    fi
}

assert_admin_ok() {
    [[ $status -eq 0 ]] || die "exit status $status, expected 0 (stdout: $output; stderr: $stderr)"
}

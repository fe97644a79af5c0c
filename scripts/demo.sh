#!/usr/bin/env bash
#
# Demo of amd-host-device, on any Debian machine, without touching its real
# network: a throwaway "host" namespace with a veth "NIC" enp94s0f1 (fake PCI
# function 0000:5e:00.1), a pod namespace, then ADD and DEL exactly as
# Multus calls the plugin.
#
# Usage: sudo scripts/demo.sh
# Env:   AMD_HOST_DEVICE_BIN  use this binary instead of building target/release
#        NO_APT=1             never call apt-get
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

NIC=enp94s0f1
PCI=0000:5e:00.1
V4=192.0.2.10/24
V6=2001:db8:5e::10/64
ROUTE_DST=198.51.100.0/24
ROUTE_GW=192.0.2.1
MTU=1400
CNI_IFNAME_POD=net1
CONTAINER_ID=demo0123456789abcdef

if [[ -t 1 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
section() { printf '\n%s========== %s ==========%s\n' "$BOLD" "$*" "$PLAIN"; }
fail() {
    echo "demo.sh: FAILED: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root (it creates network/mount namespaces): sudo $0"

# ---------------------------------------------------------------- packages
# shellcheck source=scripts/packages.sh
source "$REPO/scripts/packages.sh"
ensure_packages containernetworking-plugins iproute2 jq util-linux
CNI_BIN_DIR=/usr/lib/cni
[[ -x $CNI_BIN_DIR/host-device ]] || fail "$CNI_BIN_DIR/host-device not found (containernetworking-plugins)"

# ---------------------------------------------------------------- build
if [[ -n ${AMD_HOST_DEVICE_BIN:-} ]]; then
    PLUGIN=$AMD_HOST_DEVICE_BIN
else
    if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        PATH=${HOME:-/root}/.cargo/bin:$PATH
    fi
    command -v cargo >/dev/null || fail "cargo not found (install Rust: https://rustup.rs)"
    section "cargo build --release"
    cargo build --release
    PLUGIN=$REPO/target/release/amd-host-device
fi
[[ -x $PLUGIN ]] || fail "plugin binary $PLUGIN missing"

# ---------------------------------------------------------------- the world
WORK=$(mktemp -d /tmp/amd-host-device-demo.XXXXXX)
HOST_PID=
POD_PID=
cleanup() {
    local rc=$?
    for pid in $POD_PID $HOST_PID; do
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in $POD_PID $HOST_PID; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    if [[ $rc -eq 0 ]]; then
        echo "demo.sh: done, namespaces and $WORK removed"
    else
        echo "demo.sh: FAILED (exit $rc); namespaces and $WORK removed" >&2
    fi
}
trap cleanup EXIT

section "setting up a throwaway host namespace and a pod namespace"
# the "host": own netns + private mount ns, kept alive by sleep
unshare -n -m --propagation private sleep infinity </dev/null &>/dev/null &
HOST_PID=$!
# the "pod"
unshare -n sleep infinity </dev/null &>/dev/null &
POD_PID=$!
for pid in $HOST_PID $POD_PID; do
    for _ in $(seq 1 100); do
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && break
        sleep 0.02
    done
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] || fail "namespace holder $pid did not start"
done
POD_NETNS=/proc/$POD_PID/ns/net

host() { nsenter -n -m -t "$HOST_PID" "$@"; }
pod() { nsenter -n -t "$POD_PID" "$@"; }

host ip link set lo up
pod ip link set lo up
pod sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0

# the "NIC": a veth whose peer stays on the host
host ip link add "$NIC" type veth peer name "${NIC}p"
host ip link set "$NIC" mtu "$MTU"
host ip link set "${NIC}p" up
host ip link set "$NIC" up
host ip addr add "$V4" dev "$NIC"
host ip -6 addr add "$V6" dev "$NIC" nodad
host ip route add "$ROUTE_DST" via "$ROUTE_GW" dev "$NIC"

# sysfs of this netns, and a fake PCI function 0000:5e:00.1 whose net/ is the NIC
mkdir -p "$WORK/pci/$PCI/net/$NIC" "$WORK/drivers/fakenic" "$WORK/state"
ln -s "$WORK/drivers/fakenic" "$WORK/pci/$PCI/driver"
host mount -t sysfs sysfs /sys
host mount --bind "$WORK/pci" /sys/bus/pci/devices
echo "host ns: pid $HOST_PID   pod netns: $POD_NETNS"
echo "fake PCI: /sys/bus/pci/devices/$PCI/net/$(host ls "/sys/bus/pci/devices/$PCI/net")"

# ---------------------------------------------------------------- config
# What Multus hands the plugin: the NAD config with deviceID/pciBusID injected.
if [[ -f examples/multus-delegate.json ]]; then
    BASE=$(cat examples/multus-delegate.json)
    CONFIG_SRC=examples/multus-delegate.json
else
    BASE='{"cniVersion":"0.3.1","name":"amd-host-device-nad","type":"amd-host-device"}'
    CONFIG_SRC="inline"
fi
CONFIG=$(jq -c --arg pci "$PCI" '. + {deviceID: $pci, pciBusID: $pci}' <<<"$BASE")

# The node policy (what a node's admin decides, not the NAD): the state dir in
# this demo's temp dir, and no kubelet checkpoint even on a Kubernetes node, so
# the fake PCI function needs no device-plugin allocation. Root's, not group- or
# world-writable, as the plugin requires; passed in AMD_HOST_DEVICE_NODE_POLICY.
POLICY=$WORK/node.json
jq -n --arg state "$WORK/state" --arg kubelet "$WORK/no-kubelet-checkpoint" \
    '{comment: "amd-host-device demo", stateDir: $state, kubeletCheckpoint: $kubelet}' >"$POLICY"
chmod 0644 "$POLICY"
CNI_ARGS_MULTUS="IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo-pod;K8S_POD_INFRA_CONTAINER_ID=$CONTAINER_ID;K8S_POD_UID=0c1d2e3f-demo"

# call <ADD|DEL>: the plugin as Multus runs it, in the host namespace
call() {
    printf '%s' "$CONFIG" | host env -i PATH="$PATH" AMD_HOST_DEVICE_NODE_POLICY="$POLICY" \
        CNI_COMMAND="$1" CNI_CONTAINERID="$CONTAINER_ID" CNI_NETNS="$POD_NETNS" \
        CNI_IFNAME="$CNI_IFNAME_POD" CNI_PATH="$CNI_BIN_DIR" CNI_ARGS="$CNI_ARGS_MULTUS" \
        timeout 60 "$PLUGIN"
}

addrs_of() { host ip -j addr show dev "$NIC" | jq -c '[.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | sort'; }

# ---------------------------------------------------------------- before
section "before: the host ($NIC, MTU $MTU, route $ROUTE_DST via $ROUTE_GW)"
host ip addr show dev "$NIC"
host ip route show dev "$NIC"
BEFORE_ADDRS=$(addrs_of)
BEFORE_MTU=$(host ip -j link show dev "$NIC" | jq -r '.[0].mtu')

# ---------------------------------------------------------------- ADD
section "ADD (config from $CONFIG_SRC, CNI_IFNAME=$CNI_IFNAME_POD, Multus CNI_ARGS)"
echo "config: $CONFIG"
echo "node policy ($POLICY): $(jq -c . "$POLICY")"
RESULT=$(call ADD) || {
    echo "$RESULT"
    fail "ADD failed"
}
jq . <<<"$RESULT" || fail "ADD printed something that is not JSON: $RESULT"

section "inside the pod"
pod ip addr
echo
pod ip route
pod ip -6 route
echo
echo "host still has $NIC? $(host ip link show dev "$NIC" &>/dev/null && echo yes || echo no)"

# ---------------------------------------------------------------- DEL
section "DEL"
OUT=$(call DEL) || {
    echo "$OUT"
    fail "DEL failed"
}
[[ -z $OUT ]] || echo "DEL printed: $OUT"
echo "DEL: ok"

section "after: the host"
host ip addr show dev "$NIC" || fail "$NIC is not back on the host"
host ip route show dev "$NIC"
AFTER_ADDRS=$(addrs_of)
AFTER_MTU=$(host ip -j link show dev "$NIC" | jq -r '.[0].mtu')

section "check"
ok=1
[[ $BEFORE_ADDRS == "$AFTER_ADDRS" ]] || { echo "addresses: before $BEFORE_ADDRS, after $AFTER_ADDRS"; ok=0; }
[[ $BEFORE_MTU == "$AFTER_MTU" ]] || { echo "MTU: before $BEFORE_MTU, after $AFTER_MTU"; ok=0; }
host ip -j route show "$ROUTE_DST" | jq -e 'length > 0' >/dev/null || { echo "route $ROUTE_DST not restored"; ok=0; }
host ip -j link show dev "$NIC" | jq -e '.[0].flags | index("UP")' >/dev/null || { echo "$NIC not UP"; ok=0; }
[[ $ok -eq 1 ]] || fail "the host was not restored as it was"
echo "$NIC is back with its addresses $AFTER_ADDRS, MTU $AFTER_MTU, UP, and its route"

#!/usr/bin/env bats
#
# End to end through containerd's CRI plugin, the path kubelet drives: a
# private containerd (Debian's containerd 1.6) loads a conflist with
# amd-host-device as its only network, and a small CRI client
# (tests/cri-client) plays kubelet: RunPodSandbox (containerd runs CNI ADD,
# loopback beside it), PodSandboxStatus (the pod IP containerd took from the
# result's eth0), StopPodSandbox (DEL) and RemovePodSandbox (a second DEL,
# with an empty CNI_NETNS).
#
# Each test starts a containerd of its own, in the test's throwaway host
# namespace under a mount namespace of its own, so the plugin it starts sees
# the test's veth "NICs"; its config, root, state, socket, CNI dirs and the
# plugin's node policy are under $WORKDIR, and /run and /var/lib/cni are
# private bind mounts there. The sandbox image is built from
# tests/pause/pause.c once per file run. How containerd is isolated, started
# and cleaned up: tests/containerd.bash. About 2 s a test.

load helpers
load containerd

setup_file() {
    containerd_setup_file
}

setup() {
    basic_setup
    containerd_setup
}

teardown() {
    containerd_teardown
    basic_teardown
}

###########################################################################
# helpers of this file
###########################################################################

# Our plugin's entry in a conflist: the NIC by name (what a node without
# Multus uses), + extra keys. State dir and log come from the node policy.
amd_entry() {
    jq -cn --arg nic "$NIC" --argjson extra "${1:-"{}"}" '{type: "amd-host-device", device: $nic} + $extra'
}

# assert_sandbox_ready <ipv4> [additional-ip...]: PodSandboxStatus says READY
# with the NIC's IPv4 as the pod IP and the other addresses as additional IPs;
# containerd's own record of the CNI result has them on eth0; the sandbox's
# netns is known, and the plugin's state for <sandbox>-eth0 records what
# containerd passed.
assert_sandbox_ready() {
    local ip=$1
    shift
    assert_json .state SANDBOX_READY "$SANDBOX_STATUS"
    assert_json .ip "$ip" "$SANDBOX_STATUS"
    assert_json '.additionalIps | sort | join(" ")' "$(printf '%s\n' "$@" | sed '/^$/d' | sort | xargs)" "$SANDBOX_STATUS"
    assert_json '[.cniResult.Interfaces.eth0.IPConfigs[].IP] | sort | join(" ")' \
        "$(printf '%s\n' "$ip" "$@" | sed '/^$/d' | sort | xargs)" "$SANDBOX_STATUS"
    [[ -n $SANDBOX_NETNS && -e $SANDBOX_NETNS ]] || die "no netns for sandbox $SANDBOX_ID: $SANDBOX_STATUS"
    # what containerd passed the plugin: CNI_NETNS, CNI_IFNAME and the K8S_POD_*
    # keys of CNI_ARGS, as the state file of <sandbox>-eth0 records them
    local state
    state=$(state_file "$SANDBOX_ID" eth0)
    [[ -f $state ]] || die "no state file $state: $(ls -la "$STATE_DIR" 2>&1)"
    assert_json .netns "$(jq -r .netns <<<"$SANDBOX_STATUS")" "$(cat "$state")"
    assert_json .containerId "$SANDBOX_ID" "$(cat "$state")"
    assert_json .ifname eth0 "$(cat "$state")"
    assert_json '.pod | "\(.namespace) \(.name) \(.uid)"' "cri-$TID pod-$TID $SANDBOX_UID" "$(cat "$state")"
}

# assert_in_sandbox <pod-name> <mtu> <addr>...: the NIC is in the sandbox's
# netns under <pod-name>, UP, with its MAC, that MTU and exactly these global
# addresses, and `eth0` (CNI_IFNAME) finds it; it is gone from the host.
assert_in_sandbox() {
    local name=$1 mtu=$2
    shift 2
    assert_link_exists "$SANDBOX_NETNS" "$name"
    assert_link_up "$SANDBOX_NETNS" "$name"
    assert_addrs "$SANDBOX_NETNS" "$name" "$@"
    assert_mtu "$SANDBOX_NETNS" "$name" "$mtu"
    assert_mac "$SANDBOX_NETNS" "$name" "$NIC_MAC_ADDR"
    local found
    found=$(ns_exec "$SANDBOX_NETNS" ip -j link show dev eth0 2>&1 | jq -r '.[0].ifname' 2>&1)
    [[ $found == "$name" ]] || die "eth0 in the sandbox is '$found', expected the NIC ($name)"
    assert_no_link host "$NIC"
}

# assert_nic_back <mtu> <addr>...: $NIC is on the host as the test made it:
# its name, UP, not PROMISC, its MAC and MTU, exactly these addresses (IPv6
# ones still nodad); no link answers to eth0 on the host and the NIC has no
# alternative name left; no attachment state or claim is left.
assert_nic_back() {
    local mtu=$1 a json
    shift
    assert_link_exists host "$NIC"
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$@"
    for a in "$@"; do
        if [[ $a == *:* ]]; then
            assert_addr_flag host "$NIC" "$a" nodad
        fi
    done
    assert_mtu host "$NIC" "$mtu"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    json=$(run_in_host_ns ip -j link show dev "$NIC")
    jq -e '.[0].flags | index("PROMISC") | not' <<<"$json" >/dev/null || die "$NIC is left PROMISC on the host: $json"
    jq -e '(.[0].altnames // []) | length == 0' <<<"$json" >/dev/null ||
        die "$NIC keeps alternative names on the host: $json"
    assert_no_link host eth0
    assert_no_state_left "after RemovePodSandbox"
}

# stop_remove_and_check <mtu> <addr>...: StopPodSandbox gives the NIC back
# (DEL), RemovePodSandbox (a second DEL, empty CNI_NETNS) leaves it so.
stop_remove_and_check() {
    run_cri stop-pod-sandbox "$SANDBOX_ID"
    assert_cri_ok
    run_cri pod-sandbox-status "$SANDBOX_ID"
    assert_cri_ok
    assert_json .state SANDBOX_NOTREADY
    assert_link_exists host "$NIC"
    assert_addrs host "$NIC" "${@:2}"
    run_cri remove-pod-sandbox "$SANDBOX_ID"
    assert_cri_ok
    run_cri list-pod-sandboxes
    assert_cri_ok
    [[ -z $output ]] || die "sandboxes left after RemovePodSandbox: $output"
    assert_nic_back "$@"
    # libcni forgot the attachment (its cache goes only when every DEL succeeded)
    local cached
    cached=$(find "$CTRD/var-lib-cni" -type f -name "*$SANDBOX_ID*" 2>/dev/null)
    [[ -z $cached ]] || die "libcni still caches sandbox $SANDBOX_ID: $cached"
}

###########################################################################
# tests
###########################################################################

@test "containerd CRI: the default standalone conflist (NIC by device): the sandbox gets the NIC and its IPv4 as pod IP; stop + remove give it back" {
    NIC=n${TID}
    NIC_V4=10.77.0.2/24
    make_nic "$NIC" 0000:5e:00.1 "$NIC_V4"
    NIC_MAC_ADDR=$(nic_mac "$NIC")
    write_cri_conflist "net-$TID" "[$(amd_entry)]"
    containerd_start

    run_sandbox "pod-$TID"
    assert_sandbox_ready "${NIC_V4%/*}"
    # the host name in the pod, answering to eth0
    assert_in_sandbox "$NIC" 1500 "$NIC_V4"

    stop_remove_and_check 1500 "$NIC_V4"
}

@test "containerd CRI: IPv4 + IPv6, MTU 1400 and routes through the NIC follow it into the sandbox and come back" {
    NIC_MTU=1400 standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC"
    write_cri_conflist "net-$TID" "[$(amd_entry)]"
    containerd_start

    run_sandbox "pod-$TID"
    assert_sandbox_ready "${NIC_V4%/*}" "${NIC_V6%/*}"
    assert_in_sandbox "$NIC" 1400 "$NIC_V4" "$NIC_V6"
    assert_route "$SANDBOX_NETNS" 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_route "$SANDBOX_NETNS" 2001:db8:99::/48 2001:db8:77::1 "$NIC"

    stop_remove_and_check 1400 "$NIC_V4" "$NIC_V6"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC"
}

@test "containerd CRI: chained [amd-host-device, tuning] with the default naming: tuning finds the NIC as eth0 (mtu, promisc); all of it is undone on the host" {
    standard_nic
    write_cri_conflist "net-$TID" "[$(amd_entry), {\"type\": \"tuning\", \"mtu\": 1400, \"promisc\": true}]"
    containerd_start

    run_sandbox "pod-$TID"
    assert_sandbox_ready "${NIC_V4%/*}" "${NIC_V6%/*}"
    # tuning looked eth0 up by netlink and got the NIC (kernel name $NIC)
    assert_in_sandbox "$NIC" 1400 "$NIC_V4" "$NIC_V6"
    local json
    json=$(ns_exec "$SANDBOX_NETNS" ip -j link show dev eth0)
    jq -e '.[0].flags | index("PROMISC")' <<<"$json" >/dev/null ||
        die "tuning did not make eth0 PROMISC in the sandbox: $json"

    stop_remove_and_check 1500 "$NIC_V4" "$NIC_V6"
}

@test "containerd CRI: podInterfaceName cni: the NIC is eth0 in the sandbox; stop + remove give it back under its host name" {
    standard_nic
    write_cri_conflist "net-$TID" "[$(amd_entry '{"podInterfaceName": "cni"}')]"
    containerd_start

    run_sandbox "pod-$TID"
    assert_sandbox_ready "${NIC_V4%/*}" "${NIC_V6%/*}"
    assert_in_sandbox eth0 1500 "$NIC_V4" "$NIC_V6"
    assert_no_link "$SANDBOX_NETNS" "$NIC"

    stop_remove_and_check 1500 "$NIC_V4" "$NIC_V6"
}

#!/usr/bin/env bats
# -*- bats -*-
#
# A pod that vanished without DEL does not keep its NIC. When ADD meets a claim
# whose attachment is provably gone (its pod's netns no longer exists, or
# kubelet's checkpoint now allocates the NIC to the pod asking), it first gives
# the NIC back as that attachment's DEL would (renamed from net1/devN,
# addresses, routes, MTU, UP, CNI_IFNAME taken off), removes that state, logs
# it, and only then attaches the NIC to the new pod as it was before the first
# pod. A claim whose pod still lives is refused (101).
#
# The kernel's hand-back of a physical NIC from a dying netns is simulated on
# the veth before its pod's netns is deleted (hand_back_to_host): renamed
# (net1, dev7) or not, moved to the host, addresses flushed, DOWN.
#
# The fake PCI tree and renames: a real sysfs lists a function's netdev under
# its current name at every instant. Where the tests select by deviceID, the
# plugin reads the tree only after the repair has renamed the NIC back to its
# host name (the repair finds it by name and MAC), and a directory in $WORKDIR
# cannot follow that rename, so those tests leave the tree listing the host
# name, which is what sysfs shows when it is read. The `device`-selector test,
# whose ADD resolves by name, renames the tree with the NIC.

load helpers

setup() {
    basic_setup
    # rich_nic (MTU 1400, IPv4 + IPv6 with nodad, a route) and an IPv6 route
    rich_nic
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC"
}

# assert_as_before: $NIC is on the host exactly as before the first pod (see
# rich_nic, and the IPv6 route), without CNI_IFNAME as an alternative name,
# and no attachment has state left.
assert_as_before() {
    assert_nic_restored
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC"
    assert_altnames host "$NIC"
    assert_no_alias host "$NIC"
    assert_no_state_left
}

# assert_in_new_pod <pod-side name>: the second pod ($NEW_POD_NETNS) has the
# NIC as the first pod got it: its original addresses, MTU and routes, UP.
assert_in_new_pod() {
    local name=$1
    assert_addrs "$NEW_POD_NETNS" "$name" "$NIC_V4" "$NIC_V6"
    assert_mac "$NEW_POD_NETNS" "$name" "$NIC_MAC_ADDR"
    assert_mtu "$NEW_POD_NETNS" "$name" 1400
    assert_link_up "$NEW_POD_NETNS" "$name"
    assert_route "$NEW_POD_NETNS" 10.99.0.0/16 10.77.0.1 "$name"
    assert_route "$NEW_POD_NETNS" 2001:db8:99::/48 2001:db8:77::1 "$name"
    assert_no_link host "$NIC"
}

# first_pod_vanishes <conf> <pod-side name> <handed back as>: the first pod
# ($CID) gets the NIC, then dies without DEL: the kernel hands the NIC back
# under <handed back as>, DOWN, without addresses, and the netns is gone.
first_pod_vanishes() {
    local conf=$1 pod_name=$2 back_as=$3
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    assert_addrs pod "$pod_name" "$NIC_V4" "$NIC_V6"
    hand_back_to_host "$pod_name" "$back_as"
    kill_pod_netns
    assert_link_down host "$back_as"
    assert_addrs host "$back_as"
    [[ -e $(state_file "$CID" net1) ]] || die "the first pod's state is gone before the second ADD"
}

# second_pod_takes_it <conf>: a new pod (${CID}b) ADDs the same NIC and gets
# the original addresses; the first pod's claim is repaired on the way, and
# said so in the log.
second_pod_takes_it() {
    new_pod_ns
    run_plugin ADD "${CID}b" "$NEW_POD_NETNS" net1 "$1"
    assert_plugin_ok
    assert_result_addrs "$NIC_V4" "$NIC_V6"
    [[ ! -e $(state_file "$CID" net1) ]] || die "the first pod's state survived the repair"
    [[ -e $(state_file "${CID}b" net1) ]] || die "the second pod has no state"
    grep -q "is claimed by container $CID interface net1, which is gone (its network namespace $POD_NETNS no longer exists)" \
        "$LOG_FILE" || die "the log does not say the claim was repaired and why: $(cat "$LOG_FILE")"
}

# late_del_changes_nothing <netns> <conf>: the first pod's DEL, arriving late
# with <netns> (dead or empty), leaves everything as it is: the NIC where it
# is, the second pod's state.
late_del_changes_nothing() {
    local before after
    before=$(run_in_host_ns ip -br link; ls "$STATE_DIR")
    run_plugin DEL "$CID" "$1" net1 "$2"
    assert_plugin_ok_silent
    after=$(run_in_host_ns ip -br link; ls "$STATE_DIR")
    [[ $after == "$before" ]] || die "the late DEL changed something: before [$before], after [$after]"
}

###########################################################################

@test "a pod that vanished without DEL (NIC handed back as net1): the next pod's ADD repairs the claim and gets the NIC as it was; a late DEL of the first changes nothing" {
    first_pod_vanishes "$CONF" "$NIC" net1
    second_pod_takes_it "$CONF"
    assert_in_new_pod "$NIC"
    assert_altnames "$NEW_POD_NETNS" "$NIC" net1
    assert_json '.interfaces[0].name' net1
    assert_no_link host net1

    # the first pod's runtime DELs at last, its netns long gone
    late_del_changes_nothing "$POD_NETNS" "$CONF"
    assert_in_new_pod "$NIC"

    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_as_before
    assert_no_link "$NEW_POD_NETNS" "$NIC"

    # and once more, with an empty CNI_NETNS
    late_del_changes_nothing "" "$CONF"
    assert_as_before
}

@test "the kernel handed the NIC back under its host name, still answering to net1: the repair takes the alternative name off before the next pod gets it" {
    first_pod_vanishes "$CONF" "$NIC" "$NIC"
    assert_altnames host "$NIC" net1
    second_pod_takes_it "$CONF"
    assert_in_new_pod "$NIC"
    assert_altnames "$NEW_POD_NETNS" "$NIC" net1
    assert_json '.interfaces[0].name' net1
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_as_before
}

@test "the kernel handed the NIC back under a kernel name (dev7): the repair finds it by MAC" {
    first_pod_vanishes "$CONF" "$NIC" dev7
    second_pod_takes_it "$CONF"
    assert_in_new_pod "$NIC"
    assert_no_link host dev7
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_as_before
}

@test "podInterfaceName cni (net1 in the pod, handed back as net1): the next pod gets it as net1 with its original addresses; DEL restores it" {
    local conf
    conf=$(jq -c '. + {podInterfaceName: "cni"}' <<<"$CONF")
    first_pod_vanishes "$conf" net1 net1
    second_pod_takes_it "$conf"
    assert_in_new_pod net1
    assert_json '.interfaces[0].name' net1
    late_del_changes_nothing "$POD_NETNS" "$conf"
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_as_before
    assert_no_link host net1
}

@test "a stale claim through the device selector (the PCI tree renamed with the NIC): repaired the same way" {
    local conf
    conf=$(config_for "net-$TID" "{\"device\":\"$NIC\"}")
    first_pod_vanishes "$conf" "$NIC" net1
    rename_fake_netdev "$PCI" "$NIC" net1
    second_pod_takes_it "$conf"
    rename_fake_netdev "$PCI" net1 "$NIC"
    assert_in_new_pod "$NIC"
    late_del_changes_nothing "$POD_NETNS" "$conf"
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_as_before
}

@test "a live claim is still refused (101, naming the owner), by deviceID and by device; the owner keeps the NIC" {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    new_pod_ns
    local conf
    for conf in "$CONF" "$(config_for "net-$TID" "{\"device\":\"$NIC\"}")"; do
        run_plugin ADD "${CID}b" "$NEW_POD_NETNS" net1 "$conf"
        assert_cni_error 101
        assert_msg_contains "claimed by container $CID interface net1"
        assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
        assert_altnames pod "$NIC" net1
        assert_no_link "$NEW_POD_NETNS" "$NIC"
        [[ -e $(state_file "$CID" net1) && ! -e $(state_file "${CID}b" net1) ]] ||
            die "the refused ADD changed the state: $(ls -A "$STATE_DIR")"
    done
    ! grep -q "which is gone" "$LOG_FILE" || die "a live claim was taken for a stale one: $(cat "$LOG_FILE")"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_as_before
}

@test "kubelet allocates the NIC to the asking pod now: the claim of a pod whose netns still lives is repaired, the NIC moves over" {
    kubelet_allocates "uid-$CID"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    # the first pod is gone for kubelet (its netns lingers, its DEL never came);
    # the NIC is the new pod's now
    kubelet_allocates "uid-${CID}b"
    new_pod_ns
    run_plugin ADD "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    assert_in_new_pod "$NIC"
    assert_no_link pod "$NIC"
    assert_no_link pod net1
    grep -q "which is gone (kubelet allocates $PCI to pod uid-${CID}b now, not to its pod uid-$CID)" "$LOG_FILE" ||
        die "the log does not say why the claim was repaired: $(cat "$LOG_FILE")"
    [[ ! -e $(state_file "$CID" net1) ]] || die "the first pod's state survived the repair"

    # the first pod's DEL, its netns still there, changes nothing
    late_del_changes_nothing "$POD_NETNS" "$CONF"
    assert_in_new_pod "$NIC"
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_as_before
}

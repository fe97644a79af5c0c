#!/usr/bin/env bats
# -*- bats -*-
#
# State lost is no NIC lost. With no state of ours for the attachment (the state
# directory wiped after ADD: state files, claims, locks, spares), DEL still
# gives the NIC back if it is provably the selected one in CNI_NETNS: its name
# or host-device's alias is a host name from the `device` selector or from the
# netdevs the fake PCI tree lists under the selected PCI address, or its MAC is
# the `hwaddr` selector (a veth has no parent device, so the PCI-parent proof
# is unit-tested only). What it carries in the pod (addresses, routes, MTU) is
# read before it moves; it comes back under its host name with those, UP, and
# without CNI_IFNAME as an alternative name. A link that merely carries
# CNI_IFNAME, two links that both match, and a NIC another attachment of ours
# owns are never touched; a second DEL is a no-op.

load helpers

setup() {
    basic_setup
    # rich_nic (MTU 1400, IPv4 + IPv6 with nodad, a route) and an IPv6 route
    rich_nic
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC"
}

# selector_config <selector> <podInterfaceName>: the config that selects $NIC
# by deviceID, device or hwaddr, with that pod-side naming.
selector_config() {
    local extra
    case $1 in
    deviceID) extra=$(jq -cn --arg pci "$PCI" '{deviceID: $pci, pciBusID: $pci}') ;;
    device) extra=$(jq -cn --arg nic "$NIC" '{device: $nic}') ;;
    hwaddr) extra=$(jq -cn --arg mac "$NIC_MAC_ADDR" '{hwaddr: $mac}') ;;
    *) die "selector_config: unknown selector $1" ;;
    esac
    config_for "net-$TID" "$(jq -c --arg naming "$2" '. + {podInterfaceName: $naming}' <<<"$extra")"
}

# add_then_lose_state <config> <pod-side name>: ADD $CID into the pod as net1,
# the NIC is there under <pod-side name>, then the state dir is wiped.
add_then_lose_state() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$1"
    assert_plugin_ok
    assert_addrs pod "$2" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    wipe_state
}

# assert_recovered: $NIC is on the host as rich_nic made it (IPv6 route
# included; the nodad flag aside, see the last test), without alias or
# alternative name, nothing of it left in the pod, and no state of $CID/net1.
assert_recovered() {
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mtu host "$NIC" 1400
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC"
    assert_altnames host "$NIC"
    assert_no_alias host "$NIC"
    assert_no_link pod "$NIC"
    assert_no_link pod net1
    [[ ! -e $(state_file "$CID" net1) ]] || die "a recovery left state: $(cat "$(state_file "$CID" net1)")"
}

# recovery_lines: how many times the log says a NIC was recovered without state.
recovery_lines() {
    grep -c 'recovering .* without state of ours' "$LOG_FILE" || true
}

# expect_recovery <selector> <podInterfaceName> <pod-side name> <proof>: ADD,
# state wiped, DEL gives the NIC back (the log names the proof), and a second
# DEL is a no-op.
expect_recovery() {
    local conf
    conf=$(selector_config "$1" "$2")
    add_then_lose_state "$conf" "$3"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_recovered
    grep -q "found $3 in the pod without state ($4)" "$LOG_FILE" ||
        die "the log does not say why $3 is the NIC ($4): $(cat "$LOG_FILE")"
    [[ $(recovery_lines) == 1 ]] || die "expected one recovery in the log: $(cat "$LOG_FILE")"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_recovered
    [[ $(recovery_lines) == 1 ]] || die "the second DEL recovered again: $(cat "$LOG_FILE")"
}

###########################################################################

@test "state wiped, deviceID, the NIC under its host name in the pod: DEL gives it back with name, addresses, MTU, routes, UP" {
    expect_recovery deviceID host "$NIC" "host-device's alias names its host name"
}

@test "state wiped, deviceID, podInterfaceName cni (net1 in the pod, alias = host name from the PCI tree): DEL gives it back" {
    expect_recovery deviceID cni net1 "host-device's alias names its host name"
}

@test "state wiped, device selector, the NIC under its host name in the pod: DEL gives it back" {
    expect_recovery device host "$NIC" "host-device's alias names its host name"
}

@test "state wiped, device selector, podInterfaceName cni: DEL gives it back under the device's name" {
    expect_recovery device cni net1 "host-device's alias names its host name"
}

@test "state wiped, hwaddr selector, podInterfaceName cni: the MAC proves it, the alias names it; DEL gives it back" {
    expect_recovery hwaddr cni net1 "its MAC is the selected one"
}

@test "state wiped and host-device's alias gone: a name alone proves nothing, the NIC is left as it is" {
    # A real NIC is still known by its parent PCI device (IFLA_PARENT_DEV_NAME); a veth
    # has none, so here only the name is left, and a name is what a tenant's NAD controls.
    local conf
    conf=$(selector_config deviceID host)
    add_then_lose_state "$conf" "$NIC"
    run_in_pod_ns ip link set dev "$NIC" alias ""
    assert_no_alias pod "$NIC"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up pod "$NIC"
    assert_no_link host "$NIC"
    grep -q "nothing of it in the pod; nothing to do" "$LOG_FILE" ||
        die "the log does not say nothing was found: $(cat "$LOG_FILE")"
    hand_back_to_host "$NIC" "$NIC"
}

@test "no state and a pod link called CNI_IFNAME that is not the NIC: DEL leaves it (and the NIC on the host) alone" {
    # the pod's own net1: a veth of its own, UP, with an address
    run_in_pod_ns ip link add net1 type veth peer name "q${TID}"
    run_in_pod_ns ip addr add 192.0.2.7/24 dev net1
    run_in_pod_ns ip link set net1 up
    local mac selector naming
    mac=$(run_in_pod_ns ip -j link show dev net1 | jq -r '.[0].address')
    for selector in deviceID device hwaddr; do
        for naming in host cni; do
            run_plugin DEL "$CID" "$POD_NETNS" net1 "$(selector_config "$selector" "$naming")"
            assert_plugin_ok_silent
            assert_mac pod net1 "$mac"
            assert_addrs pod net1 192.0.2.7/24
            assert_link_up pod net1
            assert_nic_restored
        done
    done
    [[ $(recovery_lines) == 0 ]] || die "something was recovered: $(cat "$LOG_FILE")"
}

@test "state wiped with the pod's own net1 beside the NIC: DEL gives back the NIC and leaves net1 alone" {
    run_in_pod_ns ip link add net1 type veth peer name "q${TID}"
    run_in_pod_ns ip addr add 192.0.2.7/24 dev net1
    run_in_pod_ns ip link set net1 up
    local conf mac
    mac=$(run_in_pod_ns ip -j link show dev net1 | jq -r '.[0].address')
    conf=$(selector_config deviceID host)
    add_then_lose_state "$conf" "$NIC"
    assert_altnames pod "$NIC" # CNI_IFNAME is taken: the NIC does not answer to it

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_no_link pod "$NIC"
    assert_mac pod net1 "$mac"
    assert_addrs pod net1 192.0.2.7/24
    assert_link_up pod net1
}

@test "state wiped and two pod links that both match the selection: DEL touches neither" {
    local conf
    conf=$(selector_config deviceID host)
    add_then_lose_state "$conf" "$NIC"
    # a second link claiming, by host-device's alias, to be the NIC
    run_in_pod_ns ip link add "d${TID}" type veth peer name "e${TID}"
    run_in_pod_ns ip link set dev "d${TID}" alias "$NIC"
    run_in_pod_ns ip addr add 192.0.2.8/24 dev "d${TID}"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up pod "$NIC"
    assert_addrs pod "d${TID}" 192.0.2.8/24
    assert_no_link host "$NIC"
    grep -q "several links in the pod match the selection" "$LOG_FILE" ||
        die "the log does not say why nothing was done: $(cat "$LOG_FILE")"
    [[ $(recovery_lines) == 0 ]] || die "something was recovered: $(cat "$LOG_FILE")"
}

@test "no state for this attachment, but another attachment of ours owns the NIC: DEL does nothing; the owner's DEL gives it back" {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    # the same pod and config under another container id: the NIC is provably there
    run_plugin DEL "${CID}b" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up pod "$NIC"
    assert_altnames pod "$NIC" net1
    assert_no_link host "$NIC"
    [[ -e $(state_file "$CID" net1) ]] || die "the owner's state is gone"
    grep -q "the NIC is attachment $CID/net1's now; nothing to do" "$LOG_FILE" ||
        die "the log does not name the owner: $(cat "$LOG_FILE")"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "state wiped: the IPv6 address comes back with its nodad flag" {
    known_plugin_bug "the pod's copy of an address carries no nodad flag (static IPAM sets none), so a recovery without state restores it without nodad"
    local conf
    conf=$(selector_config deviceID host)
    add_then_lose_state "$conf" "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_recovered
    assert_addr_flag host "$NIC" "$NIC_V6" nodad
}

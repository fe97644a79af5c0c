#!/usr/bin/env bats
# -*- bats -*-
#
# The host's own use of a NIC stays the host's. A port of a bridge (IFLA_MASTER)
# or a NIC with upper devices (a macvlan on it: /sys/class/net/<nic>/upper_*)
# is refused with code 107 naming them, nothing moved, no state, unless the
# node policy says "allowEnslavedDevice": true (or lets a network config say
# it, through nadMayOverride); then ADD records the master and DEL makes the
# NIC its port again, with its addresses, MTU and UP. Bonds, teams, VRFs and
# VLANs take the same netlink path but this kernel has no such modules; a
# bridge and a macvlan are what the tests can build.

load helpers

setup() {
    basic_setup
    BR=br${TID}
    run_in_host_ns ip link add name "$BR" type bridge || die "cannot create bridge $BR"
    run_in_host_ns ip link set "$BR" up
}

# enslave: $NIC a port of $BR (its addresses stay on it).
enslave() {
    run_in_host_ns ip link set "$NIC" master "$BR" || die "cannot enslave $NIC to $BR"
    assert_master "$NIC" "$BR"
}

# assert_master <ifname> <master>: <ifname> on the host is a port of <master>.
assert_master() {
    assert_json '.[0].master // "none"' "$2" "$(run_in_host_ns ip -j link show dev "$1")"
}


###########################################################################

@test "a bridge port is refused (107, naming the bridge): nothing moved, still a port with its addresses, no state; its DEL is harmless" {
    standard_nic
    enslave
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 107
    assert_msg_contains "$NIC is a port of $BR"
    assert_msg_contains allowEnslavedDevice
    assert_nic_home
    assert_master "$NIC" "$BR"
    assert_no_link pod "$NIC"
    assert_no_link pod net1
    assert_no_state_left "after a refused ADD"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_nic_home
    assert_master "$NIC" "$BR"
}

@test "a bridge port selected by device is refused the same way" {
    standard_nic
    enslave
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"device\":\"$NIC\"}")"
    assert_cni_error 107
    assert_msg_contains "$NIC is a port of $BR"
    assert_nic_home
    assert_master "$NIC" "$BR"
    assert_no_state_left "after a refused ADD"
}

@test "a bridge port selected by hwaddr (the bridge took the port's MAC) is refused the same way; the bridge is never tried" {

    standard_nic
    enslave
    assert_mac host "$BR" "$NIC_MAC_ADDR"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"hwaddr\":\"$NIC_MAC_ADDR\"}")"
    assert_cni_error 107
    assert_msg_contains "$NIC is a port of $BR"
    assert_nic_home
    assert_master "$NIC" "$BR"
    assert_no_state_left "after a refused ADD"
    ! grep -q "captured $BR" "$LOG_FILE" || die "the bridge itself was taken for the NIC: $(cat "$LOG_FILE")"
}

@test "a NIC with a macvlan on it is refused (107, naming the macvlan); both stay as they were" {
    standard_nic
    run_in_host_ns ip link add link "$NIC" name "v${TID}" type macvlan mode bridge || die "cannot create a macvlan"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 107
    assert_msg_contains "$NIC carries v${TID}"
    assert_nic_home
    assert_no_link pod "$NIC"
    assert_json '.[0].link' "$NIC" "$(run_in_host_ns ip -j link show dev "v${TID}")"
    assert_no_state_left "after a refused ADD"
}

@test "a bridge port whose node policy allows it (allowEnslavedDevice): ADD moves it, DEL makes it a port of the bridge again, with its addresses, MTU, routes, UP" {
    write_policy '{"allowEnslavedDevice": true}'
    rich_nic
    enslave
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    assert_json "[.[] | select(.master == \"$BR\")] | length" 0 "$(run_in_host_ns ip -j link show)"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
    assert_master "$NIC" "$BR"
    assert_altnames host "$NIC"
}

@test "allowEnslavedDevice from a network config: only where the node policy lets it decide (nadMayOverride), else code 7" {
    standard_nic
    enslave
    local conf
    conf=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"allowEnslavedDevice\":true}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_cni_error 7
    assert_msg_contains allowEnslavedDevice
    assert_nic_home
    assert_master "$NIC" "$BR"
    assert_no_state_left "after a refused ADD"

    allow_nad_keys allowEnslavedDevice
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_nic_home
    assert_master "$NIC" "$BR"

    # the same node, a config that does not ask: refused
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 107
    assert_master "$NIC" "$BR"
}

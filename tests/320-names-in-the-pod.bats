#!/usr/bin/env bats
# -*- bats -*-
#
# Names in the pod. By default the NIC keeps its host name in the pod and also
# answers to CNI_IFNAME as an alternative name (`ip -d link show` shows
# `altname net1`), so every lookup by CNI_IFNAME finds it (ip, host-device,
# a chained tuning); the ADD result names the interface CNI_IFNAME. Every path
# that gives the NIC back (DEL, rollback, GC, restore; the recovery without
# state in 510 and the stale-claim repair in 530) takes the alternative name
# off, so the host never keeps it, also when the host has a link of that name
# itself. When CNI_IFNAME is already taken in the pod, the NIC keeps its one
# name and the result names the kernel name.

load helpers

# assert_answers_to_cni_ifname <ifname>: in the pod, $NIC has <ifname> as its
# one alternative name, `ip link show <ifname>` finds it, and the result names
# the interface <ifname> (in the sandbox, with the NIC's MAC).
assert_answers_to_cni_ifname() {
    local ifname=$1
    assert_altnames pod "$NIC" "$ifname"
    assert_answers_to pod "$ifname" "$NIC"
    run_in_pod_ns ip -d link show "$ifname" | grep -qw "altname $ifname" ||
        die "ip -d link show $ifname does not show 'altname $ifname': $(run_in_pod_ns ip -d link show "$ifname")"
    assert_json '.interfaces | length' 1
    assert_json '.interfaces[0].name' "$ifname"
    assert_json '.interfaces[0].mac' "$NIC_MAC_ADDR"
    assert_json '.interfaces[0].sandbox' "$POD_NETNS"
    assert_json '[.ips[].interface] | unique | tostring' '[0]'
}

# assert_home_without <ifname>: $NIC is home as standard_nic made it, and
# neither it nor anything else on the host answers to <ifname>.
assert_home_without() {
    assert_nic_home
    assert_altnames host "$NIC"
    assert_no_link host "$1"
}

###########################################################################

@test "default naming: the NIC keeps its host name and answers to CNI_IFNAME (net1, eth0); the result names CNI_IFNAME; DEL takes the name off" {
    standard_nic
    local ifname
    for ifname in net1 eth0; do
        run_plugin ADD "$CID" "$POD_NETNS" "$ifname" "$(multus_config)"
        assert_plugin_ok
        assert_link_up pod "$NIC"
        assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
        assert_answers_to_cni_ifname "$ifname"
        # what the runtime and chained plugins do with the result's name works
        assert_addrs pod "$ifname" "$NIC_V4" "$NIC_V6"

        run_plugin DEL "$CID" "$POD_NETNS" "$ifname" "$(multus_config)"
        assert_plugin_ok_silent
        assert_home_without "$ifname"
        assert_no_link pod "$NIC"
        assert_no_link pod "$ifname"
    done
}

@test "a chained tuning (mtu, promisc) acting on CNI_IFNAME finds the NIC under the default naming; DEL in reverse order restores everything" {
    standard_nic
    local conf tuning result
    conf=$(config_for "net-$TID" "{\"cniVersion\":\"1.0.0\",\"deviceID\":\"$PCI\"}")
    tuning=$(jq -cn --arg name "net-$TID" --arg dir "$WORKDIR/tuning" \
        '{cniVersion: "1.0.0", name: $name, type: "tuning", mtu: 1400, promisc: true, dataDir: $dir}')

    # ADD as libcni runs a conflist: each plugin gets the previous one's result
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    result=$output
    run_bare_plugin "$CNI_PLUGIN_DIR/tuning" ADD "$CID" "$POD_NETNS" net1 \
        "$(jq -c --argjson prev "$result" '. + {prevResult: $prev}' <<<"$tuning")"
    assert_plugin_ok
    assert_json '.interfaces[0].name' net1
    assert_mtu pod "$NIC" 1400
    run_in_pod_ns ip -j link show dev "$NIC" | jq -e '.[0].flags | index("PROMISC")' >/dev/null ||
        die "tuning did not set promisc on $NIC: $(run_in_pod_ns ip link show dev "$NIC")"

    # DEL in reverse order, with the cached result as prevResult
    run_bare_plugin "$CNI_PLUGIN_DIR/tuning" DEL "$CID" "$POD_NETNS" net1 \
        "$(jq -c --argjson prev "$result" '. + {prevResult: $prev}' <<<"$tuning")"
    assert_plugin_ok_silent
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(jq -c --argjson prev "$result" '. + {prevResult: $prev}' <<<"$conf")"
    assert_plugin_ok_silent
    assert_home_without net1
    run_in_host_ns ip -j link show dev "$NIC" | jq -e '.[0].flags | index("PROMISC") | not' >/dev/null ||
        die "$NIC came home promiscuous: $(run_in_host_ns ip link show dev "$NIC")"
}

@test "CNI_IFNAME already taken in the pod: the NIC keeps its one name, the result names it; the pod's own net1 is left alone" {
    standard_nic
    run_in_pod_ns ip link add net1 type veth peer name "q${TID}"
    local mac
    mac=$(run_in_pod_ns ip -j link show dev net1 | jq -r '.[0].address')
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_altnames pod "$NIC"
    assert_json '.interfaces[0].name' "$NIC"
    assert_mac pod net1 "$mac"
    grep -q "$NIC does not answer to net1 in the pod" "$LOG_FILE" ||
        die "the log does not say why there is no alternative name: $(cat "$LOG_FILE")"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home_without net1
    assert_mac pod net1 "$mac"
}

@test "podInterfaceName cni: CNI_IFNAME is the kernel name, no alternative name in the pod or on the host" {
    standard_nic
    local conf
    conf=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"podInterfaceName\":\"cni\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    assert_altnames pod net1
    assert_json '.interfaces[0].name' net1
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_home_without net1
}

@test "the host has a net1 of its own when DEL comes: the name is taken off in the pod first, the NIC comes home, the host's net1 is untouched" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_answers_to_cni_ifname net1
    run_in_host_ns ip link add net1 type veth peer name "r${TID}"
    local mac
    mac=$(run_in_host_ns ip -j link show dev net1 | jq -r '.[0].address')

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_nic_home
    assert_altnames host "$NIC"
    assert_no_link pod "$NIC"
    assert_mac host net1 "$mac"
    assert_altnames host net1
}

@test "a rolled-back ADD takes the alternative name off too" {
    standard_nic
    # an IPv6 route whose preferred source is an address of another host
    # interface: the pod cannot have it, so ADD fails after the NIC got net1
    run_in_host_ns ip -6 addr add 2001:db8:98::9/64 dev "${NIC}p" nodad
    run_in_host_ns ip -6 route add 2001:db8:97::/48 dev "$NIC" src 2001:db8:98::9 ||
        die "cannot add the unmovable route"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 102
    grep -q "$NIC also answers to net1 in the pod" "$LOG_FILE" ||
        die "the name was never given, so this proves nothing: $(cat "$LOG_FILE")"
    assert_home_without net1
    assert_no_link pod "$NIC"
}

@test "GC releasing an attachment takes the alternative name off" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"cniVersion\":\"1.1.0\",\"deviceID\":\"$PCI\"}")"
    assert_plugin_ok
    assert_answers_to_cni_ifname net1
    run_plugin GC "<unset>" "<unset>" "<unset>" \
        "$(config_for "net-$TID" '{"cniVersion":"1.1.0","cni.dev/valid-attachments":[]}')"
    assert_plugin_ok_silent
    assert_home_without net1
    assert_no_link pod "$NIC"
}

@test "restore --force taking the NIC out of a live pod takes the alternative name off" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_answers_to_cni_ifname net1
    run_admin restore "$PCI" --force
    assert_admin_ok
    [[ $output == *"restored $NIC ($CID/net1)"* ]] || die "stdout does not say it: $output"
    assert_home_without net1
    assert_no_link pod "$NIC"
}

#!/usr/bin/env bats
# -*- bats -*-
#
# CHECK (0.4.0+), GC and STATUS (1.1.0).

load helpers

add_with_version() {
    local version=$1
    standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    CONF=$(config_for "proto-$TID" "{\"cniVersion\":\"$version\",\"deviceID\":\"$PCI\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    PREV=$output
    CHECK_CONF=$(jq -c --argjson prev "$PREV" '. + {prevResult: $prev}' <<<"$CONF")
}

@test "CHECK passes after ADD at 0.4.0, 1.0.0 and 1.1.0" {
    add_with_version 0.4.0
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_plugin_ok_silent
    for v in 1.0.0 1.1.0; do
        conf=$(jq -c --arg v "$v" '.cniVersion = $v | .prevResult.cniVersion = $v' <<<"$CHECK_CONF")
        run_plugin CHECK "$CID" "$POD_NETNS" net1 "$conf"
        assert_plugin_ok_silent
    done
}

@test "CHECK fails (105) when an address of the result is gone, the link is down or is another MAC" {
    add_with_version 1.0.0
    run_in_pod_ns ip addr del "$NIC_V6" dev "$NIC"
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_cni_error 105
    assert_json .msg "address $NIC_V6 is missing from $NIC in the pod"
    run_in_pod_ns ip addr add "$NIC_V6" dev "$NIC" nodad

    run_in_pod_ns ip link set "$NIC" address 02:00:00:00:77:01
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_cni_error 105
    assert_msg_contains "is not the device that was added (MAC 02:00:00:00:77:01 where the result says"
    run_in_pod_ns ip link set "$NIC" address "$NIC_MAC_ADDR"

    run_in_pod_ns ip link set "$NIC" down
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_cni_error 105
    assert_json .msg "$NIC is down in the pod"
}

@test "CHECK judges the chain's result: another MTU, a moved route or an extra address is no failure; an MTU the result states must hold" {
    add_with_version 1.1.0
    # What a later plugin of the chain may do without rewriting the result.
    run_in_pod_ns ip link set "$NIC" mtu 1300
    run_in_pod_ns ip route del 10.99.0.0/16
    run_in_pod_ns ip addr add 10.88.0.2/24 dev "$NIC"
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_plugin_ok_silent
    # A later plugin that wrote the MTU into the result: it must be the link's.
    local rewritten
    rewritten=$(jq -c '.prevResult.interfaces[0].mtu = 1300' <<<"$CHECK_CONF")
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$rewritten"
    assert_plugin_ok_silent
    run_in_pod_ns ip link set "$NIC" mtu 1280
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$rewritten"
    assert_cni_error 105
    assert_json .msg "$NIC has MTU 1280 in the pod, the result says 1300"
}

@test "CHECK of a NIC that left the pod fails (105)" {
    add_with_version 1.0.0
    run_in_pod_ns ip link set "$NIC" netns "$HOST_NS_PID"
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_cni_error 105
    [[ $output == *"is not in the pod"* ]] || die "$output"
}

@test "CHECK needs 0.4.0+ (1), prevResult (7) and a known attachment (3)" {
    add_with_version 1.0.0
    conf=$(jq -c '.cniVersion = "0.3.1"' <<<"$CHECK_CONF")
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$conf"
    assert_cni_error 1
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 7
    run_plugin CHECK "other$TID" "$POD_NETNS" net1 "$CHECK_CONF"
    assert_cni_error 3
}

@test "GC releases the attachments missing from cni.dev/valid-attachments and leaves the listed ones" {
    local i
    for i in 0 1 2; do
        make_nic "n${TID}$i" "0000:5e:00.$i" "10.80.$i.2/24"
    done
    gc_conf() {
        config_for "gc-$TID" "{\"cniVersion\":\"1.1.0\",\"deviceID\":\"0000:5e:00.$1\"}"
    }
    for i in 0 1 2; do
        run_plugin ADD "${CID}c$i" "$POD_NETNS" "net$i" "$(gc_conf "$i")"
        assert_plugin_ok
    done
    # another network's attachments are never touched by our GC
    make_nic "n${TID}9" "0000:5e:00.7" "10.80.9.2/24"
    other=$(config_for "other-$TID" "{\"cniVersion\":\"1.1.0\",\"deviceID\":\"0000:5e:00.7\"}")
    run_plugin ADD "${CID}o" "$POD_NETNS" net9 "$other"
    assert_plugin_ok

    valid=$(jq -cn --arg a "${CID}c0" --arg c "${CID}c2" \
        '[{containerID: $a, ifname: "net0"}, {containerID: $c, ifname: "net2"}]')
    conf=$(config_for "gc-$TID" "{\"cniVersion\":\"1.1.0\",\"cni.dev/valid-attachments\":$valid}")
    run_plugin GC "<unset>" "<unset>" "<unset>" "$conf"
    assert_plugin_ok_silent

    assert_addrs host "n${TID}1" "10.80.1.2/24"
    assert_link_up host "n${TID}1"
    [[ ! -e $(state_file "${CID}c1" net1) ]] || die "released attachment still has state"
    assert_addrs pod "n${TID}0" "10.80.0.2/24"
    assert_addrs pod "n${TID}2" "10.80.2.2/24"
    assert_addrs pod "n${TID}9" "10.80.9.2/24"

    # an empty list releases the rest of this network
    conf=$(config_for "gc-$TID" '{"cniVersion":"1.1.0","cni.dev/valid-attachments":[]}')
    run_plugin GC "<unset>" "<unset>" "<unset>" "$conf"
    assert_plugin_ok_silent
    assert_addrs host "n${TID}0" "10.80.0.2/24"
    assert_addrs host "n${TID}2" "10.80.2.2/24"
    assert_addrs pod "n${TID}9" "10.80.9.2/24"
    # the runtime's DEL after GC is a no-op
    run_plugin DEL "${CID}c0" "$POD_NETNS" net0 "$(gc_conf 0)"
    assert_plugin_ok_silent
}

@test "STATUS: ready (exit 0, no output) with host-device and a usable state dir; 50 otherwise; 1 before 1.1.0" {
    conf=$(config_for "st-$TID" '{"cniVersion":"1.1.0"}')
    run_plugin STATUS "<unset>" "<unset>" "<unset>" "$conf"
    assert_plugin_ok_silent

    # a delegate the node allows but CNI_PATH lacks
    write_policy '{"delegates":["host-device","no-such-plugin"]}'
    conf=$(config_for "st-$TID" '{"cniVersion":"1.1.0","delegate":"no-such-plugin"}')
    run_plugin STATUS "<unset>" "<unset>" "<unset>" "$conf"
    assert_cni_error 50

    touch "$WORKDIR/file"
    write_policy "{\"stateDir\":\"$WORKDIR/file/state\"}"
    conf=$(config_for "st-$TID" '{"cniVersion":"1.1.0"}')
    run_plugin STATUS "<unset>" "<unset>" "<unset>" "$conf"
    assert_cni_error 50
    [[ $output == *"state dir is not usable"* ]] || die "$output"

    conf=$(config_for "st-$TID" '{"cniVersion":"1.0.0"}')
    run_plugin STATUS "<unset>" "<unset>" "<unset>" "$conf"
    assert_cni_error 1
}

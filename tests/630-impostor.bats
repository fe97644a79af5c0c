#!/usr/bin/env bats
#
# A tenant with CAP_NET_ADMIN in its pod swaps a link of its own in for the NIC:
# it renames the NIC away and creates a veth with the NIC's host name, MAC and
# alias, whose peer stays in the pod. host-device DEL brings that veth home by
# name. The give-back must put none of the host's addresses or routes on it (the
# pod would receive that traffic through the peer), and must give back the NIC
# itself or fail with the state kept. The test's NICs are veths themselves, so
# what tells them apart here is where the other end is (the NIC's peer is on the
# host, the impostor's in the pod); a PCI function's netdev is also told by its
# kind and parent device (unit-tested).

load helpers

# swap_in_impostor: in the pod, $NIC becomes r$TID and a veth named $NIC, with
# $NIC's MAC and alias, takes its place (peer i${TID}p stays in the pod).
# Sets IMPOSTOR_INDEX.
swap_in_impostor() {
    run_in_pod_ns ip link set "$NIC" down || die "cannot take $NIC down in the pod"
    run_in_pod_ns ip link set "$NIC" name "r$TID" || die "cannot rename $NIC in the pod"
    run_in_pod_ns ip link add "$NIC" address "$NIC_MAC_ADDR" type veth peer name "i${TID}p" ||
        die "cannot create the impostor veth in the pod"
    run_in_pod_ns ip link set "$NIC" alias "$NIC" up
    IMPOSTOR_INDEX=$(run_in_pod_ns ip -j link show dev "$NIC" | jq -r '.[0].ifindex')
    [[ $IMPOSTOR_INDEX =~ ^[0-9]+$ ]] || die "no index for the impostor: $IMPOSTOR_INDEX"
}

# assert_impostor_got_nothing: the link of index $IMPOSTOR_INDEX on the host (if
# it is there) carries none of the NIC's addresses and no route.
assert_impostor_got_nothing() {
    local addrs routes
    addrs=$(run_in_host_ns ip -j addr show | jq -c --argjson i "$IMPOSTOR_INDEX" \
        '[.[] | select(.ifindex == $i) | .addr_info[] | select(.scope == "global") | .local]')
    [[ $addrs == "[]" ]] || die "the impostor got host addresses: $addrs"
    local name
    name=$(run_in_host_ns ip -j link show | jq -r --argjson i "$IMPOSTOR_INDEX" '.[] | select(.ifindex == $i) | .ifname')
    if [[ -n $name ]]; then
        routes=$(run_in_host_ns ip -j route show dev "$name" | jq -c '[.[].dst]')
        [[ $routes == "[]" ]] || die "the impostor $name got host routes: $routes"
        [[ $name != "$NIC" ]] || die "the impostor still holds the NIC's name $NIC"
    fi
}

@test "DEL: a veth the pod made with the NIC's name, MAC and alias gets nothing of the host's; the NIC itself comes back" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    swap_in_impostor

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent

    assert_impostor_got_nothing
    assert_nic_restored
    # It is the NIC itself that is home: its peer is the one make_nic gave it.
    local peer
    peer=$(run_in_host_ns ip -j link show dev "$NIC" | jq -r '.[0].link')
    [[ $peer == "${NIC}p" ]] || die "$NIC on the host is not the NIC (its peer is '$peer')"
    assert_no_link pod "r$TID"
    grep -q "is not it" "$LOG_FILE" || die "the impostor is not in the log: $(cat "$LOG_FILE")"
}

@test "DEL: the NIC hidden in the pod under another MAC and without net1 beside the impostor: DEL fails (100), state kept, nothing on the impostor" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    swap_in_impostor
    run_in_pod_ns ip link property del dev "r$TID" altname net1 || die "cannot drop net1 in the pod"
    run_in_pod_ns ip link set "r$TID" address 02:de:ad:00:00:01 || die "cannot change the NIC's MAC in the pod"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 100
    assert_msg_contains "is not the NIC"
    assert_msg_contains "state is kept"

    assert_impostor_got_nothing
    [[ -e $(state_file "$CID" net1) ]] || die "the state was removed"
    assert_link_exists pod "r$TID"
    assert_no_route host 10.99.0.0/16
}

#!/usr/bin/env bats
# -*- bats -*-
#
# What a tenant with CAP_NET_ADMIN in its own netns does to the NIC it was given
# must not come home with it: alternative names it added (a name the node
# creates later, another NIC's host name) and a MAC it set (another tenant's).

load helpers

# in_pod <netns> CMD...: a command in that pod netns.
in_pod() {
    local netns=$1
    shift
    nsenter --net="$netns" "$@"
}

@test "alternative names and a MAC the tenant gave the NIC stay in the pod; DEL brings it home as captured" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    run_in_pod_ns ip link property add dev "$NIC" altname "cni$TID" || die "cannot add cni$TID in the pod"
    run_in_pod_ns ip link property add dev "$NIC" altname "x$TID" || die "cannot add x$TID in the pod"
    run_in_pod_ns ip link set "$NIC" address 02:11:22:33:44:55 || die "cannot set a MAC in the pod"
    assert_altnames pod "$NIC" net1 "cni$TID" "x$TID"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_altnames host "$NIC"
    assert_no_link host "cni$TID"
    assert_no_link host "x$TID"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_nic_restored
}

@test "a tenant naming its NIC after another pod's NIC does not block that pod's DEL" {
    local a=a$TID b=b$TID pod_b
    make_nic "$a" 0000:5e:00.1 10.84.1.2/24
    make_nic "$b" 0000:5e:00.2 10.84.2.2/24
    local mac_a mac_b
    mac_a=$(nic_mac "$a")
    mac_b=$(nic_mac "$b")
    new_pod_ns
    pod_b=$NEW_POD_NETNS
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config 0000:5e:00.1)"
    assert_plugin_ok
    run_plugin ADD "${CID}b" "$pod_b" net1 "$(multus_config 0000:5e:00.2)"
    assert_plugin_ok
    # Tenant A squats B's host name and takes B's MAC.
    run_in_pod_ns ip link property add dev "$a" altname "$b" || die "cannot add $b in the pod"
    run_in_pod_ns ip link set "$a" address "$mac_b" || die "cannot set a MAC in the pod"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config 0000:5e:00.1)"
    assert_plugin_ok_silent
    assert_altnames host "$a"
    assert_mac host "$a" "$mac_a"
    assert_addrs host "$a" 10.84.1.2/24

    run_plugin DEL "${CID}b" "$pod_b" net1 "$(multus_config 0000:5e:00.2)"
    assert_plugin_ok_silent
    assert_answers_to host "$b" "$b"
    assert_mac host "$b" "$mac_b"
    assert_addrs host "$b" 10.84.2.2/24
    assert_addrs host "$a" 10.84.1.2/24
}

@test "a NIC brought home with another pod's MAC is not renamed by that pod's DEL after its netns died" {
    local x=x$TID y=y$TID pod_y pod_y_pid
    make_nic "$x" 0000:5e:00.1 10.85.1.2/24
    make_nic "$y" 0000:5e:00.2 10.85.2.2/24
    local mac_y
    mac_y=$(nic_mac "$y")
    new_pod_ns
    pod_y=$NEW_POD_NETNS
    pod_y_pid=${EXTRA_NS_PIDS[-1]}
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config 0000:5e:00.1)"
    assert_plugin_ok
    run_plugin ADD "${CID}y" "$pod_y" net1 "$(multus_config 0000:5e:00.2)"
    assert_plugin_ok
    run_in_pod_ns ip link set "$x" address "$mac_y" || die "cannot set a MAC in the pod"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config 0000:5e:00.1)"
    assert_plugin_ok_silent
    # Y's netns dies before its DEL: its veth dies with it, as a NIC that is unplugged.
    kill -9 "$pod_y_pid"
    wait "$pod_y_pid" 2>/dev/null || true

    run_plugin DEL "${CID}y" "$pod_y" net1 "$(multus_config 0000:5e:00.2)"
    assert_plugin_ok_silent
    assert_link_exists host "$x"
    assert_addrs host "$x" 10.85.1.2/24
    assert_no_link host "$y"
}

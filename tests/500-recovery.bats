#!/usr/bin/env bats
# -*- bats -*-
#
# Never strand a NIC: DEL after the netns is gone, crashes at four points of ADD
# (every crash point: 560-crash-everywhere.bats), ADD failing half way, corrupt
# state, the default-route guard.

load helpers

@test "netns gone: DEL finds the NIC the kernel handed back as net1, DOWN, without IPs, and restores it" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    hand_back_to_host "$NIC" net1
    kill_pod_netns
    assert_link_down host net1

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_no_link host net1
    assert_nic_restored
}

@test "netns gone: DEL finds a NIC handed back under a kernel name (dev7) by MAC" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    hand_back_to_host "$NIC" dev7
    kill_pod_netns

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_no_link host dev7
    assert_nic_restored
}

@test "netns gone and DEL called with an empty CNI_NETNS: the NIC still comes back" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    hand_back_to_host "$NIC" net1
    kill_pod_netns

    run_plugin DEL "$CID" "" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "netns gone and the device gone with it (a veth): DEL succeeds and forgets the attachment" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    kill_pod_netns
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    [[ ! -e $(state_file "$CID" net1) ]] || die "state file kept for a device that no longer exists"
    grep -q "neither on the host nor in the pod" "$LOG_FILE" || die "the loss is not logged: $(cat "$LOG_FILE")"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
}

# Crash injection: the plugin SIGKILLs itself at a named point of ADD; the
# runtime's next DEL must restore the NIC fully.
crash_then_del() {
    local point=$1
    "$PLUGIN" --version | grep -q 'fault injection built in' ||
        die "$PLUGIN was built without the fault points: build it with 'cargo build --features test-faults' (scripts/test.sh does)"
    rich_nic
    run_plugin_env "AMD_HOST_DEVICE_TEST_FAULT=$point" ADD "$CID" "$POD_NETNS" net1 "$CONF"
    [[ $status -eq 137 ]] || die "expected the plugin to be SIGKILLed at $point (137), got $status"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
    # and the NIC is usable again
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "crash before the state write: DEL restores (nothing had moved)" {
    crash_then_del add-after-capture
}

@test "crash right after the state write: DEL restores" {
    crash_then_del add-after-state-write
}

@test "crash after host-device moved the NIC (fault point): DEL restores" {
    crash_then_del add-after-delegate
}

@test "crash after everything but the result: DEL restores" {
    crash_then_del add-before-result
}

@test "crash after host-device moved the NIC (a delegate that kills its parent): DEL restores" {
    rich_nic
    mkdir -p "$WORKDIR/cni"
    cat >"$WORKDIR/cni/host-device" <<EOF
#!/bin/sh
$CNI_PLUGIN_DIR/host-device "\$@"
kill -9 \$PPID
EOF
    chmod +x "$WORKDIR/cni/host-device"
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" run_plugin_env "" ADD "$CID" "$POD_NETNS" net1 "$CONF"
    [[ $status -eq 137 ]] || die "expected the plugin to be SIGKILLed by its delegate, got $status"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6" # host-device did its part
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "ADD fails half way (routes cannot be added in the pod): rolled back, code 102" {
    rich_nic
    # a route whose preferred source lives on another host interface cannot exist in the pod
    run_in_host_ns ip addr add 198.51.100.9/24 dev "${NIC}p"
    run_in_host_ns ip route add 10.98.0.0/16 dev "$NIC" src 198.51.100.9
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 102
    [[ $output == *"route 10.98.0.0/16"* ]] || die "message does not name the route: $output"
    assert_nic_restored
    run_in_host_ns ip -j route show 10.98.0.0/16 | jq -e 'length == 1' >/dev/null ||
        die "the unmovable route is not back on the host"
}

@test "ADD fails half way (host-device cannot rename in the pod): rolled back to the host" {
    rich_nic
    # CNI_IFNAME is taken in the pod, so host-device's rename after the move fails
    run_in_pod_ns ip link add net1 type veth peer name net1p
    conf=$(jq -c '. + {podInterfaceName: "cni"}' <<<"$CONF")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_cni_error 103
    assert_nic_restored
    assert_link_exists pod net1
}

@test "ADD into a netns path that is not a netns: code 4, nothing moved" {
    rich_nic
    touch "$WORKDIR/not-a-netns"
    run_plugin ADD "$CID" "$WORKDIR/not-a-netns" net1 "$CONF"
    assert_cni_error 4
    assert_json .msg "invalid CNI_NETNS: $WORKDIR/not-a-netns is not a network namespace: a regular file (a namespace's mount point left behind after it was deleted?)"
    run_plugin ADD "$CID" "$WORKDIR/no-such-file" net1 "$CONF"
    assert_cni_error 4
    assert_json .msg "invalid CNI_NETNS: $WORKDIR/no-such-file is not a network namespace: nothing is there"
    assert_nic_restored
}

@test "truncated state file: DEL returns the NIC with what could be read, logs the loss, removes the file" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    f=$(state_file "$CID" net1)
    # cut it inside the routes: name, MAC, MTU, addresses survive
    head -c "$(grep -b -o '"routes"' "$f" | cut -d: -f1)" "$f" >"$f.cut" && mv "$f.cut" "$f"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mtu host "$NIC" 1400
    assert_link_up host "$NIC"
    assert_no_link pod "$NIC"
    [[ ! -e $f ]] || die "corrupt state file not removed"
    grep -q "corrupt" "$LOG_FILE" && grep -q "lost: routes" "$LOG_FILE" ||
        die "the log does not say what was lost: $(cat "$LOG_FILE")"
}

@test "garbage state file: DEL still brings the NIC home under its name and UP" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    echo 'this is not json' >"$(state_file "$CID" net1)"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_link_exists host "$NIC"
    assert_link_up host "$NIC"
    assert_no_link pod "$NIC"
    [[ ! -e $(state_file "$CID" net1) ]] || die "corrupt state file not removed"
}

@test "a device claimed by another attachment: the second ADD fails (101) and its DEL leaves the first pod alone" {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    new_pod_ns
    run_plugin ADD "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_cni_error 101
    [[ $output == *"claimed by container $CID interface net1"* ]] || die "message does not name the owner: $output"
    run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up pod "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "the interface carrying the host's default route is refused (104) unless the node policy has allowDefaultRouteDevice" {
    rich_nic
    add_route default 10.77.0.1 "$NIC"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 104
    [[ $output == *allowDefaultRouteDevice* ]] || die "message does not say how to allow it: $output"
    assert_nic_restored
    assert_route host default 10.77.0.1 "$NIC"

    write_policy '{"allowDefaultRouteDevice": true}'
    conf=$CONF
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    assert_route pod default 10.77.0.1 "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    assert_nic_restored
    assert_route host default 10.77.0.1 "$NIC"
}

@test "a delegate that prints garbage: code 103, the NIC is rolled back" {
    rich_nic
    mkdir -p "$WORKDIR/cni"
    printf '#!/bin/sh\ncat >/dev/null\necho "this is not a result"\n' >"$WORKDIR/cni/host-device"
    chmod +x "$WORKDIR/cni/host-device"
    PLUGIN_CNI_PATH="$WORKDIR/cni" run_plugin_env "" ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 103
    [[ $output == *"unusable result"* ]] || die "message does not say the result was unusable: $output"
    assert_nic_restored
}

@test "an unwritable state dir: code 5 and nothing moved" {
    rich_nic
    touch "$WORKDIR/file"
    write_policy "{\"stateDir\":\"$WORKDIR/file/state\"}"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_cni_error 5
    assert_nic_restored
}

#!/usr/bin/env bats
#
# Config options: podInterfaceName, ipam passthrough, selectors, admin state,
# and result equivalence with bare host-device + static.

load helpers

@test "podInterfaceName \"cni\": the pod sees CNI_IFNAME (net1); DEL restores the host name" {
    standard_nic
    local config
    config=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"pciBusID\":\"$PCI\",\"podInterfaceName\":\"cni\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_link_up pod net1
    assert_addrs pod net1 "$NIC_V4" "$NIC_V6"
    assert_no_link pod "$NIC"
    assert_no_link host "$NIC"
    assert_json '.interfaces[0].name' net1

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_no_link pod net1
    assert_no_link host net1
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "podInterfaceName \"host\" (explicit) keeps the host name in the pod, answering to net1" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 \
        "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"podInterfaceName\":\"host\"}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_answers_to pod net1 "$NIC"
    assert_json '.interfaces[0].name' net1
}

@test "host name already taken in the pod: falls back to CNI_IFNAME and reports it; DEL restores" {
    standard_nic
    # a link called like the NIC already lives in the pod
    run_in_pod_ns ip link add "$NIC" type veth peer name "x${TID}"
    local config
    config=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod net1 "$NIC_V4" "$NIC_V6"
    assert_mac pod net1 "$NIC_MAC_ADDR"
    assert_json '.interfaces[0].name' net1
    assert_no_link host "$NIC"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_no_link pod net1
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    # the pod's own link is left alone
    assert_link_exists pod "$NIC"
}

@test "user ipam is passed through: the pod gets its address; DEL restores the captured ones" {
    standard_nic
    local config
    config=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",
        \"ipam\":{\"type\":\"static\",\"addresses\":[{\"address\":\"192.168.77.5/24\"}]}}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" 192.168.77.5/24
    assert_result_addrs 192.168.77.5/24

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up host "$NIC"
}

@test "selection by device (host interface name)" {
    standard_nic
    local config
    config=$(config_for "net-$TID" "{\"device\":\"$NIC\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "selection by device works without any PCI entry" {
    NIC=n${TID}
    make_nic "$NIC" "" 10.77.0.2/24
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"device\":\"$NIC\"}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" 10.77.0.2/24
}

@test "selection by hwaddr (MAC)" {
    standard_nic
    make_nic "o${TID}" 0000:5e:00.2 10.70.0.2/24
    local config
    config=$(config_for "net-$TID" "{\"hwaddr\":\"$NIC_MAC_ADDR\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    assert_link_exists host "o${TID}"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "selection by hwaddr in upper case" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 \
        "$(config_for "net-$TID" "{\"hwaddr\":\"${NIC_MAC_ADDR^^}\"}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "deviceID, device and hwaddr that agree are accepted" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 \
        "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"device\":\"$NIC\",\"hwaddr\":\"$NIC_MAC_ADDR\"}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "an administratively DOWN NIC comes back DOWN after DEL" {
    NIC_DOWN=1 standard_nic
    assert_link_down host "$NIC"
    local config
    config=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_no_link host "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_link_down host "$NIC"
    assert_link_exists host "$NIC"
    # IPv4 survives on a DOWN link, so it must have been restored
    link_addrs host "$NIC" | grep -qx "$NIC_V4" ||
        die "IPv4 $NIC_V4 not restored on DOWN $NIC: $(run_in_host_ns ip addr show dev "$NIC")"
}

@test "a NIC with no addresses: ADD and DEL work (no ipam passed to host-device)" {
    NIC=n${TID}
    PCI=0000:5e:00.1
    make_nic "$NIC" "$PCI"
    local config
    config=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_link_exists pod "$NIC"
    assert_addrs pod "$NIC"
    assert_json '.interfaces[0].name' net1
    assert_json '(.ips // []) | length' 0
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_link_up host "$NIC"
}

@test "logFile gets the log lines; stdout stays pure JSON" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")"
    assert_plugin_ok
    [[ -s $LOG_FILE ]] || die "logFile $LOG_FILE is empty or missing after a debug-level ADD"
    # one line per event: time, level, command, network, container, ifname, device, what happened
    grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info ADD network=net-$TID container=$CID ifname=net1 device=$NIC captured $NIC " "$LOG_FILE" ||
        die "no capture line in the expected format: $(cat "$LOG_FILE")"
    grep -qE " info ADD .* device=$NIC attached $NIC to " "$LOG_FILE" || die "no outcome line: $(cat "$LOG_FILE")"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")"
    assert_plugin_ok_silent
    grep -qE " info DEL .* device=$NIC restored $NIC " "$LOG_FILE" || die "no restore line: $(cat "$LOG_FILE")"
    [[ $(stat -c %a "$LOG_FILE") == 600 ]] || die "log file mode $(stat -c %a "$LOG_FILE"), expected 600"
    # info never logs a whole config; debug may. The node's log file, the config's level.
    write_policy "{\"logFile\":\"$WORKDIR/info.log\"}"
    conf=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"logLevel\":\"info\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    ! grep -q '"cniVersion"' "$WORKDIR/info.log" || die "a config was logged at info: $(cat "$WORKDIR/info.log")"
    [[ -s $WORKDIR/info.log ]] || die "nothing logged at info"
}

# ---------------------------------------------------------------------------
# Result equivalence with bare host-device + static for the same addresses.
# Both runs use the same NIC (ADD+DEL with amd-host-device, then bare
# host-device with CNI_IFNAME=<host name>), so MAC and sandbox match too.

# Normalise: key order, address order, empty dns/routes (absent == empty).
normalise_result() {
    jq -S '.ips |= ((. // []) | sort_by(.address))
           | if (.dns // {}) == {} then del(.dns) else . end
           | if (.routes // []) == [] then del(.routes) else . end'
}

compare_with_bare_host_device() {
    local v=$1
    standard_nic
    local amd_config bare_config amd_result bare_result
    amd_config=$(config_for "net-$TID" "{\"cniVersion\":\"$v\",\"deviceID\":\"$PCI\",\"pciBusID\":\"$PCI\"}")
    bare_config=$(jq -cn --arg v "$v" --arg name "net-$TID" --arg dev "$NIC" --arg a4 "$NIC_V4" --arg a6 "$NIC_V6" \
        '{cniVersion: $v, name: $name, type: "host-device", device: $dev,
          ipam: {type: "static", addresses: [{address: $a4}, {address: $a6}]}}')

    run_plugin ADD "$CID" "$POD_NETNS" net1 "$amd_config"
    assert_plugin_ok
    amd_result=$(normalise_result <<<"$output")
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$amd_config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"

    run_bare_plugin "$CNI_PLUGIN_DIR/host-device" ADD "$CID" "$POD_NETNS" net1 "$bare_config"
    assert_plugin_ok
    bare_result=$(normalise_result <<<"$output")

    [[ $amd_result == "$bare_result" ]] || die "amd-host-device result differs from bare host-device+static:
--- host-device
+++ amd-host-device
$(diff -u <(echo "$bare_result") <(echo "$amd_result") | tail -n +3)"
}

@test "result equals bare host-device+static for the same addresses (0.3.1)" {
    compare_with_bare_host_device 0.3.1
}

@test "result equals bare host-device+static for the same addresses (1.0.0)" {
    compare_with_bare_host_device 1.0.0
}

@test "policy routing: a route in a rule's table follows the NIC and comes back; the local table is left alone" {
    standard_nic
    run_in_host_ns ip rule add from 10.77.0.2 table 100 priority 1000
    run_in_host_ns ip route add 10.98.0.0/16 via 10.77.0.1 dev "$NIC" table 100
    run_in_host_ns ip route add 10.97.0.0/16 via 10.77.0.1 dev "$NIC" table 200 # no rule: not captured
    conf=$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok
    run_in_pod_ns ip -j route show table 100 | jq -e --arg d "$NIC" 'any(.[]; .dst == "10.98.0.0/16" and .dev == $d)' >/dev/null ||
        die "table 100 route not in the pod: $(run_in_pod_ns ip route show table 100)"
    jq -e '.host.routes | length == 1 and .[0].table == 100' "$(state_file "$CID" net1)" >/dev/null ||
        die "captured routes: $(jq -c .host.routes "$(state_file "$CID" net1)")"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    run_in_host_ns ip -j route show table 100 | jq -e --arg d "$NIC" 'any(.[]; .dst == "10.98.0.0/16" and .gateway == "10.77.0.1" and .dev == $d)' >/dev/null ||
        die "table 100 route not restored: $(run_in_host_ns ip route show table 100)"
}

#!/usr/bin/env bats
#
# ADD moves the NIC into the pod with its addresses; DEL gives it back intact.

load helpers

@test "ADD via deviceID+pciBusID (Multus) moves the NIC into the pod under its host name (answering to net1) with all addresses, UP" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok

    # pod side: host name, every address, UP, same MAC; net1 is its alternative name
    assert_link_up pod "$NIC"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mac pod "$NIC" "$NIC_MAC_ADDR"
    assert_answers_to pod net1 "$NIC"
    # host side: gone
    assert_no_link host "$NIC"

    # result
    assert_json '.cniVersion' 0.3.1
    assert_json '.interfaces | length' 1
    assert_json '.interfaces[0].name' net1
    assert_json '.interfaces[0].sandbox' "$POD_NETNS"
    assert_json '.interfaces[0].mac' "$NIC_MAC_ADDR"
    assert_result_addrs "$NIC_V4" "$NIC_V6"
    assert_json '[.ips[].interface] | unique | tostring' '[0]'

    # state file: <stateDir>/<cid>-<CNI_IFNAME>.json, dir 0700, file 0600
    local sf
    sf=$(state_file "$CID" net1)
    [[ -f $sf ]] || die "state file $sf missing; state dir: $(ls -la "$STATE_DIR" 2>&1)"
    jq -e . "$sf" >/dev/null || die "state file is not JSON: $(cat "$sf")"
    [[ $(stat -c %a "$sf") == 600 ]] || die "state file mode $(stat -c %a "$sf"), expected 600"
    [[ $(stat -c %a "$STATE_DIR") == 700 ]] || die "state dir mode $(stat -c %a "$STATE_DIR"), expected 700"
}

@test "ADD via deviceID alone" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\"}")"
    assert_plugin_ok
    assert_link_up pod "$NIC"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    assert_json '.interfaces[0].name' net1
    assert_result_addrs "$NIC_V4" "$NIC_V6"
}

@test "ADD via runtimeConfig.deviceID alone" {
    standard_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"runtimeConfig\":{\"deviceID\":\"$PCI\"}}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
}

@test "ADD picks the right NIC among several PCI functions" {
    make_nic "a${TID}" 0000:5e:00.0 10.70.0.2/24
    standard_nic
    make_nic "c${TID}" 0000:5e:00.2 10.72.0.2/24
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    # the neighbours stay on the host, untouched
    assert_addrs host "a${TID}" 10.70.0.2/24
    assert_addrs host "c${TID}" 10.72.0.2/24
    assert_no_link pod "a${TID}"
    assert_no_link pod "c${TID}"
}

@test "DEL restores name, IPv4+IPv6 addresses (nodad kept), MTU, UP and routes; state removed" {
    NIC_MTU=1400 standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC"
    assert_mtu host "$NIC" 1400

    local config
    config=$(multus_config)
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_no_link host "$NIC"
    assert_no_route host 10.99.0.0/16
    [[ -f $(state_file "$CID" net1) ]] || die "no state file after ADD"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent

    assert_no_link pod "$NIC"
    assert_no_link pod net1
    assert_link_up host "$NIC"
    assert_no_altnames host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_addr_flag host "$NIC" "$NIC_V6" nodad
    assert_mtu host "$NIC" 1400
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC"
    [[ ! -e $(state_file "$CID" net1) ]] || die "state file still there after DEL: $(cat "$(state_file "$CID" net1)")"
}

@test "routes through the NIC are re-added in the pod and appended to the result" {
    standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_route pod 10.99.0.0/16 10.77.0.1 "$NIC"
    jq -e '.routes | any(.dst == "10.99.0.0/16" and .gw == "10.77.0.1")' <<<"$output" >/dev/null ||
        die "result routes lack {dst: 10.99.0.0/16, gw: 10.77.0.1}: $output"
}

@test "ADD then DEL leaves the host exactly as before (ip -j addr/link/route compared)" {
    NIC_MTU=1400 standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    # normalised snapshot: drop counters/ifindex-independent noise that legitimately changes
    snapshot() {
        {
            run_in_host_ns ip -j addr show dev "$NIC" |
                jq -S '[.[] | {ifname, mtu, address, flags: (.flags - ["LOWER_UP", "NO-CARRIER", "M-DOWN"]),
                        addrs: [.addr_info[] | select(.scope == "global") | del(.valid_life_time, .preferred_life_time, .label)] | sort_by(.local)}]'
            run_in_host_ns ip -j route show dev "$NIC" | jq -S 'sort_by(.dst)'
            run_in_host_ns ip -j -6 route show dev "$NIC" | jq -S '[.[] | select(.dst | startswith("fe80") | not) | del(.pref, .expires)] | sort_by(.dst)'
        }
    }
    local before after
    before=$(snapshot)
    add_del_ok "$(multus_config)"
    after=$(snapshot)
    [[ $before == "$after" ]] || die "host state differs after ADD+DEL:
$(diff <(echo "$before") <(echo "$after"))"
}

@test "DEL twice: both exit 0 with no output" {
    standard_nic
    local config
    config=$(multus_config)
    add_del_ok "$config"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "DEL without ADD: exit 0, no output, NIC untouched" {
    standard_nic
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link pod "$NIC"
}

@test "DEL without ADD and with an empty CNI_NETNS: exit 0, no output" {
    standard_nic
    run_plugin DEL "$CID" "" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "ADD, DEL, ADD again works (the NIC is reusable)" {
    standard_nic
    local config
    config=$(multus_config)
    add_del_ok "$config"
    run_plugin ADD "${CID}b" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
}

@test "a NIC already attached to one pod is refused to a second (code 101); the first keeps it" {
    standard_nic
    local config
    config=$(multus_config)
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok

    new_pod_ns
    run_plugin ADD "${CID}x" "$NEW_POD_NETNS" net1 "$config"
    assert_cni_error 101
    assert_link_up pod "$NIC"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link "$NEW_POD_NETNS" "$NIC"
    [[ -f $(state_file "$CID" net1) ]] || die "first attachment's state file is gone"

    # and the first attachment still comes back cleanly
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "two NICs into one pod as net1 and net2, then both DEL" {
    standard_nic
    make_nic "b${TID}" 0000:5e:00.2 10.78.0.2/24 2001:db8:78::2/64
    local c1 c2
    c1=$(multus_config)
    c2=$(multus_config 0000:5e:00.2)
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$c1"
    assert_plugin_ok
    run_plugin ADD "$CID" "$POD_NETNS" net2 "$c2"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_addrs pod "b${TID}" 10.78.0.2/24 2001:db8:78::2/64
    run_plugin DEL "$CID" "$POD_NETNS" net2 "$c2"
    assert_plugin_ok_silent
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$c1"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_addrs host "b${TID}" 10.78.0.2/24 2001:db8:78::2/64
    assert_link_up host "b${TID}"
}

@test "a 300-character CNI_CONTAINERID: DEL of it never added exits 0; ADD and DEL work, its state file name fits in 255 bytes" {
    standard_nic
    local long file
    long=$CID$(head -c $((300 - ${#CID})) /dev/zero | tr '\0' x)
    (( ${#long} == 300 )) || die "the id is ${#long} characters, not 300"

    run_plugin DEL "$long" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent

    run_plugin ADD "$long" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    file=$(find "$STATE_DIR" -maxdepth 1 -name '*.json' -printf '%f\n')
    [[ -n $file && $file != *$'\n'* ]] || die "expected one state file, found: [$file]"
    (( ${#file} <= 255 )) || die "the state file name is ${#file} bytes: $file"
    [[ $file == "${long:0:128}+"*"-net1.json" ]] || die "the state file name keeps no readable prefix of the id: $file"
    assert_json .containerId "$long" "$(cat "$STATE_DIR/$file")"

    run_plugin DEL "$long" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_nic_home
    assert_no_state_left "after DEL of the long id"
}

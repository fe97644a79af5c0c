#!/usr/bin/env bats
#
# kvp-ipoib-ipam: the IPAM plugin that returns the IPoIB address Hyper-V KVP
# publishes (key IPoIB_Data in /var/lib/hyperv/.kvp_pool_0). Every test writes
# its own pool file, which its node policy names as kvpPoolFile (what governs
# ipam.poolFile too); veths stand in for the IPoIB interfaces (a 6-byte MAC is
# looked up as is). Run directly, under bare host-device, and under
# amd-host-device's ipam passthrough.

load helpers

# The MACs and addresses our fake host publishes.
MAC_A=00:15:5d:33:ff:0b
MAC_B=00:15:5d:33:ff:0c
IP_A=172.16.1.4
IP_B=172.16.1.5
TWO_PAIRS="NUMPAIRS:2|00155D33FF0B:$IP_A|00155d33ff0c:$IP_B"

setup() {
    basic_setup
    kvp_setup
    # The node's pool is this test's: configs may name it, or leave it to the node. The
    # node's admin lets network configs use kvp-ipoib-ipam (ipamTypes).
    write_policy "{\"kvpPoolFile\":\"$POOL\",\"ipamTypes\":[\"static\",\"kvp-ipoib-ipam\"]}"
}

# ipam_config <cniVersion> <extra ipam json>: what host-device hands its IPAM.
ipam_config() {
    local extra=${2:-"{}"}
    jq -cn --arg v "$1" --arg pool "$POOL" --argjson extra "$extra" \
        '{cniVersion: $v, name: "ib-net", type: "host-device", device: "ib0",
          ipam: ({type: "kvp-ipoib-ipam", poolFile: $pool} + $extra)}'
}

# run_ipam <CMD> <config> [ifname]: the IPAM plugin, run as host-device runs it.
run_ipam() {
    run_bare_plugin "$KVP_IPAM" "$1" "$CID" "$POD_NETNS" "${3:-net1}" "$2"
}

# A veth in the pod, named <name>, with MAC <mac>: what host-device leaves
# there before it calls its IPAM.
pod_link() {
    run_in_pod_ns ip link add "$1" address "$2" type veth peer name "${1}p" ||
        die "cannot create $1 in the pod"
}

###########################################################################
# the plugin on its own
###########################################################################

@test "kvp-ipoib-ipam: VERSION lists the supported versions" {
    run_ipam VERSION '{}'
    assert_plugin_ok
    assert_json '.cniVersion' 1.1.0
    assert_json '.supportedVersions | join(",")' 0.3.0,0.3.1,0.4.0,1.0.0,1.1.0
}

@test "kvp-ipoib-ipam: ADD with an hwaddr override (20-byte IPoIB address) returns the KVP address, 0.3.1 and 1.0.0 shapes" {
    make_pool "$POOL" "$TWO_PAIRS"
    local ib=00:00:01:49:fe:80:00:00:00:00:00:00:00:15:5d:ff:fd:33:ff:0b
    run_ipam ADD "$(ipam_config 0.3.1 "{\"hwaddr\":\"$ib\"}")"
    assert_plugin_ok
    assert_json '.cniVersion' 0.3.1
    assert_json ".ips == [{version: \"4\", address: \"$IP_A/16\"}]" true
    assert_json 'has("interfaces")' false

    run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"${MAC_B^^}\",\"prefixLength\":24}")"
    assert_plugin_ok
    assert_json '.cniVersion' 1.0.0
    assert_json ".ips == [{address: \"$IP_B/24\"}]" true
}

@test "kvp-ipoib-ipam: ADD reads the MAC of CNI_IFNAME inside the pod" {
    make_pool "$POOL" "$TWO_PAIRS"
    pod_link net1 "$MAC_A"
    pod_link net2 "$MAC_B"
    run_ipam ADD "$(ipam_config 1.0.0)" net1
    assert_plugin_ok
    assert_result_addrs "$IP_A/16"
    run_ipam ADD "$(ipam_config 0.4.0)" net2
    assert_plugin_ok
    assert_result_addrs "$IP_B/16"
    assert_json '.ips[0].version' 4
}

@test "kvp-ipoib-ipam: DEL and CHECK succeed silently (no pool needed; DEL without a netns)" {
    local config
    config=$(ipam_config 1.0.0)
    [[ ! -e $POOL ]] || die "pool should not exist"
    run_ipam DEL "$config"
    assert_plugin_ok_silent
    run_ipam CHECK "$config"
    assert_plugin_ok_silent
    run_bare_plugin "$KVP_IPAM" DEL "$CID" "" net1 "$config"
    assert_plugin_ok_silent
}

@test "kvp-ipoib-ipam: missing pool file → 110 naming the path" {
    run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"$MAC_A\"}")"
    assert_cni_error 110
    assert_msg_contains "$POOL"
    assert_json '.cniVersion' 1.0.0
}

@test "kvp-ipoib-ipam: no IPoIB_Data record → 111 (only unrelated records; a near-miss key)" {
    : >"$POOL"
    kvp_record "$POOL" HostName hv-host-17
    kvp_record "$POOL" IPoIB_Dat "$TWO_PAIRS"
    run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"$MAC_A\"}")"
    assert_cni_error 111
    assert_msg_contains "no IPoIB_Data record"
    # A file of text garbage holds no record at all.
    echo "this is not a KVP pool" >"$POOL"
    run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"$MAC_A\"}")"
    assert_cni_error 111
}

@test "kvp-ipoib-ipam: garbage IPoIB_Data value → 112" {
    make_pool "$POOL" "garbage|||:zz"
    run_ipam ADD "$(ipam_config 0.3.1 "{\"hwaddr\":\"$MAC_A\"}")"
    assert_cni_error 112
    assert_msg_contains "NUMPAIRS"
    assert_json '.cniVersion' 0.3.1
}

@test "kvp-ipoib-ipam: pool truncated inside the IPoIB_Data record → 112" {
    make_pool "$POOL" "$TWO_PAIRS"
    truncate -s $((2 * 2560 + 512 + 30)) "$POOL"
    run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"$MAC_A\"}")"
    assert_cni_error 112
    assert_msg_contains "truncated"
}

@test "kvp-ipoib-ipam: NUMPAIRS not matching the pairs → 112; bad MAC or IPv4 → 112" {
    local value
    for value in "NUMPAIRS:3|00155D33FF0B:$IP_A" "NUMPAIRS:x|00155D33FF0B:$IP_A" \
        "NUMPAIRS:1|00155D33FF:$IP_A" "NUMPAIRS:1|00155D33FF0B:300.1.1.1"; do
        make_pool "$POOL" "$value"
        run_ipam ADD "$(ipam_config 1.0.0 "{\"hwaddr\":\"$MAC_A\"}")"
        assert_cni_error 112
    done
}

@test "kvp-ipoib-ipam: no entry for the interface's MAC → 113 naming the MAC" {
    make_pool "$POOL" "$TWO_PAIRS"
    pod_link net1 02:00:00:00:aa:01
    run_ipam ADD "$(ipam_config 1.0.0)" net1
    assert_cni_error 113
    assert_msg_contains 02:00:00:00:aa:01
}

@test "kvp-ipoib-ipam: CNI_IFNAME not in the pod → 100; bad prefixLength → 7; bad cniVersion → 1" {
    make_pool "$POOL" "$TWO_PAIRS"
    run_ipam ADD "$(ipam_config 1.0.0)" net9
    assert_cni_error 100
    run_ipam ADD "$(ipam_config 1.0.0 '{"prefixLength": 33}')"
    assert_cni_error 7
    assert_msg_contains ipam.prefixLength
    run_ipam ADD "$(ipam_config 0.2.0)"
    assert_cni_error 1
}

###########################################################################
# under host-device
###########################################################################

@test "host-device + kvp-ipoib-ipam: the pod's interface gets its KVP address; DEL gives the NIC back" {
    make_nic "ib${TID}" "" 10.77.0.2/24
    run_in_host_ns ip link set "ib${TID}" address "$MAC_B"
    make_pool "$POOL" "$TWO_PAIRS"
    local config
    config=$(jq -cn --arg dev "ib${TID}" --arg pool "$POOL" \
        '{cniVersion: "0.3.1", name: "ib-net", type: "host-device", device: $dev,
          ipam: {type: "kvp-ipoib-ipam", poolFile: $pool, prefixLength: 16}}')

    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_bare_plugin "$KVP_CNI_DIR/host-device" ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod net1 "$IP_B/16"
    assert_mac pod net1 "$MAC_B"
    assert_no_link host "ib${TID}"
    assert_result_addrs "$IP_B/16"
    assert_json '.ips[0].interface' 0
    assert_json '.interfaces[0].name' net1

    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_bare_plugin "$KVP_CNI_DIR/host-device" DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_no_link pod net1
    assert_link_exists host "ib${TID}"
}

###########################################################################
# under amd-host-device's ipam passthrough
###########################################################################

@test "amd-host-device + kvp-ipoib-ipam: the pod gets the KVP address; DEL restores the captured ones" {
    standard_nic
    run_in_host_ns ip link set "$NIC" address "$MAC_A"
    NIC_MAC_ADDR=$MAC_A
    make_pool "$POOL" "$TWO_PAIRS"
    local config
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg pool "$POOL" \
        '{deviceID: $pci, ipam: {type: "kvp-ipoib-ipam", poolFile: $pool, prefixLength: 16}}')")

    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$IP_A/16"
    assert_link_up pod "$NIC"
    assert_no_link host "$NIC"
    assert_result_addrs "$IP_A/16"
    assert_json '.interfaces[0].name' net1

    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_no_link pod "$NIC"
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mac host "$NIC" "$MAC_A"
}

@test "amd-host-device + kvp-ipoib-ipam: no KVP entry for the NIC → 103 with the IPAM's message, NIC rolled back" {
    standard_nic
    make_pool "$POOL" "$TWO_PAIRS"
    local config
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg pool "$POOL" \
        '{deviceID: $pci, ipam: {type: "kvp-ipoib-ipam", poolFile: $pool}}')")

    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_cni_error 103
    assert_msg_contains "$NIC_MAC_ADDR"
    assert_no_link pod "$NIC"
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

@test "amd-host-device + kvp-ipoib-ipam on a node whose ipamTypes does not list it (the default) → 7, nothing moves" {
    standard_nic
    make_pool "$POOL" "NUMPAIRS:1|${NIC_MAC_ADDR//:/}:$IP_A"
    write_policy "{\"kvpPoolFile\":\"$POOL\"}"
    local config
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" '{deviceID: $pci, ipam: {type: "kvp-ipoib-ipam"}}')")
    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_refused_untouched 7 "\"ipam\" type \"kvp-ipoib-ipam\" is not allowed by the node policy $POLICY_FILE"
    # addressSource needs no IPAM plugin, so no ipamTypes either
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"deviceID\": \"$PCI\", \"addressSource\": \"kvp\"}")"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$IP_A/16"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "{\"deviceID\": \"$PCI\", \"addressSource\": \"kvp\"}")"
    assert_plugin_ok_silent
    assert_nic_home
}

@test "amd-host-device addressSource \"kvp\": the pod gets the KVP address instead of the captured ones; DEL restores them" {
    standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    run_in_host_ns ip link set "$NIC" address "$MAC_A"
    make_pool "$POOL" "$TWO_PAIRS"
    local config
    # kvpPoolFile named as the node has it anyway: no override, so allowed
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg pool "$POOL" \
        '{deviceID: $pci, addressSource: "kvp", kvpPoolFile: $pool, kvpPrefixLength: 20}')")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$IP_A/20"
    assert_result_addrs "$IP_A/20"
    # the captured gateway is not reachable from the KVP subnet: no captured routes in the pod
    assert_no_route pod 10.99.0.0/16
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
}

@test "amd-host-device addressSource \"auto\": a NIC without addresses gets its KVP address, one with addresses keeps them" {
    make_nic "a${TID}" 0000:5e:00.5
    run_in_host_ns ip link set "a${TID}" address "$MAC_A"
    make_pool "$POOL" "$TWO_PAIRS"
    local config
    # the node's pool (the policy's kvpPoolFile): the config names none
    config=$(config_for "net-$TID" '{"deviceID": "0000:5e:00.5", "addressSource": "auto"}')
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "a${TID}" "$IP_A/16"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "a${TID}"

    standard_nic
    config=$(config_for "net2-$TID" "{\"deviceID\": \"$PCI\", \"addressSource\": \"auto\"}")
    run_plugin ADD "${CID}b" "$POD_NETNS" net2 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    run_plugin DEL "${CID}b" "$POD_NETNS" net2 "$config"
    assert_plugin_ok_silent

    # "kvp" without a pool is an error (110) and nothing moves
    write_policy "{\"kvpPoolFile\": \"$WORKDIR/no-such-pool\"}"
    config=$(config_for "net3-$TID" '{"deviceID": "0000:5e:00.5", "addressSource": "kvp"}')
    run_plugin ADD "${CID}c" "$POD_NETNS" net3 "$config"
    assert_cni_error 110
    assert_link_exists host "a${TID}"
}

#!/usr/bin/env bats
#
# CNI spec versions: the result comes back in the version the caller asked for.

load helpers

ALL_VERSIONS=(0.3.0 0.3.1 0.4.0 1.0.0 1.1.0)

# add_del_with_version <cniVersion>
add_del_with_version() {
    local v=$1 config
    standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    config=$(config_for "net-$TID" "$(jq -cn --arg v "$v" --arg pci "$PCI" \
        '{cniVersion: $v, deviceID: $pci, pciBusID: $pci}')")

    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_json '.cniVersion' "$v"
    assert_json '.interfaces[0].name' net1
    assert_json '.interfaces[0].sandbox' "$POD_NETNS"
    assert_result_addrs "$NIC_V4" "$NIC_V6"
    case $v in
    0.*)
        # 0.3.x/0.4.0: every ip carries version "4"/"6" matching its address
        assert_json '[.ips[] | select(.address | contains(":")) | .version] | unique | tostring' '["6"]'
        assert_json '[.ips[] | select(.address | contains(":") | not) | .version] | unique | tostring' '["4"]'
        ;;
    *)
        assert_json '[.ips[] | has("version")] | any' false
        ;;
    esac
    jq -e '.routes | any(.dst == "10.99.0.0/16" and .gw == "10.77.0.1")' <<<"$output" >/dev/null ||
        die "result routes lack {dst: 10.99.0.0/16, gw: 10.77.0.1}: $output"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
}

@test "cniVersion 0.3.0: ADD result is 0.3.0 with ips[].version; DEL restores" {
    add_del_with_version 0.3.0
}

@test "cniVersion 0.3.1: ADD result is 0.3.1 with ips[].version; DEL restores" {
    add_del_with_version 0.3.1
}

@test "cniVersion 0.4.0: ADD result is 0.4.0 with ips[].version; DEL restores" {
    add_del_with_version 0.4.0
}

@test "cniVersion 1.0.0: ADD result is 1.0.0 without ips[].version; DEL restores" {
    add_del_with_version 1.0.0
}

@test "cniVersion 1.1.0 (newer than host-device 1.1.1 supports): ADD result is 1.1.0; DEL restores" {
    add_del_with_version 1.1.0
}

@test "VERSION prints cniVersion and supportedVersions with all five" {
    run_plugin VERSION "$CID" "" "" '{"cniVersion":"0.3.1"}'
    assert_plugin_ok
    assert_json '.cniVersion | type' string
    local v
    for v in "${ALL_VERSIONS[@]}"; do
        jq -e --arg v "$v" '.supportedVersions | index($v)' <<<"$output" >/dev/null ||
            die "supportedVersions lacks $v: $output"
    done
}

@test "VERSION works with no environment but CNI_COMMAND and no stdin" {
    PLUGIN_CNI_ARGS="" run_plugin VERSION "<unset>" "<unset>" "<unset>" ""
    assert_plugin_ok
    jq -e '.supportedVersions | index("1.1.0") and index("0.3.0")' <<<"$output" >/dev/null ||
        die "supportedVersions incomplete: $output"
}

#!/usr/bin/env bats
#
# Bad input: each case must exit non-zero, print a CNI error JSON with the
# contract's code on stdout, and leave the NIC on the host untouched.
# One @test per table row; every row is a single call to expect_rejected.

load helpers

setup() {
    basic_setup
    NIC_MTU=1400 standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
}

# The NIC and the pod are exactly as setup() left them.
assert_nic_untouched() {
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mtu host "$NIC" 1400
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_no_link pod "$NIC"
    local links
    links=$(run_in_pod_ns ip -j link show | jq -r '[.[].ifname] | join(",")')
    [[ $links == lo ]] || die "pod ns has links besides lo: $links"
    assert_no_state_left "after a rejected ADD"
}

# expect_rejected <code> <message part> <CNI_COMMAND> <CNI_CONTAINERID> <CNI_IFNAME> <config>
#   (<unset> leaves an env variable out; CNI_NETNS is the pod)
expect_rejected() {
    local code=$1 message=$2 cmd=$3 cid=$4 ifname=$5 config=$6
    run_plugin "$cmd" "$cid" "$POD_NETNS" "$ifname" "$config"
    assert_cni_error "$code"
    assert_msg_contains "$message"
    assert_nic_untouched
}

# A valid Multus-style config.
good() {
    multus_config
}

# with <jq-expression>: the valid config transformed by jq
with() {
    good | jq -c "$1"
}

@test "malformed JSON → 6" {
    expect_rejected 6 "network configuration is not valid JSON" ADD "$CID" net1 '{"cniVersion":"0.3.1","name":"x","type":"amd-host-device","deviceID":'
}

@test "empty stdin → 6" {
    expect_rejected 6 "no network configuration on stdin" ADD "$CID" net1 ''
}

@test "JSON that is not an object → 6" {
    expect_rejected 6 "must be a JSON object" ADD "$CID" net1 '[1,2,3]'
}

@test "missing selector (no deviceID/pciBusID/device/hwaddr) → 7" {
    expect_rejected 7 "no device selected" ADD "$CID" net1 "$(with 'del(.deviceID, .pciBusID)')"
}

@test "PCI address with a path (../../x) → 7" {
    expect_rejected 7 "\"deviceID\" \"../../x\" is not a PCI address" ADD "$CID" net1 "$(with '.deviceID = "../../x" | del(.pciBusID)')"
}

@test "PCI address with a path in pciBusID (../0000:5e:00.1) → 7" {
    expect_rejected 7 "\"pciBusID\" \"../0000:5e:00.1\" is not a PCI address" ADD "$CID" net1 "$(with '.pciBusID = "../0000:5e:00.1" | del(.deviceID)')"
}

@test "PCI address that is not a PCI address → 7" {
    expect_rejected 7 "is not a PCI address" ADD "$CID" net1 "$(with '.deviceID = "not-a-pci-address" | del(.pciBusID)')"
}

@test "PCI address with function 8 (out of range) → 7" {
    expect_rejected 7 "function must be 0-7" ADD "$CID" net1 "$(with '.deviceID = "0000:5e:00.8" | del(.pciBusID)')"
}

@test "deviceID and pciBusID disagree → 7" {
    make_nic "o${TID}" 0000:5e:00.3 10.70.0.2/24
    expect_rejected 7 "conflicting selectors" ADD "$CID" net1 "$(with '.pciBusID = "0000:5e:00.3"')"
    assert_addrs host "o${TID}" 10.70.0.2/24
}

@test "conflicting selectors (deviceID of one NIC, device of another) → 7" {
    make_nic "o${TID}" 0000:5e:00.2 10.70.0.2/24
    expect_rejected 7 "conflicting selectors" ADD "$CID" net1 "$(with ".device = \"o${TID}\"")"
    assert_addrs host "o${TID}" 10.70.0.2/24
}

@test "unknown cniVersion 9.9.9 → 1" {
    expect_rejected 1 "\"9.9.9\" is not supported" ADD "$CID" net1 "$(with '.cniVersion = "9.9.9"')"
}

@test "missing cniVersion → 7 (invalid network config)" {
    expect_rejected 7 "\"cniVersion\" is required" ADD "$CID" net1 "$(with 'del(.cniVersion)')"
}

@test "missing name → 7" {
    expect_rejected 7 "\"name\" is required" ADD "$CID" net1 "$(with 'del(.name)')"
}

@test "missing CNI_COMMAND → 4" {
    expect_rejected 4 "invalid CNI_COMMAND: must be set" "<unset>" "$CID" net1 "$(good)"
}

@test "unknown CNI_COMMAND → 4" {
    expect_rejected 4 "invalid CNI_COMMAND" FROB "$CID" net1 "$(good)"
}

@test "bad CNI_IFNAME a/b → 4" {
    expect_rejected 4 "invalid CNI_IFNAME" ADD "$CID" a/b "$(good)"
}

@test "CNI_IFNAME longer than 15 bytes → 4" {
    expect_rejected 4 "longer than 15 bytes" ADD "$CID" net1234567890abc "$(good)"
}

@test "missing CNI_IFNAME → 4" {
    expect_rejected 4 "invalid CNI_IFNAME: must be set" ADD "$CID" "<unset>" "$(good)"
}

@test "CNI_CONTAINERID with a space → 4" {
    expect_rejected 4 "invalid CNI_CONTAINERID" ADD "ctr $TID" net1 "$(good)"
}

@test "CNI_CONTAINERID with a path (../x) → 4" {
    expect_rejected 4 "invalid CNI_CONTAINERID" ADD "../x$TID" net1 "$(good)"
}

@test "missing CNI_NETNS on ADD → 4" {
    run_plugin ADD "$CID" "<unset>" net1 "$(good)"
    assert_cni_error 4
    assert_msg_contains "invalid CNI_NETNS: must be set"
    assert_nic_untouched
}

# expect_netns_rejected <CNI_NETNS> <message part>: ADD into <CNI_NETNS> is refused
#   (4) at once, the NIC untouched, not renamed to CNI_IFNAME on the host.
expect_netns_rejected() {
    PLUGIN_TIMEOUT=10 run_plugin ADD "$CID" "$1" net1 "$(good)"
    assert_cni_error 4
    assert_msg_contains "invalid CNI_NETNS: $1 $2"
    assert_nic_untouched
    assert_no_link host net1
}

# The plugin's own network namespace: /proc/self/ns/net in the plugin is the host's.
own_netns_message="is the network namespace amd-host-device runs in (the host's), not a pod's"

@test "CNI_NETNS the plugin's own netns (/proc/self/ns/net, /proc/thread-self/ns/net) → 4, the NIC stays under its name" {
    expect_netns_rejected /proc/self/ns/net "$own_netns_message"
    expect_netns_rejected /proc/thread-self/ns/net "$own_netns_message"
}

@test "CNI_NETNS another name of the host's netns (its holder's /proc/<pid>/ns/net, a bind mount of it) → 4" {
    expect_netns_rejected "/proc/$HOST_NS_PID/ns/net" "$own_netns_message"
    touch "$WORKDIR/host-ns"
    run_in_host_ns mount --bind "/proc/$HOST_NS_PID/ns/net" "$WORKDIR/host-ns" ||
        die "cannot bind-mount the host netns"
    expect_netns_rejected "$WORKDIR/host-ns" "$own_netns_message"
}

@test "CNI_NETNS a FIFO → 4 at once (never blocks); a regular file, a directory, a mount namespace → 4" {
    mkfifo "$WORKDIR/fifo"
    expect_netns_rejected "$WORKDIR/fifo" "is not a network namespace: a FIFO"
    touch "$WORKDIR/left-behind"
    expect_netns_rejected "$WORKDIR/left-behind" "is not a network namespace: a regular file"
    expect_netns_rejected "$WORKDIR" "is not a network namespace: a directory"
    expect_netns_rejected "/proc/$POD_NS_PID/ns/mnt" "is not a network namespace: a namespace of another kind"
}

@test "DEL with CNI_NETNS a FIFO or the host's netns: the NIC comes back from the recorded pod; a host link called CNI_IFNAME is left alone" {
    local netns
    mkfifo "$WORKDIR/fifo"
    for netns in "$WORKDIR/fifo" /proc/self/ns/net; do
        run_plugin ADD "$CID" "$POD_NETNS" net1 "$(good)"
        assert_plugin_ok
        # A bystander on the host under the pod-side name, which host-device DEL run in
        # the host's netns would take for the NIC (set it down, move it).
        run_in_host_ns ip link add net1 type veth peer name "b${TID}"
        run_in_host_ns ip link set net1 up
        PLUGIN_TIMEOUT=10 run_plugin DEL "$CID" "$netns" net1 "$(good)"
        assert_plugin_ok_silent
        assert_nic_untouched
        assert_link_up host net1
        run_in_host_ns ip link del net1
        # Never added: nothing to do, at once.
        PLUGIN_TIMEOUT=10 run_plugin DEL "other$TID" "$netns" net1 "$(good)"
        assert_plugin_ok_silent
    done
}

@test "non-existent deviceID 0000:99:00.0 → 100" {
    expect_rejected 100 "no PCI device 0000:99:00.0" ADD "$CID" net1 "$(with '.deviceID = "0000:99:00.0" | .pciBusID = "0000:99:00.0"')"
}

@test "non-existent device name → 100" {
    expect_rejected 100 "not found on the host" ADD "$CID" net1 "$(with "del(.deviceID, .pciBusID) | .device = \"nx${TID}\"")"
}

@test "non-existent hwaddr → 100" {
    expect_rejected 100 "no interface with MAC 02:00:de:ad:be:ef" ADD "$CID" net1 "$(with 'del(.deviceID, .pciBusID) | .hwaddr = "02:00:de:ad:be:ef"')"
}

# A userspace (DPDK) driver is no error: 350-parity.bats.
@test "PCI function bound to a kernel driver but without net/ entry → 100 naming the driver" {
    mkdir -p "$WORKDIR/pci/0000:5e:00.4"
    ln -s "$WORKDIR/drivers/fakenic" "$WORKDIR/pci/0000:5e:00.4/driver"
    expect_rejected 100 "PCI device 0000:5e:00.4 (driver fakenic) has no network interface" ADD "$CID" net1 "$(with '.deviceID = "0000:5e:00.4" | .pciBusID = "0000:5e:00.4"')"
}

@test "delegate plugin the node allows but CNI_PATH lacks → 50" {
    write_policy "{\"delegates\":[\"host-device\",\"no-such-plugin-$TID\"]}"
    expect_rejected 50 "not found in CNI_PATH" ADD "$CID" net1 "$(with ".delegate = \"no-such-plugin-$TID\"")"
}

@test "bad podInterfaceName → 7" {
    expect_rejected 7 "\"podInterfaceName\" \"sideways\"" ADD "$CID" net1 "$(with '.podInterfaceName = "sideways"')"
}

@test "user ipam that fails → 103, the NIC is rolled back to the host intact" {
    # static IPAM with an invalid address: host-device has already moved the
    # NIC when IPAM fails, so this exercises the rollback.
    run_plugin ADD "$CID" "$POD_NETNS" net1 \
        "$(with '.ipam = {"type": "static", "addresses": [{"address": "not-an-ip"}]}')"
    assert_cni_error 103
    assert_nic_untouched
}

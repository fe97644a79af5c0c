#!/usr/bin/env bats
#
# Parity with the reference host-device, end to end: a PCI function bound to a
# userspace (DPDK) driver is claimed for the pod without moving anything; a
# deviceID may name an auxiliary-bus device (a sub-function); /31 and /127
# addresses get their peer as gateway; CNI 1.1.0 results carry the NIC's mtu
# and pciID; the NPWG device-info file (runtimeConfig.CNIDeviceInfoFile) is
# written only directly in the spec's directory (a path elsewhere is code 7 at ADD;
# DEL ignores it), and never over a file already there.

load helpers

# The only directory the plugin writes device-info files in (as Multus names it).
DEVINFO_DIR=/var/run/k8s.cni.cncf.io/devinfo/cni

###########################################################################
# this file's helpers
###########################################################################

# attach <config> [ifname] [cid] [netns]: ADD (default $CID/net1 into the pod) succeeds.
attach() {
    run_plugin ADD "${3:-$CID}" "${4:-$POD_NETNS}" "${2:-net1}" "$1"
    assert_plugin_ok
}

# detach <config> [ifname] [cid] [netns]: DEL of that attachment succeeds, silently.
detach() {
    run_plugin DEL "${3:-$CID}" "${4:-$POD_NETNS}" "${2:-net1}" "$1"
    assert_plugin_ok_silent
}

# versioned <cniVersion> <pci-or-id> [extra-json]: a config selecting the device
# by deviceID alone, at that version.
versioned() {
    config_for "net-$TID" "$(jq -cn --arg v "$1" --arg id "$2" --argjson extra "${3:-"{}"}" \
        '{cniVersion: $v, deviceID: $id} + $extra')"
}

# pci_function <pci> [driver]: a fake PCI function without net/ entry (a DPDK one,
# or a PF beside a VF), bound to <driver> (a link to $WORKDIR/drivers/<driver>,
# replacing any), or to none.
pci_function() {
    local pci=$1 driver=${2:-}
    mkdir -p "$WORKDIR/pci/$pci"
    [[ -n $driver ]] || return 0
    mkdir -p "$WORKDIR/drivers/$driver"
    ln -sfn "$WORKDIR/drivers/$driver" "$WORKDIR/pci/$pci/driver"
}

assert_pod_has_only_lo() {
    local links
    links=$(run_in_pod_ns ip -j link show | jq -r '[.[].ifname] | join(",")')
    [[ $links == lo ]] || die "pod ns has links besides lo: $links"
}

# No state file and no claim is left in the state directory.
# assert_interfaces <json-array>: the result's interfaces are exactly these (any key order).
assert_interfaces() {
    jq -e --argjson want "$1" '.interfaces == $want' <<<"$output" >/dev/null ||
        die "result interfaces: expected $1, got: $output"
}

# private_sys_bus: a tmpfs over /sys/bus in the host's mount namespace (this
# machine may have no auxiliary bus), holding the fake PCI tree again at
# pci/devices and $WORKDIR/aux at auxiliary/devices. Dies with the namespace.
private_sys_bus() {
    mkdir -p "$WORKDIR/aux"
    run_in_host_ns mount -t tmpfs -o mode=0755 "amdhd-sys-bus-$TID" /sys/bus ||
        die "cannot mount a tmpfs over /sys/bus in the host ns"
    run_in_host_ns mkdir -p /sys/bus/pci/devices /sys/bus/auxiliary/devices
    run_in_host_ns mount --bind "$WORKDIR/pci" /sys/bus/pci/devices
    run_in_host_ns mount --bind "$WORKDIR/aux" /sys/bus/auxiliary/devices
}

# sub_function <id> <ifname>: auxiliary device <id> with the netdev <ifname>.
sub_function() {
    mkdir -p "$WORKDIR/aux/$1/net/$2"
}

# private_run: the directory /var/run resolves to (/run where it is a link) is,
# in the host's mount namespace, $WORKDIR/run, so the plugin's device-info files
# land there and never in the machine's /run. Dies with the namespace.
private_run() {
    mkdir -p "$WORKDIR/run"
    run_in_host_ns mount --bind "$WORKDIR/run" "$(readlink -f /var/run)" ||
        die "cannot bind $WORKDIR/run over /var/run in the host ns"
}

# on_disk <path under /var/run>: where the test sees that file.
on_disk() {
    echo "$WORKDIR/run/${1#/var/run/}"
}

# devinfo_config <file> [config]: the config (default: Multus's for $PCI) with the
# CNIDeviceInfoFile capability and the file in runtimeConfig, as Multus passes it.
devinfo_config() {
    jq -c --arg f "$1" '. + {capabilities: {CNIDeviceInfoFile: true}, runtimeConfig: {CNIDeviceInfoFile: $f}}' \
        <<<"${2:-$(multus_config)}"
}

# assert_devinfo <path under /var/run> <pci-object-json>: the file holds exactly
# the spec's document {"type":"pci","version":"1.1.0","pci":<pci-object>}.
assert_devinfo() {
    local file
    file=$(on_disk "$1")
    [[ -f $file ]] || die "no device-info file $1 (looked at $file): $(ls -la "$(dirname "$file")" 2>&1)"
    jq -e --argjson pci "$2" '. == {type: "pci", version: "1.1.0", pci: $pci}' "$file" >/dev/null ||
        die "device info in $1: expected {type: pci, version: 1.1.0, pci: $2}, got: $(cat "$file")"
}

# skip_if_rdma_exclusive: a fake RDMA device cannot be moved in exclusive mode.
skip_if_rdma_exclusive() {
    if run_in_host_ns rdma system show 2>/dev/null | grep -q 'netns exclusive'; then
        skip "RDMA netns mode is exclusive here: the plugin would try to move the fake RDMA device"
    fi
}

###########################################################################
# DPDK: a function bound to a userspace driver, no netdev
###########################################################################

# dpdk_add_del <driver> <cniVersion>: ADD of a function bound to <driver> succeeds
# without moving anything, claims it (state naming the driver) and returns one
# interface entry (with pciID at 1.1.0 only) and no ips; DEL releases the claim.
dpdk_add_del() {
    local driver=$1 version=$2 pci=0000:5e:00.4 config want
    standard_nic
    pci_function "$pci" "$driver"
    config=$(versioned "$version" "$pci")

    attach "$config"
    assert_json .cniVersion "$version"
    want=$(jq -cn --arg ns "$POD_NETNS" '{name: "net1", sandbox: $ns}')
    if [[ $version == 1.1.0 ]]; then
        want=$(jq -c --arg pci "$pci" '. + {pciID: $pci}' <<<"$want")
    fi
    assert_interfaces "[$want]"
    assert_json '(.ips // []) + (.routes // []) | length' 0
    assert_json .userspaceDriver "$driver" "$(cat "$(state_file "$CID" net1)")"
    assert_pod_has_only_lo
    assert_nic_home

    detach "$config"
    assert_no_state_left
    [[ $(readlink "$WORKDIR/pci/$pci/driver") == "$WORKDIR/drivers/$driver" ]] ||
        die "the function's driver link changed: $(readlink "$WORKDIR/pci/$pci/driver")"
    assert_pod_has_only_lo
    assert_nic_home
}

@test "DPDK: a vfio-pci function is claimed at 1.1.0 without moving anything (interface with pciID, no ips); DEL releases it" {
    dpdk_add_del vfio-pci 1.1.0
}

@test "DPDK: a uio_pci_generic function at 0.3.1: the interface entry has no pciID" {
    dpdk_add_del uio_pci_generic 0.3.1
}

@test "DPDK: an igb_uio function at 1.0.0: the interface entry has no pciID" {
    dpdk_add_del igb_uio 1.0.0
}

@test "DPDK: one function, one pod: a second attachment gets 101, its DEL leaves the claim; once released another pod gets it" {
    local pci=0000:5e:00.4 config owner
    pci_function "$pci" vfio-pci
    config=$(multus_config "$pci")
    attach "$config"
    owner=$(cat "$(state_file "$CID" net1)")
    new_pod_ns
    local other=$NEW_POD_NETNS

    run_plugin ADD "${CID}b" "$other" net1 "$config"
    assert_cni_error 101
    assert_msg_contains "$CID"
    [[ ! -e $(state_file "${CID}b" net1) ]] || die "the refused ADD left a state file"
    detach "$config" net1 "${CID}b" "$other"
    [[ $(cat "$(state_file "$CID" net1)") == "$owner" ]] ||
        die "the refused attachment changed the owner's state: $(cat "$(state_file "$CID" net1)")"

    detach "$config"
    [[ ! -e $(state_file "$CID" net1) ]] || die "state file left after DEL"
    attach "$config" net1 "${CID}b" "$other"
    assert_json '.interfaces[0].sandbox' "$other"
    detach "$config" net1 "${CID}b" "$other"
    assert_no_state_left
}

@test "DPDK: CHECK passes while the function stays bound, 105 once it is rebound to a kernel driver; DEL still releases it" {
    local pci=0000:5e:00.4 config check
    pci_function "$pci" vfio-pci
    config=$(versioned 1.0.0 "$pci")
    attach "$config"
    check=$(jq -c --argjson prev "$output" '. + {prevResult: $prev}' <<<"$config")

    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$check"
    assert_plugin_ok_silent

    pci_function "$pci" fakenic
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$check"
    assert_cni_error 105
    assert_msg_contains "no longer bound to vfio-pci"

    detach "$config"
    assert_no_state_left
}

@test "a PCI function bound to no driver → 100 'not bound to any driver', nothing claimed" {
    standard_nic
    pci_function 0000:5e:00.4
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config 0000:5e:00.4)"
    assert_cni_error 100
    assert_msg_contains "not bound to any driver"
    assert_no_state_left
    assert_pod_has_only_lo
    assert_nic_home
}

@test "DPDK: a VF bound to vfio-pci gets its device-info file too (pci-address, pf-pci-address)" {
    private_run
    local vf=0000:5e:02.4 pf=0000:5e:00.0 file=$DEVINFO_DIR/net-$TID-$CID-net1.json config
    pci_function "$vf" vfio-pci
    pci_function "$pf" fakenic
    ln -s "../$pf" "$WORKDIR/pci/$vf/physfn"
    config=$(devinfo_config "$file" "$(multus_config "$vf")")

    attach "$config"
    assert_devinfo "$file" "$(jq -cn --arg vf "$vf" --arg pf "$pf" '{"pci-address": $vf, "pf-pci-address": $pf}')"
    detach "$config"
    assert_no_state_left
}

###########################################################################
# auxiliary-bus deviceID (a sub-function)
###########################################################################

@test "deviceID naming an auxiliary device attaches its netdev (1.1.0: mtu, no pciID) beside a PCI NIC; DEL gives both back" {
    private_sys_bus
    standard_nic
    local sf=s$TID sfid=mlx5_core.sf.2 sf_mac sfconf
    NIC_MTU=1450 make_nic "$sf" "" 10.78.0.2/24
    sf_mac=$(nic_mac "$sf")
    sub_function "$sfid" "$sf"
    sfconf=$(versioned 1.1.0 "$sfid")

    attach "$sfconf"
    assert_json '.interfaces[0].name' net1
    assert_json '.interfaces[0].mtu' 1450
    assert_json '.interfaces[0] | has("pciID")' false
    assert_result_addrs 10.78.0.2/24
    assert_addrs pod "$sf" 10.78.0.2/24
    assert_altname pod "$sf" net1
    assert_no_link host "$sf"
    # The PCI tree still resolves under the private /sys/bus.
    attach "$(multus_config)" net2
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"

    detach "$(multus_config)" net2
    detach "$sfconf"
    assert_nic_home
    assert_link_up host "$sf"
    assert_addrs host "$sf" 10.78.0.2/24
    assert_mtu host "$sf" 1450
    assert_mac host "$sf" "$sf_mac"
    assert_no_link pod "$sf"
    assert_no_state_left
}

@test "deviceID naming no auxiliary device → 7 'no auxiliary device has that name', nothing moved" {
    private_sys_bus
    standard_nic
    sub_function mlx5_core.sf.2 "$NIC"
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(versioned 1.0.0 mlx5_core.sf.9)"
    assert_cni_error 7
    assert_msg_contains "no auxiliary device has that name"
    assert_no_state_left
    assert_pod_has_only_lo
    assert_nic_home
}

@test "a deviceID that would walk out of /sys/bus/auxiliary/devices is refused (7), even where the walk would find a NIC" {
    private_sys_bus
    standard_nic
    local id
    # ../../pci/devices/$PCI/net/ is the NIC's entry: a plugin that joined the id
    # to the auxiliary directory would find it.
    for id in "../../pci/devices/$PCI" "mlx5_core.sf.2/.." .. .; do
        run_plugin ADD "$CID" "$POD_NETNS" net1 "$(versioned 1.0.0 "$id")"
        assert_cni_error 7
        assert_msg_contains "is not a PCI address"
    done
    assert_no_state_left
    assert_pod_has_only_lo
    assert_nic_home
}

###########################################################################
# point-to-point addresses: the peer as gateway
###########################################################################

# p2p_add_del <cniVersion>: a NIC with a /31, a /127 and a /24, and a route via
# the /31's peer. The result gives the /31 and the /127 their peers as gateway
# and the /24 none; DEL gives the NIC back with all of it.
p2p_add_del() {
    local v=$1 config
    NIC=n$TID PCI=0000:5e:00.1
    make_nic "$NIC" "$PCI" 10.77.0.4/31 2001:db8:77::a/127 10.78.0.2/24
    NIC_MAC_ADDR=$(nic_mac "$NIC")
    add_route 10.99.0.0/16 10.77.0.5 "$NIC"
    config=$(versioned "$v" "$PCI")

    attach "$config"
    assert_result_addrs 10.77.0.4/31 2001:db8:77::a/127 10.78.0.2/24
    assert_json '.ips[] | select(.address == "10.77.0.4/31") | .gateway' 10.77.0.5
    assert_json '.ips[] | select(.address == "2001:db8:77::a/127") | .gateway' 2001:db8:77::b
    assert_json '.ips[] | select(.address == "10.78.0.2/24") | has("gateway")' false
    if [[ $v == 0.* ]]; then
        assert_json '[.ips[] | .version] | sort | join(",")' 4,4,6
    else
        assert_json '[.ips[] | has("version")] | any' false
    fi
    assert_addrs pod "$NIC" 10.77.0.4/31 2001:db8:77::a/127 10.78.0.2/24
    assert_route pod 10.99.0.0/16 10.77.0.5 "$NIC"

    detach "$config"
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" 10.77.0.4/31 2001:db8:77::a/127 10.78.0.2/24
    assert_addr_flag host "$NIC" 2001:db8:77::a nodad
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_route host 10.99.0.0/16 10.77.0.5 "$NIC"
    assert_no_link pod "$NIC"
    assert_no_state_left
}

@test "cniVersion 0.3.1: a /31 and a /127 get their peer as gateway, a /24 none; DEL restores the NIC" {
    p2p_add_del 0.3.1
}

@test "cniVersion 1.0.0: a /31 and a /127 get their peer as gateway, a /24 none; DEL restores the NIC" {
    p2p_add_del 1.0.0
}

###########################################################################
# CNI 1.1.0 results: interfaces[].mtu and pciID
###########################################################################

@test "cniVersion 1.1.0: the NIC's interface entry carries its mtu and pciID; DEL gives it back" {
    NIC_MTU=1400 standard_nic
    local config iface
    config=$(versioned 1.1.0 "$PCI")
    attach "$config"
    iface=$(jq -c '.interfaces[] | select(.name == "net1")' <<<"$output")
    [[ -n $iface ]] || die "no interface net1 in the result: $output"
    assert_json .mtu 1400 "$iface"
    assert_json .pciID "$PCI" "$iface"
    assert_json .mac "$NIC_MAC_ADDR" "$iface"
    assert_json .sandbox "$POD_NETNS" "$iface"
    assert_mtu pod "$NIC" 1400

    detach "$config"
    assert_nic_home 1400
    assert_no_state_left
}

@test "cniVersion 1.1.0, NIC selected by name: mtu but no pciID" {
    NIC_MTU=1450 standard_nic
    local config
    config=$(config_for "net-$TID" "{\"cniVersion\":\"1.1.0\",\"device\":\"$NIC\"}")
    attach "$config"
    assert_json '.interfaces[] | select(.name == "net1") | .mtu' 1450
    assert_json '[.interfaces[] | has("pciID")] | any' false
    detach "$config"
    assert_nic_home 1450
}

@test "cniVersion 0.3.1, 0.4.0 and 1.0.0: no interface entry has mtu or pciID" {
    NIC_MTU=1400 standard_nic
    local v config
    for v in 0.3.1 0.4.0 1.0.0; do
        config=$(versioned "$v" "$PCI")
        attach "$config"
        assert_json .cniVersion "$v"
        assert_json '.interfaces[] | select(.name == "net1") | .mac' "$NIC_MAC_ADDR"
        assert_json '[.interfaces[] | has("mtu") or has("pciID")] | any' false
        detach "$config"
        assert_nic_home 1400
    done
    assert_no_state_left
}

###########################################################################
# device info (runtimeConfig.CNIDeviceInfoFile)
###########################################################################

@test "device info: ADD writes the NPWG document for a VF, with its PF from the physfn link; DEL gives the NIC back" {
    private_run
    standard_nic
    local pf=0000:5e:00.0 file=$DEVINFO_DIR/net-$TID-$CID-net1.json config
    pci_function "$pf" fakenic
    ln -s "../$pf" "$WORKDIR/pci/$PCI/physfn"
    config=$(devinfo_config "$file")

    [[ ! -e $(on_disk "$DEVINFO_DIR") ]] || die "the spec directory exists before ADD"
    attach "$config"
    assert_devinfo "$file" "$(jq -cn --arg vf "$PCI" --arg pf "$pf" '{"pci-address": $vf, "pf-pci-address": $pf}')"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"

    detach "$config"
    assert_nic_home
    assert_no_state_left
}

@test "device info: a PF's document names its RDMA device and has no pf-pci-address" {
    skip_if_rdma_exclusive
    private_run
    standard_nic
    local file=$DEVINFO_DIR/net-$TID-$CID-net1.json config
    mkdir -p "$WORKDIR/pci/$PCI/infiniband/rdma$TID"
    config=$(devinfo_config "$file" "$(versioned 1.1.0 "$PCI")")

    attach "$config"
    assert_devinfo "$file" "$(jq -cn --arg pci "$PCI" --arg rdma "rdma$TID" '{"pci-address": $pci, "rdma-device": $rdma}')"
    detach "$config"
    assert_nic_home
}

@test "device info: a file already there (the device plugin's) is left exactly as it was, a planted symlink is not followed" {
    private_run
    standard_nic
    local dir theirs=$DEVINFO_DIR/theirs-$TID.json link=$DEVINFO_DIR/link-$TID.json
    local target=$WORKDIR/symlink-target-$TID config before
    dir=$(on_disk "$DEVINFO_DIR")
    mkdir -p "$dir"
    printf '%s' '{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:5e:00.1","vhost":"device plugin"}}' \
        >"$(on_disk "$theirs")"
    chmod 0600 "$(on_disk "$theirs")"
    cp -p "$(on_disk "$theirs")" "$WORKDIR/theirs.orig"
    before=$(stat -c '%i %s %y %a %U' "$(on_disk "$theirs")")
    ln -s "$target" "$(on_disk "$link")"

    config=$(devinfo_config "$theirs")
    attach "$config"
    cmp "$WORKDIR/theirs.orig" "$(on_disk "$theirs")" ||
        die "the existing device-info file was changed: $(cat "$(on_disk "$theirs")")"
    [[ $(stat -c '%i %s %y %a %U' "$(on_disk "$theirs")") == "$before" ]] ||
        die "the existing file was replaced or touched: $before -> $(stat -c '%i %s %y %a %U' "$(on_disk "$theirs")")"
    detach "$config"
    assert_nic_home

    config=$(devinfo_config "$link")
    attach "$config"
    [[ ! -e $target ]] || die "the plugin wrote through a symlink in the spec directory: $(cat "$target")"
    [[ -L $(on_disk "$link") ]] || die "the planted symlink was replaced: $(ls -la "$dir")"
    detach "$config"
    assert_nic_home
    assert_no_state_left
}

@test "device info: ADD with a path outside the spec directory is refused (7) before anything moves, nothing is written; DEL with it gives the NIC back and logs what it ignored" {
    private_run
    standard_nic
    local dir path config
    dir=$(on_disk "$DEVINFO_DIR")
    # The spec directory exists, so that every path below resolves if written.
    mkdir -p "$dir/sub"
    # path -> where the test would find it if the plugin wrote it
    local -A bad=(
        ["$WORKDIR/outside-$TID.json"]=$WORKDIR/outside-$TID.json
        ["$DEVINFO_DIR/../up-$TID.json"]=$dir/../up-$TID.json
        ["$DEVINFO_DIR/../../../../..$WORKDIR/escaped-$TID.json"]=$WORKDIR/escaped-$TID.json
        ["$DEVINFO_DIR/sub/deeper-$TID.json"]=$dir/sub/deeper-$TID.json
    )
    for path in "${!bad[@]}"; do
        config=$(devinfo_config "$path")
        run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
        assert_refused_untouched 7 "\"runtimeConfig.CNIDeviceInfoFile\" \"$path\" must be a file directly in $DEVINFO_DIR"
        [[ ! -e ${bad[$path]} ]] || die "device info written outside $DEVINFO_DIR: $path: $(cat "${bad[$path]}")"
        run_plugin CHECK "$CID" "$POD_NETNS" net1 "$config"
        assert_cni_error 7
    done
    [[ -z $(find "$WORKDIR/run" -type f) ]] || die "files written under /run: $(find "$WORKDIR/run" -type f)"

    # A pod an earlier release attached with such a path (it only logged it): its
    # DEL ignores the path, logs so, and gives the NIC back.
    attach "$(multus_config)"
    path=$WORKDIR/outside-$TID.json
    detach "$(devinfo_config "$path")"
    assert_nic_home
    assert_no_state_left
    [[ ! -e $path ]] || die "DEL wrote $path"
    grep -qF "DEL ignores a value of the network config and goes on as the node decides: \"runtimeConfig.CNIDeviceInfoFile\" \"$path\"" "$LOG_FILE" ||
        die "DEL did not log the path it ignored: $(cat "$LOG_FILE")"
}

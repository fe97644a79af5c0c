#!/usr/bin/env bats
#
# A NIC only for the pod it was allocated to. On a Kubernetes node, kubelet's
# device manager records in its checkpoint which device-plugin device it gave to
# which pod; ADD refuses (code 106), before anything is moved or created, a PCI
# address registered under a resource but not allocated to the pod whose UID is
# K8S_POD_UID in CNI_ARGS, and a selection it cannot tie to an allocation (a
# device or hwaddr selector, an unregistered PCI address, no K8S_POD_UID)
# unless the node policy has allowUnverifiedSelection. A checkpoint that does
# not parse is code 6. Without the checkpoint, selection works as before.
#
# The checkpoint is at the policy's kubeletCheckpoint ($KUBELET_CHECKPOINT, in
# the test's dir); one test puts it at kubelet's own path instead, under a tmpfs
# over /var/lib in the host mount namespace. multus_cni_args gives container
# <cid> the pod UID uid-<cid>.

load helpers

# The second function of the resource, registered but given to no pod.
FREE_PCI=0000:5e:00.2

setup() {
    basic_setup
    standard_nic
    make_nic "f${TID}" "$FREE_PCI" 10.70.0.2/24
    OWNER_UID=uid-$CID
}

# write_checkpoint <DeviceIDs-json> [file]: kubelet's checkpoint, as kubelet
# writes it: pod $OWNER_UID holds <DeviceIDs> of amd.com/nic, whose device
# plugin registered $PCI and $FREE_PCI (upper case, as some plugins report).
write_checkpoint() {
    local file=${2:-$KUBELET_CHECKPOINT}
    mkdir -p "$(dirname "$file")"
    jq -n --arg uid "$OWNER_UID" --argjson ids "$1" --arg pci "$PCI" --arg free "${FREE_PCI^^}" \
        '{Data: {PodDeviceEntries: [
                    {PodUID: $uid, ContainerName: "app", ResourceName: "amd.com/nic",
                     DeviceIDs: $ids, AllocResp: "CgA="},
                    {PodUID: "uid-other", ContainerName: "app", ResourceName: "other.com/gpu",
                     DeviceIDs: {"0": ["gpu-0"]}, AllocResp: "CgA="}],
                 RegisteredDevices: {"amd.com/nic": [$pci, $free], "other.com/gpu": ["gpu-0"]}},
          Checksum: 1234567890}' >"$file" || die "cannot write the checkpoint"
}

# The pod $OWNER_UID holds $PCI (DeviceIDs in the NUMA-map shape).
owner_holds_pci() {
    write_checkpoint "$(jq -cn --arg pci "$PCI" '{"0": [$pci], "1": null}')"
}

# expect_not_allocated <code> <message part> <cid> <config>: ADD for container
# <cid> is refused, and neither NIC moved, nothing was created.
expect_not_allocated() {
    local code=$1 message=$2 cid=$3 config=$4
    run_plugin ADD "$cid" "$POD_NETNS" net1 "$config"
    assert_refused_untouched "$code" "$message"
    assert_addrs host "f${TID}" 10.70.0.2/24
}

# ADD of container <cid> with <config> works, DEL gives the NIC back.
expect_allocated() {
    local cid=$1 config=$2
    run_plugin ADD "$cid" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_no_link host "$NIC"
    run_plugin DEL "$cid" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
}

# by_device: a config that selects $NIC by name.
by_device() {
    config_for "net-$TID" "{\"device\":\"$NIC\"}"
}

###########################################################################
# the allocated pod, and the others

@test "allocation: the pod kubelet gave the NIC to gets it (DeviceIDs per NUMA node)" {
    owner_holds_pci
    expect_allocated "$CID" "$(multus_config)"
}

@test "allocation: the pod kubelet gave the NIC to gets it (DeviceIDs a plain list, before Kubernetes 1.20)" {
    write_checkpoint "[\"$PCI\"]"
    expect_allocated "$CID" "$(multus_config)"
}

@test "allocation: another pod naming the same PCI address → 106 naming both pods; its DEL changes nothing" {
    owner_holds_pci
    expect_not_allocated 106 "PCI device $PCI (amd.com/nic) is not allocated to pod uid-${CID}b: kubelet gave it to pod $OWNER_UID" \
        "${CID}b" "$(multus_config)"
    run_plugin DEL "${CID}b" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_nic_home
    # nothing was claimed: the owner still gets its NIC
    expect_allocated "$CID" "$(multus_config)"
}

@test "allocation: a registered function allocated to no pod → 106" {
    owner_holds_pci
    expect_not_allocated 106 "PCI device $FREE_PCI (amd.com/nic) is not allocated to pod $OWNER_UID: kubelet gave it to no pod" \
        "$CID" "$(multus_config "$FREE_PCI")"
}

@test "allocation: even with allowUnverifiedSelection, another pod's NIC → 106" {
    owner_holds_pci
    write_policy '{"allowUnverifiedSelection": true}'
    expect_not_allocated 106 "kubelet gave it to pod $OWNER_UID" "${CID}b" "$(multus_config)"
}

###########################################################################
# selections that cannot be tied to an allocation

@test "allocation: a device name selector → 106" {
    owner_holds_pci
    expect_not_allocated 106 "a NIC selected by name or MAC cannot be tied to an allocation" "$CID" "$(by_device)"
}

@test "allocation: an hwaddr selector → 106" {
    owner_holds_pci
    expect_not_allocated 106 "cannot be tied to an allocation" "$CID" \
        "$(config_for "net-$TID" "{\"hwaddr\":\"$NIC_MAC_ADDR\"}")"
}

@test "allocation: a PCI address no resource registered → 106" {
    owner_holds_pci
    make_nic "u${TID}" 0000:5e:00.3 10.71.0.2/24
    expect_not_allocated 106 "PCI device 0000:5e:00.3 is not a device of any resource registered with kubelet" \
        "$CID" "$(multus_config 0000:5e:00.3)"
    assert_addrs host "u${TID}" 10.71.0.2/24
}

@test "allocation: no K8S_POD_UID in CNI_ARGS → 106" {
    owner_holds_pci
    PLUGIN_CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAMESPACE=testns;K8S_POD_NAME=pod-$CID" expect_not_allocated 106 \
        "and CNI_ARGS has no K8S_POD_UID to show this is that pod" "$CID" "$(multus_config)"
}

@test "allocation: allowUnverifiedSelection lets a device name selector through, and the log says so" {
    owner_holds_pci
    write_policy '{"allowUnverifiedSelection": true}'
    expect_allocated "$CID" "$(by_device)"
    grep -q "cannot be tied to an allocation; allowed by the node policy (allowUnverifiedSelection)" "$LOG_FILE" ||
        die "the unverified selection is not logged: $(cat "$LOG_FILE")"
}

###########################################################################
# the checkpoint itself

@test "allocation: a checkpoint that does not parse → 6, nothing moved" {
    write_checkpoint "[\"$PCI\"]"
    truncate -s 100 "$KUBELET_CHECKPOINT"
    expect_not_allocated 6 "kubelet's device checkpoint $KUBELET_CHECKPOINT cannot be parsed" "$CID" "$(multus_config)"
}

@test "allocation: without a checkpoint, a device name selector works as before" {
    [[ ! -e $KUBELET_CHECKPOINT ]] || die "a checkpoint exists: $KUBELET_CHECKPOINT"
    expect_allocated "$CID" "$(by_device)"
}

@test "allocation: the checkpoint at kubelet's own path (the policy names none) is checked too" {
    private_var_lib
    write_policy '{"kubeletCheckpoint": null}'
    run_in_host_ns mkdir -p /var/lib/kubelet/device-plugins
    mkdir -p "$WORKDIR/device-plugins"
    run_in_host_ns mount --bind "$WORKDIR/device-plugins" /var/lib/kubelet/device-plugins
    owner_holds_pci
    expect_not_allocated 106 "is not allocated to pod uid-${CID}b" "${CID}b" "$(multus_config)"
    expect_allocated "$CID" "$(multus_config)"
}

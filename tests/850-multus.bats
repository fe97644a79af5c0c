#!/usr/bin/env bats
# -*- bats -*-
#
# The plugin as a Multus delegate: a pod with two NICs from the same NAD, as in
# examples/pod-two-nics.yaml. Multus runs the delegate once per entry of the
# pod's k8s.v1.cni.cncf.io/networks annotation:
#
#   * config: the NAD's spec.config with the allocated PCI address injected as
#     deviceID and pciBusID, keys sorted (examples/multus-delegate.json);
#   * CNI_IFNAME=net1, net2, ... ; the same CNI_CONTAINERID (the sandbox id) and
#     CNI_NETNS for every entry; CNI_ARGS with the K8S_POD_* keys;
#   * at 0.4.0+ CHECK and DEL get the cached ADD result as prevResult (libcni);
#   * DEL in reverse order of ADD (net2, then net1), from Multus' cache.

load helpers

setup() {
    basic_setup
    # What a real runtime uses: a 64-hex sandbox id, a pod UID.
    SANDBOX=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    POD_K8S_NS=amd-workloads
    POD_K8S_NAME=amd-two-nics
    POD_UID=$(cat /proc/sys/kernel/random/uuid)
    PLUGIN_CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAMESPACE=$POD_K8S_NS;K8S_POD_NAME=$POD_K8S_NAME;K8S_POD_INFRA_CONTAINER_ID=$SANDBOX;K8S_POD_UID=$POD_UID"

    # Two NICs the device plugin hands out as amd.com/nic.
    NIC_A=a${TID}
    PCI_A=0000:5e:00.0
    A_V4=10.77.0.2/24
    A_V6=2001:db8:77::2/64
    make_nic "$NIC_A" "$PCI_A" "$A_V4" "$A_V6"
    add_route 10.99.0.0/16 10.77.0.1 "$NIC_A"
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC_A"
    A_MAC=$(nic_mac "$NIC_A")

    NIC_B=b${TID}
    PCI_B=0000:86:00.1
    B_V4=10.78.0.2/24
    B_V6=2001:db8:78::2/64
    NIC_MTU=9000 make_nic "$NIC_B" "$PCI_B" "$B_V4" "$B_V6"
    add_route 10.98.0.0/16 10.78.0.1 "$NIC_B"
    B_MAC=$(nic_mac "$NIC_B")

    # A bystander NIC that must never move.
    make_nic "c${TID}" 0000:5e:00.2 10.79.0.2/24
}

# delegate_conf <cniVersion> [pci]: examples/multus-delegate.json as Multus sends
# it for one allocated device (no pci: the device plugin allocated nothing), at
# debug level, keys sorted (the state dir and the log are the node policy's).
delegate_conf() {
    local version=$1 pci=${2:-}
    jq -cS --arg v "$version" --arg pci "$pci" \
        '.cniVersion = $v | .logLevel = "debug"
         | if $pci == "" then del(.deviceID, .pciBusID) else .deviceID = $pci | .pciBusID = $pci end' \
        "$REPO/examples/multus-delegate.json" || die "cannot build the delegate config"
}

# with_prev <conf> <result>: the config plus prevResult, as libcni sends CHECK/DEL.
with_prev() {
    jq -cS --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"
}

version_at_least_040() {
    [[ $1 != 0.3.* ]]
}

# assert_multus_result <version> <ifname> <mac> <netns> <addr>...: one interface
# entry, named CNI_IFNAME (net1/net2, which the NIC answers to), in the sandbox,
# every ip pointing at it.
assert_multus_result() {
    local version=$1 ifname=$2 mac=$3 netns=$4
    shift 4
    assert_json .cniVersion "$version"
    assert_json '.interfaces | length' 1
    assert_json '.interfaces[0].name' "$ifname"
    assert_json '.interfaces[0].mac' "$mac"
    assert_json '.interfaces[0].sandbox' "$netns"
    assert_json '[.ips[].interface] | unique | tostring' '[0]'
    assert_result_addrs "$@"
    if [[ $version == 0.* ]]; then
        assert_json '[.ips[] | .version == (if (.address | contains(":")) then "6" else "4" end)] | all' true
    else
        assert_json '[.ips[] | has("version")] | any' false
    fi
}

assert_a_in_pod() {
    assert_link_up pod "$NIC_A"
    assert_addrs pod "$NIC_A" "$A_V4" "$A_V6"
    assert_mac pod "$NIC_A" "$A_MAC"
    assert_route pod 10.99.0.0/16 10.77.0.1 "$NIC_A"
    assert_route pod 2001:db8:99::/48 2001:db8:77::1 "$NIC_A"
    assert_no_link host "$NIC_A"
}

assert_b_in_pod() {
    assert_link_up pod "$NIC_B"
    assert_addrs pod "$NIC_B" "$B_V4" "$B_V6"
    assert_mac pod "$NIC_B" "$B_MAC"
    assert_mtu pod "$NIC_B" 9000
    assert_route pod 10.98.0.0/16 10.78.0.1 "$NIC_B"
    assert_no_link host "$NIC_B"
}

assert_a_on_host() {
    assert_link_up host "$NIC_A"
    assert_addrs host "$NIC_A" "$A_V4" "$A_V6"
    assert_addr_flag host "$NIC_A" "$A_V6" nodad
    assert_mac host "$NIC_A" "$A_MAC"
    assert_mtu host "$NIC_A" 1500
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC_A"
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC_A"
    assert_no_link pod "$NIC_A"
}

assert_b_on_host() {
    assert_link_up host "$NIC_B"
    assert_addrs host "$NIC_B" "$B_V4" "$B_V6"
    assert_addr_flag host "$NIC_B" "$B_V6" nodad
    assert_mac host "$NIC_B" "$B_MAC"
    assert_mtu host "$NIC_B" 9000
    assert_route host 10.98.0.0/16 10.78.0.1 "$NIC_B"
    assert_no_link pod "$NIC_B"
}

assert_bystander_untouched() {
    assert_link_up host "c${TID}"
    assert_addrs host "c${TID}" 10.79.0.2/24
    assert_no_link pod "c${TID}"
}

# The whole life of the two-NIC pod at one cniVersion, with CNI_NETNS=$1.
two_nic_pod() {
    local version=$1 netns=$2
    local conf1 conf2 res1 res2
    conf1=$(delegate_conf "$version" "$PCI_A")
    conf2=$(delegate_conf "$version" "$PCI_B")

    # ADD net1 (device A), then net2 (device B), same sandbox
    run_plugin ADD "$SANDBOX" "$netns" net1 "$conf1"
    assert_plugin_ok
    assert_multus_result "$version" net1 "$A_MAC" "$netns" "$A_V4" "$A_V6"
    assert_json '[.routes[] | select(.dst == "10.99.0.0/16" and .gw == "10.77.0.1")] | length' 1
    res1=$output

    run_plugin ADD "$SANDBOX" "$netns" net2 "$conf2"
    assert_plugin_ok
    assert_multus_result "$version" net2 "$B_MAC" "$netns" "$B_V4" "$B_V6"
    assert_json '[.routes[] | select(.dst == "10.98.0.0/16" and .gw == "10.78.0.1")] | length' 1
    res2=$output

    # both in the pod under their host names, answering to net1/net2
    assert_a_in_pod
    assert_b_in_pod
    assert_answers_to pod net1 "$NIC_A"
    assert_answers_to pod net2 "$NIC_B"
    assert_bystander_untouched

    # one state file per attachment, keyed by CNI_IFNAME, with the pod's identity
    local f
    for f in net1:"$NIC_A":"$PCI_A" net2:"$NIC_B":"$PCI_B"; do
        IFS=: read -r ifn nic _ <<<"$f"
        local sf
        sf=$(state_file "$SANDBOX" "$ifn")
        [[ -f $sf ]] || die "no state file $sf: $(ls -la "$STATE_DIR")"
        assert_json .containerId "$SANDBOX" "$(cat "$sf")"
        assert_json .ifname "$ifn" "$(cat "$sf")"
        assert_json .host.name "$nic" "$(cat "$sf")"
        assert_json .pod.namespace "$POD_K8S_NS" "$(cat "$sf")"
        assert_json .pod.name "$POD_K8S_NAME" "$(cat "$sf")"
        assert_json .pod.uid "$POD_UID" "$(cat "$sf")"
    done
    assert_json '.pciAddress' "$PCI_A" "$(cat "$(state_file "$SANDBOX" net1)")"
    assert_json '.pciAddress' "$PCI_B" "$(cat "$(state_file "$SANDBOX" net2)")"

    local del1=$conf1 del2=$conf2
    if version_at_least_040 "$version"; then
        # CHECK each attachment with its own prevResult
        run_plugin CHECK "$SANDBOX" "$netns" net1 "$(with_prev "$conf1" "$res1")"
        assert_plugin_ok_silent
        run_plugin CHECK "$SANDBOX" "$netns" net2 "$(with_prev "$conf2" "$res2")"
        assert_plugin_ok_silent
        # CNI_IFNAME picks the attachment: net1 with net2's result does not match
        run_plugin CHECK "$SANDBOX" "$netns" net1 "$(with_prev "$conf1" "$res2")"
        assert_cni_error 105
        del1=$(with_prev "$conf1" "$res1")
        del2=$(with_prev "$conf2" "$res2")
    fi

    # DEL in reverse order: net2 first; net1 stays in the pod meanwhile
    run_plugin DEL "$SANDBOX" "$netns" net2 "$del2"
    assert_plugin_ok_silent
    assert_b_on_host
    assert_a_in_pod
    [[ ! -e $(state_file "$SANDBOX" net2) ]] || die "net2 state not removed"
    [[ -e $(state_file "$SANDBOX" net1) ]] || die "net1 state removed by net2's DEL"
    if version_at_least_040 "$version"; then
        run_plugin CHECK "$SANDBOX" "$netns" net1 "$(with_prev "$conf1" "$res1")"
        assert_plugin_ok_silent
    fi

    run_plugin DEL "$SANDBOX" "$netns" net1 "$del1"
    assert_plugin_ok_silent
    assert_a_on_host
    assert_b_on_host
    assert_bystander_untouched
    assert_no_state_left

    # Multus (or the kubelet) repeats DELs: harmless
    run_plugin DEL "$SANDBOX" "$netns" net2 "$del2"
    assert_plugin_ok_silent
    run_plugin DEL "$SANDBOX" "$netns" net1 "$del1"
    assert_plugin_ok_silent
    assert_a_on_host
    assert_b_on_host
}

@test "Multus delegate config is examples/multus-delegate.json plus the log level (sanity)" {
    conf=$(delegate_conf 0.3.1 "$PCI_A")
    assert_json .type amd-host-device "$conf"
    assert_json .deviceID "$PCI_A" "$conf"
    assert_json .pciBusID "$PCI_A" "$conf"
    assert_json '.name' "$(jq -r .name "$REPO/examples/multus-delegate.json")" "$conf"
    [[ $(jq -r .cniVersion "$REPO/examples/multus-delegate.json") == 0.3.1 ]] ||
        die "examples/multus-delegate.json is not at 0.3.1 like the NADs"
}

@test "two NICs from one NAD at cniVersion 0.3.1 (the NADs' version): ADD net1+net2, DEL net2 then net1" {
    two_nic_pod 0.3.1 "$POD_NETNS"
}

@test "two NICs from one NAD at cniVersion 0.4.0: ADD, CHECK with prevResult, DEL with prevResult in reverse order" {
    two_nic_pod 0.4.0 "$POD_NETNS"
}

@test "two NICs from one NAD at cniVersion 1.0.0, netns bind-mounted like containerd's /var/run/netns/cni-<uuid>" {
    # the runtime's netns file: a bind mount of the pod's netns, visible in the
    # host's mount namespace (where the plugin runs)
    local nsfile=$WORKDIR/netns/cni-$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$WORKDIR/netns"
    touch "$nsfile"
    run_in_host_ns mount --bind "$POD_NETNS" "$nsfile" || die "cannot bind-mount the pod netns"
    two_nic_pod 1.0.0 "$nsfile"
}

@test "two NICs from one NAD at cniVersion 1.1.0" {
    two_nic_pod 1.1.0 "$POD_NETNS"
}

@test "the pod lists the NAD twice but got one device: net2 fails with code 7, Multus' cleanup DELs restore net1" {
    run_plugin ADD "$SANDBOX" "$POD_NETNS" net1 "$(delegate_conf 0.3.1 "$PCI_A")"
    assert_plugin_ok
    assert_a_in_pod

    # no deviceID for the second entry
    run_plugin ADD "$SANDBOX" "$POD_NETNS" net2 "$(delegate_conf 0.3.1)"
    assert_cni_error 7
    [[ $output == *"no device selected"* ]] || die "message does not say no device was selected: $output"
    assert_a_in_pod
    assert_b_on_host
    assert_bystander_untouched
    [[ ! -e $(state_file "$SANDBOX" net2) ]] || die "a failed ADD left state"

    # Multus tears down every delegate of the failed pod, the failed one included
    run_plugin DEL "$SANDBOX" "$POD_NETNS" net2 "$(delegate_conf 0.3.1)"
    assert_plugin_ok_silent
    run_plugin DEL "$SANDBOX" "$POD_NETNS" net1 "$(delegate_conf 0.3.1 "$PCI_A")"
    assert_plugin_ok_silent
    assert_a_on_host
    assert_b_on_host
    assert_bystander_untouched
}

@test "Multus DEL with prevResult after the pod's netns is gone: both NICs come back" {
    local conf1 conf2 res1 res2
    conf1=$(delegate_conf 1.0.0 "$PCI_A")
    conf2=$(delegate_conf 1.0.0 "$PCI_B")
    run_plugin ADD "$SANDBOX" "$POD_NETNS" net1 "$conf1"
    assert_plugin_ok
    res1=$output
    run_plugin ADD "$SANDBOX" "$POD_NETNS" net2 "$conf2"
    assert_plugin_ok
    res2=$output

    # the kernel's hand-back of physical NICs when the netns dies (simulated for
    # veths): DOWN, no addresses, under their pod-side or a devN name
    hand_back_to_host "$NIC_A" dev4
    hand_back_to_host "$NIC_B" "$NIC_B"
    kill_pod_netns

    # Multus (thick) still has the netns path in its cache; the kubelet may also send ""
    run_plugin DEL "$SANDBOX" "$POD_NETNS" net2 "$(with_prev "$conf2" "$res2")"
    assert_plugin_ok_silent
    run_plugin DEL "$SANDBOX" "" net1 "$(with_prev "$conf1" "$res1")"
    assert_plugin_ok_silent
    assert_no_link host dev4
    for nic in "$NIC_A" "$NIC_B"; do
        assert_link_up host "$nic"
    done
    assert_addrs host "$NIC_A" "$A_V4" "$A_V6"
    assert_addrs host "$NIC_B" "$B_V4" "$B_V6"
    assert_mtu host "$NIC_B" 9000
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC_A"
    assert_route host 2001:db8:99::/48 2001:db8:77::1 "$NIC_A"
    assert_route host 10.98.0.0/16 10.78.0.1 "$NIC_B"
}

#!/usr/bin/env bats
#
# The node policy file itself: found through AMD_HOST_DEVICE_NODE_POLICY or at
# /etc/amd-host-device/node.json; missing, it means the secure defaults; used
# only if it is a regular file that only root can change, and refused (code 7,
# naming the file) when it is not, or does not parse. A refused policy moves
# nothing and creates nothing: not the state dir, not the log.
#
# Whatever may fall back on the built-in defaults runs with a tmpfs over
# /var/lib (private_var_lib), and the test of the default path with an /etc of
# its own (an overlay in the host mount namespace): never the machine's.

load helpers

setup() {
    basic_setup
    standard_nic
}

# expect_policy_refused <message part>: ADD is refused with code 7, the message
# names the policy file and says why, and nothing happened (not even the log).
expect_policy_refused() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_refused_untouched 7 "node policy $POLICY_FILE: $1"
    [[ ! -e $LOG_FILE ]] || die "a refused policy's log file was written: $(cat "$LOG_FILE")"
}

# policy_text <text>: the policy file holds exactly <text> (root's, 0644).
policy_text() {
    printf '%s' "$1" >"$POLICY_FILE"
    chmod 0644 "$POLICY_FILE"
}

# add_del_with_state_in <dir>: ADD puts the state file in <dir>, DEL gives the NIC back.
add_del_with_state_in() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    run_in_host_ns test -f "$1/$CID-net1.json" || die "no state file in $1: $(run_in_host_ns ls -la "$1" 2>&1)"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_nic_home
    run_in_host_ns test ! -e "$1/$CID-net1.json" || die "state file left in $1 after DEL"
}

# An /etc of the test's own in the host mount namespace: the machine's, with
# amd-host-device/node.json (a copy of the test's policy) over it. The upper
# layer is written before the mount, so nothing can reach the real /etc.
private_etc_with_policy() {
    local ovl=$WORKDIR/etc-overlay
    mkdir -p "$ovl/upper/amd-host-device" "$ovl/work"
    cp -p "$POLICY_FILE" "$ovl/upper/amd-host-device/node.json"
    run_in_host_ns mount -t overlay amdhd-etc -o "lowerdir=/etc,upperdir=$ovl/upper,workdir=$ovl/work" /etc ||
        skip "cannot mount an overlay over /etc in the host ns (no overlayfs for $WORKDIR?)"
}

###########################################################################
# where the policy comes from

@test "no policy file: the secure defaults, a NAD's stateDir is refused (7) naming the missing file" {
    private_var_lib
    PLUGIN_NODE_POLICY=$WORKDIR/no-such-node.json run_plugin ADD "$CID" "$POD_NETNS" net1 \
        "$(config_for "net-$TID" "{\"deviceID\":\"$PCI\",\"stateDir\":\"$STATE_DIR\"}")"
    assert_refused_untouched 7 "\"stateDir\" may not be set by a network config on this node (node policy $WORKDIR/no-such-node.json)"
}

@test "no policy file: ADD and DEL work with the built-in defaults (state in /var/lib/cni/amd-host-device, the log on stderr)" {
    private_var_lib
    PLUGIN_NODE_POLICY=$WORKDIR/no-such-node.json add_del_with_state_in /var/lib/cni/amd-host-device
    [[ ! -e $STATE_DIR && ! -e $LOG_FILE ]] || die "the test's (absent) policy's state dir or log was used"
    [[ $stderr == *" info DEL network=net-$TID "*" restored $NIC "* ]] || die "DEL's log is not on stderr: $stderr"
    assert_one_event_per_line stderr "$stderr"
}

@test "a valid policy file: its stateDir is used" {
    write_policy "{\"stateDir\":\"$WORKDIR/policy-state\"}"
    add_del_with_state_in "$WORKDIR/policy-state"
    [[ ! -e $STATE_DIR ]] || die "another state dir was used"
}

@test "AMD_HOST_DEVICE_NODE_POLICY unset or empty: /etc/amd-host-device/node.json is the policy" {
    private_var_lib
    write_policy "{\"stateDir\":\"$WORKDIR/etc-state\"}"
    private_etc_with_policy
    PLUGIN_NODE_POLICY="<unset>" add_del_with_state_in "$WORKDIR/etc-state"
    PLUGIN_NODE_POLICY="" add_del_with_state_in "$WORKDIR/etc-state"
}

###########################################################################
# policy files that are refused

@test "a world-writable policy file is refused (7)" {
    chmod 0666 "$POLICY_FILE"
    expect_policy_refused "is group- or world-writable (mode 666)"
}

@test "a group-writable policy file is refused (7)" {
    chmod 0664 "$POLICY_FILE"
    expect_policy_refused "is group- or world-writable (mode 664)"
}

@test "a policy file not owned by root is refused (7)" {
    chown 65534 "$POLICY_FILE"
    expect_policy_refused "is owned by uid 65534, not root"
}

@test "a policy path that is not a regular file (a directory) is refused (7)" {
    rm "$POLICY_FILE"
    mkdir "$POLICY_FILE"
    expect_policy_refused "is not a regular file"
}

@test "a policy file that is not valid JSON is refused (7)" {
    policy_text "{\"stateDir\": \"$STATE_DIR\","
    expect_policy_refused "not valid JSON"
}

@test "a policy file with an unknown key (a typo) is refused (7)" {
    policy_text "{\"stateDri\": \"$STATE_DIR\"}"
    expect_policy_refused "unknown key \"stateDri\""
}

@test "a policy file with a key of the wrong type is refused (7)" {
    write_policy '{"allowUnverifiedSelection": "yes"}'
    expect_policy_refused "\"allowUnverifiedSelection\" must be true or false"
}

###########################################################################
# a policy tightened after ADD: DEL never fails for it, ADD and CHECK refuse

# assert_ignored_logged <verb> <key>: the node's log says <verb> ignored the config's <key>.
assert_ignored_logged() {
    grep -qF "$1 ignores a value of the network config and goes on as the node decides: \"$2\" may not be set by a network config on this node (node policy $POLICY_FILE)" "$LOG_FILE" ||
        die "the node's log does not say $1 ignored \"$2\": $(cat "$LOG_FILE" 2>&1)"
}

# assert_add_check_refused <config> <key>: ADD and CHECK with that config are
# refused (7) naming the key and the policy, and the NIC stays on the host.
assert_add_check_refused() {
    local cmd
    for cmd in ADD CHECK; do
        run_plugin "$cmd" "$CID" "$POD_NETNS" net1 "$1"
        assert_cni_error 7
        assert_msg_contains "\"$2\" may not be set by a network config on this node (node policy $POLICY_FILE)"
        assert_no_link pod "$NIC"
        assert_link_exists host "$NIC"
    done
}

@test "policy tightened after ADD: DEL ignores the NAD's stateDir, finds no state where the node keeps it and gives the NIC back without state (exit 0, logged); ADD and CHECK are refused (7)" {
    local nad_state=$WORKDIR/nad-state config
    allow_nad_keys stateDir
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg dir "$nad_state" \
        '{deviceID: $pci, pciBusID: $pci, stateDir: $dir}')")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    [[ -f $nad_state/$CID-net1.json ]] || die "ADD did not keep its state in the NAD's stateDir: $(ls -la "$nad_state" 2>&1)"
    assert_no_link host "$NIC"

    write_policy # the node's admin takes stateDir back
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    # what the pod had: the addresses, MTU and MAC, UP (a recovery without state
    # reads the addresses in the pod, so without the host's nodad flag)
    assert_link_up host "$NIC"
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mtu host "$NIC" 1500
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_no_link pod "$NIC"
    assert_ignored_logged DEL stateDir
    grep -q "recovering $NIC .* without state of ours" "$LOG_FILE" ||
        die "DEL did not give the NIC back through the recovery without state: $(cat "$LOG_FILE")"
    # the node no longer looks in the NAD's dir: what ADD wrote there stays
    [[ -f $nad_state/$CID-net1.json ]] || die "DEL touched the state dir the node no longer allows"
    assert_no_state_left

    # the runtime's retry: nothing to do, still 0
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"

    assert_add_check_refused "$config" stateDir
}

@test "policy tightened after ADD: DEL ignores the NAD's logFile and gives the NIC back from its state exactly, logging to the node's log; GC too; ADD and CHECK are refused (7)" {
    local nad_log=$WORKDIR/nad.log config
    allow_nad_keys logFile
    config=$(config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg log "$nad_log" \
        '{cniVersion: "1.1.0", deviceID: $pci, pciBusID: $pci, logFile: $log}')")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    [[ -s $nad_log ]] || die "ADD did not log to the NAD's logFile"
    : >"$nad_log"

    write_policy
    # GC of this network, the attachment still valid: nothing to release, no failure
    local gc
    gc=$(jq -c --arg cid "$CID" '. + {"cni.dev/valid-attachments": [{containerID: $cid, ifname: "net1"}]}' <<<"$config")
    run_plugin GC "<unset>" "<unset>" "<unset>" "$gc"
    assert_plugin_ok_silent
    assert_ignored_logged GC logFile
    assert_link_exists pod "$NIC"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
    assert_no_link pod "$NIC"
    assert_no_state_left
    assert_ignored_logged DEL logFile
    grep -q "restored $NIC" "$LOG_FILE" || die "the node's log does not say the NIC was restored: $(cat "$LOG_FILE")"
    [[ ! -s $nad_log ]] || die "DEL wrote to the log file the node no longer allows: $(cat "$nad_log")"

    assert_add_check_refused "$config" logFile
}

@test "a network name an earlier release took but the spec forbids: DEL gives the NIC back exactly (exit 0, logged), ADD and CHECK refuse it (7)" {
    local good bad
    good=$(config_for "net_$TID" "$(jq -cn --arg pci "$PCI" '{cniVersion: "1.0.0", deviceID: $pci, pciBusID: $pci}')")
    bad=$(jq -c '.name = "old net \(.name)"' <<<"$good")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$good"
    assert_plugin_ok

    # GC under a name whose safe stand-in is this live network's real one releases nothing
    local gc
    gc=$(jq -c '.name = (.name | sub("_"; " ")) | .cniVersion = "1.1.0" | . + {"cni.dev/valid-attachments": []}' <<<"$good")
    [[ $(jq -r .name <<<"$gc" | tr ' ' '_') == $(jq -r .name <<<"$good") ]] || die "bad fixture"
    run_plugin GC "<unset>" "<unset>" "<unset>" "$gc"
    assert_plugin_ok_silent
    assert_link_exists pod "$NIC"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$bad"
    assert_plugin_ok_silent
    assert_nic_home
    assert_no_link pod "$NIC"
    assert_no_state_left
    grep -q 'DEL ignores a value of the network config.*"name"' "$LOG_FILE" ||
        die "the node's log does not say the name was ignored: $(cat "$LOG_FILE")"

    local cmd
    for cmd in ADD CHECK; do
        run_plugin "$cmd" "$CID" "$POD_NETNS" net1 "$bad"
        assert_cni_error 7
        assert_msg_contains '"name" "old net'
        assert_no_link pod "$NIC"
        assert_link_exists host "$NIC"
    done
    assert_no_state_left
}

# host_local_config: $NIC's config with host-local IPAM keeping its leases in
# $WORKDIR/leases (an ipam.dataDir the node must allow).
host_local_config() {
    config_for "net-$TID" "$(jq -cn --arg pci "$PCI" --arg dir "$WORKDIR/leases" \
        '{deviceID: $pci, pciBusID: $pci, ipam: {type: "host-local", subnet: "10.55.0.0/24", dataDir: $dir}}')"
}

# leases: host-local's lease files in $WORKDIR/leases.
leases() {
    find "$WORKDIR/leases" -name '10.55.0.*' 2>/dev/null
}

@test "policy tightened after ADD: DEL runs no IPAM whose type ipamTypes no longer lists, gives the NIC back (exit 0, logged); ADD is refused (7)" {
    local config
    config=$(host_local_config)
    write_policy '{"ipamTypes": ["static", "host-local"], "nadMayOverride": ["logLevel", "podInterfaceName", "ipam.dataDir"]}'
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    [[ -n $(leases) ]] || die "host-local kept no lease in $WORKDIR/leases"

    write_policy # the node's admin takes host-local back
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
    assert_no_link pod "$NIC"
    assert_no_state_left
    grep -qF "DEL ignores a value of the network config and goes on as the node decides: \"ipam\" type \"host-local\" is not allowed by the node policy $POLICY_FILE" "$LOG_FILE" ||
        die "the node's log does not say DEL ignored the IPAM: $(cat "$LOG_FILE")"
    [[ -n $(leases) ]] || die "host-local ran on DEL although the node no longer allows it"

    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_cni_error 7
    assert_msg_contains "\"ipam\" type \"host-local\" is not allowed by the node policy $POLICY_FILE"
    assert_nic_home
    assert_no_link pod "$NIC"
    assert_no_state_left "after the refused ADD"
}

@test "policy tightened after ADD: DEL leaves out an ipam.dataDir the policy no longer allows (host-local runs with its default), gives the NIC back (exit 0, logged)" {
    local config
    config=$(host_local_config)
    write_policy '{"ipamTypes": ["static", "host-local"], "nadMayOverride": ["logLevel", "podInterfaceName", "ipam.dataDir"]}'
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok

    write_policy '{"ipamTypes": ["static", "host-local"]}'
    # host-local's default lease dir is under /var/lib: a private one.
    private_var_lib
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
    assert_no_state_left
    assert_ignored_logged DEL ipam.dataDir
    [[ -n $(leases) ]] || die "DEL ran host-local in the dataDir the node no longer allows"
}

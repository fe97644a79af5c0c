#!/usr/bin/env bats
# -*- bats -*-
#
# The admin commands a person runs on a node: --version, --help, list [--json],
# restore <PCI | interface name | container id> [--force] (doctor has
# 870-doctor.bats).
# They run inside the test's host namespace (its fake PCI tree and links), with
# no CNI_COMMAND in the environment, exactly as an admin would run them.

load helpers

# rich_nic, ADDed into the pod.
add_rich_nic() {
    rich_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
}

# expect_restored <target> <stdout part> [restore option...]: `restore <target>`
# exits 0, its stdout says <stdout part>, and the NIC is back as rich_nic made it.
expect_restored() {
    local target=$1 says=$2
    shift 2
    run_admin restore "$target" "$@" --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ $output == *"$says"* ]] || die "stdout does not say '$says': $output"
    assert_nic_restored
}

# A runtime that never calls DEL, and a pod netns that died: the NIC is on the
# host as dev3, DOWN, without addresses; the state file is still there.
strand_nic() {
    add_rich_nic
    hand_back_to_host "$NIC" dev3
    kill_pod_netns
    assert_link_down host dev3
    assert_addrs host dev3
    [[ -e $(state_file "$CID" net1) ]] || die "no state file after ADD"
}

###########################################################################

@test "--version: exit 0, the version on stdout, nothing on stderr" {
    local want
    want=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -1)
    [[ -n $want ]] || die "cannot read the version from Cargo.toml"
    run_admin --version
    assert_admin_ok
    [[ $output == "amd-host-device $want "* ]] || die "expected 'amd-host-device $want ...', got: $output"
    [[ $output == *"1.1.0"* ]] || die "the supported CNI versions are not named: $output"
    [[ -z $stderr ]] || die "unexpected stderr: $stderr"
    # `version` is the same
    run_admin version
    assert_admin_ok
    [[ $output == "amd-host-device $want "* ]] || die "$output"
}

@test "list: a table with container, pod, network, PCI, host name, addresses and where the NIC is now" {
    add_rich_nic
    run_admin list --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ -z $stderr ]] || die "unexpected stderr: $stderr"
    local header row
    header=$(head -1 <<<"$output")
    for col in CONTAINER IFNAME POD NETWORK PCI "HOST NAME" ADDRESSES NOW; do
        [[ $header == *"$col"* ]] || die "header lacks $col: $header"
    done
    [[ $(wc -l <<<"$output") -eq 2 ]] || die "expected a header and one row: $output"
    row=$(sed -n 2p <<<"$output")
    for cell in "${CID:0:12}" net1 "testns/pod-$CID" "net-$TID" "$PCI" "$NIC" "$NIC_V4" "$NIC_V6" \
        "pod $POD_NETNS as $NIC"; do
        [[ $row == *"$cell"* ]] || die "row lacks '$cell': $row"
    done

    # --state-dir=DIR is the same
    run_admin list "--state-dir=$STATE_DIR"
    assert_admin_ok
    [[ $(sed -n 2p <<<"$output") == "$row" ]] || die "--state-dir=DIR differs: $output"

    # a second attachment in another pod: two rows
    make_nic "m${TID}" 0000:5e:00.2 10.78.0.2/24
    new_pod_ns
    run_plugin ADD "${CID}b" "$NEW_POD_NETNS" net2 \
        "$(config_for "other-$TID" '{"deviceID":"0000:5e:00.2"}')"
    assert_plugin_ok
    run_admin list --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ $(wc -l <<<"$output") -eq 3 ]] || die "expected a header and two rows: $output"
    grep -q "testns/pod-${CID}b .*other-$TID .*0000:5e:00.2 .*m${TID} .*10.78.0.2/24 .*pod $NEW_POD_NETNS as m${TID}" \
        <<<"$output" || die "second row wrong: $output"

    # after DEL the attachment is gone from the list
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    run_admin list --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ $(wc -l <<<"$output") -eq 2 ]] || die "expected one row left: $output"
    [[ $output != *"net-$TID"* ]] || die "a deleted attachment is still listed: $output"
}

@test "list --json: one object per attachment with its fields; a stranded NIC shows where it is" {
    add_rich_nic
    run_admin list --json --state-dir "$STATE_DIR"
    assert_admin_ok
    jq -e . <<<"$output" >/dev/null || die "not JSON: $output"
    assert_json 'type' array
    assert_json 'length' 1
    assert_json '.[0].containerId' "$CID"
    assert_json '.[0].ifname' net1
    assert_json '.[0].pod' "testns/pod-$CID"
    assert_json '.[0].network' "net-$TID"
    assert_json '.[0].pciAddress' "$PCI"
    assert_json '.[0].hostName' "$NIC"
    assert_json '.[0].addresses | sort | join(",")' "$(printf '%s\n' "$NIC_V4" "$NIC_V6" | sort | paste -sd,)"
    assert_json '.[0].location.where' pod
    assert_json '.[0].location.netns' "$POD_NETNS"
    assert_json '.[0].location.ifname' "$NIC"

    # the runtime never calls DEL and the netns dies: the NIC is on the host as dev3
    hand_back_to_host "$NIC" dev3
    kill_pod_netns
    run_admin list --json --state-dir "$STATE_DIR"
    assert_admin_ok
    assert_json '.[0].location.where' host
    assert_json '.[0].location.ifname' dev3
    run_admin list --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ $(sed -n 2p <<<"$output") == *"host as dev3"* ]] || die "table does not say where the NIC is: $output"
}

@test "list: a pod name with a newline (from CNI_ARGS) does not forge a row of the table" {
    rich_nic
    PLUGIN_CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAMESPACE=testns;K8S_POD_NAME=pod-$CID"$'\n'"forged-row;K8S_POD_UID=uid-$CID" \
        run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    run_admin list
    assert_admin_ok
    [[ $(wc -l <<<"$output") -eq 2 ]] || die "expected a header and one row: $output"
}

@test "list of an empty or missing state dir" {
    mkdir -p "$STATE_DIR"
    run_admin list --json --state-dir "$STATE_DIR"
    assert_admin_ok
    assert_json 'length' 0
    run_admin list --state-dir "$STATE_DIR"
    assert_admin_ok
    [[ $(wc -l <<<"$output") -eq 1 ]] || die "expected only the header: $output"

    run_admin list --state-dir "$WORKDIR/no-such-dir"
    [[ $status -ne 0 ]] || die "a missing state dir should be an error: $output"
    [[ -z $output ]] || die "errors go to stderr, stdout got: $output"
    [[ $stderr == *"$WORKDIR/no-such-dir"*"does not exist"* ]] || die "stderr does not name the dir: $stderr"
}

@test "without --state-dir, list and restore use the node policy's stateDir" {
    strand_nic
    run_admin list --json
    assert_admin_ok
    assert_json 'length' 1
    assert_json '.[0].containerId' "$CID"
    # a node whose policy names another state dir knows nothing of it
    write_policy "{\"stateDir\":\"$WORKDIR/other-state\"}"
    run_admin list
    [[ $status -ne 0 && $stderr == *"$WORKDIR/other-state"* ]] ||
        die "list did not use the policy's stateDir $WORKDIR/other-state: $status $output $stderr"
    write_policy
    run_admin restore "$PCI"
    assert_admin_ok
    [[ $output == *"restored $NIC"* ]] || die "stdout does not say 'restored $NIC': $output"
    assert_nic_restored
}

@test "restore <PCI>: a NIC stranded by a runtime that never called DEL comes back fully; a second restore is a no-op" {
    strand_nic
    expect_restored "$PCI" "restored $NIC"
    assert_no_link host dev3

    # nothing matches any more: exit 2 (not 1, a failure), stderr says so, nothing changes
    run_admin restore "$PCI" --state-dir "$STATE_DIR"
    [[ $status -eq 2 ]] || die "a restore that matched nothing exited $status, expected 2"
    [[ -z $output && $stderr == *"nothing to restore"*"$PCI"* ]] || die "stdout: $output; stderr: $stderr"
    assert_nic_restored

    # and the runtime's late DEL changes nothing
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "restore refuses a NIC still in a live pod (exit 1, stderr says why); --force takes it out" {
    add_rich_nic
    run_admin restore "$PCI" --state-dir "$STATE_DIR"
    [[ $status -ne 0 ]] || die "restore of a NIC in a live pod succeeded: $output"
    [[ $stderr == *"still in the live pod netns"* && $stderr == *"--force"* ]] ||
        die "stderr does not explain the refusal: $stderr"
    [[ $output != *"restored"* ]] || die "stdout claims a restore: $output"
    # untouched
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    assert_link_up pod "$NIC"
    assert_no_link host "$NIC"
    [[ -e $(state_file "$CID" net1) ]] || die "refused restore removed the state"

    expect_restored "$PCI" "restored $NIC" --force
    # the pod keeps living, without the NIC
    kill -0 "$POD_NS_PID" || die "the pod's netns holder died"
    assert_no_link pod "$NIC"

    # the runtime's DEL afterwards is harmless
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok_silent
    assert_nic_restored
}

@test "restore by host interface name" {
    strand_nic
    expect_restored "$NIC" "restored $NIC"
}

@test "restore by full container id" {
    strand_nic
    expect_restored "$CID" "restored $NIC ($CID/net1)"
}

@test "restore by a 12-character container id prefix, as 'list' shows it; other attachments untouched" {
    rich_nic
    local long=${CID}0123456789abcdef
    run_plugin ADD "$long" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
    make_nic "m${TID}" 0000:5e:00.2 10.78.0.2/24
    new_pod_ns
    run_plugin ADD "other${TID}" "$NEW_POD_NETNS" net1 "$(config_for "other-$TID" '{"deviceID":"0000:5e:00.2"}')"
    assert_plugin_ok
    hand_back_to_host "$NIC" dev3
    kill_pod_netns

    CID=$long expect_restored "${long:0:12}" "restored $NIC ($long/net1)"
    # the other pod keeps its NIC
    assert_addrs "$NEW_POD_NETNS" "m${TID}" 10.78.0.2/24
    [[ -e $(state_file "other${TID}" net1) ]] || die "the other attachment lost its state"
}

@test "restore of something nobody tracks: exit 2, says so on stderr, changes nothing" {
    add_rich_nic
    run_admin restore 0000:99:00.0 --state-dir "$STATE_DIR"
    [[ $status -eq 2 ]] || die "restore of an untracked NIC exited $status, expected 2"
    [[ -z $output ]] || die "stdout not empty: $output"
    [[ $stderr == *"nothing to restore"*"0000:99:00.0"* ]] || die "$stderr"
    assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
    [[ -e $(state_file "$CID" net1) ]] || die "state removed"
}

@test "human errors: unknown command or option, missing argument: non-zero, usage on stderr, nothing on stdout" {
    run_admin frobnicate
    [[ $status -ne 0 ]] || die "unknown command exited 0"
    [[ -z $output ]] || die "stdout not empty: $output"
    [[ $stderr == *frobnicate* && $stderr == *usage:* ]] || die "stderr lacks the command or the usage: $stderr"

    run_admin list --bogus
    [[ $status -ne 0 ]] || die "unknown option exited 0"
    [[ -z $output ]] || die "stdout not empty: $output"
    [[ $stderr == *--bogus* && $stderr == *usage:* ]] || die "$stderr"

    run_admin restore --state-dir "$STATE_DIR"
    [[ $status -ne 0 ]] || die "restore without a target exited 0"
    [[ -z $output ]] || die "stdout not empty: $output"
    [[ $stderr == *"restore needs exactly one"* && $stderr == *usage:* ]] || die "$stderr"

    run_admin restore a b --state-dir "$STATE_DIR"
    [[ $status -ne 0 ]] || die "restore with two targets exited 0"
    [[ -z $output ]] || die "stdout not empty: $output"

    run_admin list --state-dir
    [[ $status -ne 0 ]] || die "--state-dir without a value exited 0"
    [[ $stderr == *"--state-dir needs a directory"* ]] || die "$stderr"

    run_admin --help
    assert_admin_ok
    [[ $output == *usage:* ]] || die "--help does not print the usage on stdout: $output"
    local cmd
    for cmd in doctor list restore --version --help; do
        grep -q "^  amd-host-device $cmd" <<<"$output" || die "--help does not list $cmd: $output"
    done
}

@test "with CNI_COMMAND set, arguments are ignored and the binary is a CNI plugin" {
    # a runtime never passes arguments, but a stray one must not turn a DEL into an admin command
    run --separate-stderr nsenter -n -m -t "$HOST_NS_PID" env -i CNI_COMMAND=VERSION "$PLUGIN" list <<<'{"cniVersion":"1.0.0"}'
    [[ $status -eq 0 ]] || die "VERSION failed: $output $stderr"
    jq -e '.supportedVersions | index("1.1.0")' <<<"$output" >/dev/null || die "not a VERSION answer: $output"
}

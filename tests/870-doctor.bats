#!/usr/bin/env bats
# -*- bats -*-
#
# `amd-host-device doctor [--json]`, the read-only node check, on fake nodes: a
# sound one (every check ok, exit 0), then each thing ADD would refuse at a
# pod's expense on its own (an unsafe policy file, no host-device, a read-only
# or full state dir, a stale attachment, a NIC carrying the default route, a
# bridge port, a checkpoint that does not parse), each with its FAIL or warn
# line and exit status, and where it can, the ADD that agrees. --json says the
# same as the text; doctor changes nothing (links, addresses, routes, files).
# Last, a node of 24 NICs and 100 attachments is checked in under a second.

load helpers

# run_doctor [option...]: doctor in the host ns under the test's policy.
run_doctor() {
    run_admin doctor "$@"
}

# line_of <name>: the report line of check <name> (one), from $output.
line_of() {
    local lines
    lines=$(grep -E "^(ok  |warn|FAIL)  $1: " <<<"$output") || { die "no check '$1' in: $output" || return; }
    [[ $(wc -l <<<"$lines") -eq 1 ]] || { die "check '$1' reported more than once: $lines" || return; }
    echo "$lines"
}

# assert_check <status> <name> [text...]: check <name> has <status> (ok, warn,
# FAIL) and its line contains each text.
assert_check() {
    local want=$1 name=$2 line text
    shift 2
    line=$(line_of "$name") || return
    [[ $line == "$want"* ]] || { die "check '$name' is not $want: $line" || return; }
    for text in "$@"; do
        [[ $line == *"$text"* ]] || { die "check '$name' does not say '$text': $line" || return; }
    done
}

# assert_exit <n>
assert_exit() {
    [[ $status -eq $1 ]] || die "doctor exited $status, expected $1: $output $stderr"
}

# What doctor must not change: the host's and the pod's links (with details),
# addresses and routes, and every file under $WORKDIR with its size, mode and
# mtime (state dir, policy, log, checkpoint).
snapshot() {
    local ns
    for ns in host pod; do
        kill -0 "$POD_NS_PID" 2>/dev/null || [[ $ns == host ]] || continue
        echo "== $ns"
        ns_exec "$ns" ip -d link show
        ns_exec "$ns" ip addr show
        ns_exec "$ns" ip route show table all
        ns_exec "$ns" ip -6 route show table all
    done
    echo "== files"
    find "$WORKDIR" -printf '%p %s %m %u %T@\n' | sort
    sha256sum "$POLICY_FILE"
}

# registered <pci>...: a kubelet checkpoint whose device plugin registered
# these NICs as amd.com/nic; $PCI, if among them, allocated to this test's pod
# (uid-$CID).
registered() {
    mkdir -p "$(dirname "$KUBELET_CHECKPOINT")"
    jq -n --arg uid "uid-$CID" --arg pci "$PCI" '{Data: {
            PodDeviceEntries: (if $ARGS.positional | index($pci) then
                [{PodUID: $uid, ContainerName: "app", ResourceName: "amd.com/nic",
                  DeviceIDs: {"0": [$pci]}}] else [] end),
            RegisteredDevices: {"amd.com/nic": $ARGS.positional}},
          Checksum: 1}' --args "$@" >"$KUBELET_CHECKPOINT"
}

# assert_json_matches_text: doctor --json says what the text said (same checks,
# statuses, details, fixes and summary), and the same exit status.
assert_json_matches_text() {
    local text=$output text_status=$status
    run_doctor --json "$@"
    [[ $status -eq $text_status ]] || die "--json exited $status, the text $text_status"
    jq -e '.checks | type == "array" and length > 0' <<<"$output" >/dev/null || die "--json is not a report: $output"
    jq -e 'all(.checks[]; (.name | type) == "string" and (.status | IN("ok", "warn", "FAIL"))
                and (.detail | type) == "string" and (.fix == null or (.fix | type) == "string"))' \
        <<<"$output" >/dev/null || die "a check lacks name/status/detail/fix: $output"
    local rebuilt
    rebuilt=$(jq -r '.checks[] | "\((.status + "    ")[:4])  \(.name): \(.detail)\(if .fix then "; fix: \(.fix)" else "" end)"' <<<"$output"
        jq -r '"doctor: \(.summary.ok) ok, \(.summary.warn) warn, \(.summary.fail) FAIL"' <<<"$output")
    # free space and inodes change between two runs on a busy machine
    local varies='s/^\(.... *state-dir space: [^:]*\): .* free/\1: (free space)/'
    text=$(sed "$varies" <<<"$text")
    rebuilt=$(sed "$varies" <<<"$rebuilt")
    [[ $rebuilt == "$text" ]] || die "--json differs from the text:
--- text
$text
--- json
$rebuilt"
}

# A NIC in the pod, attached by a real ADD of the Multus config.
attach_nic() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
}

###########################################################################

@test "a sound node: every check ok, exit 0, --json says the same, and nothing changed" {
    standard_nic
    make_nic "f${TID}" 0000:5e:00.2 10.70.0.2/24
    registered "$PCI" 0000:5e:00.2
    attach_nic
    local before
    before=$(snapshot)

    run_doctor
    assert_exit 0
    [[ -z $stderr ]] || die "stderr: $stderr"
    assert_check ok policy "$POLICY_FILE (uid 0, mode 0644): parsed" "NADs may override logLevel, podInterfaceName; delegates host-device; IPAM types static;"
    assert_check ok "plugin host-device" "$CNI_PLUGIN_DIR/host-device (supports" "1.0.0"
    assert_check ok "plugin static" "$CNI_PLUGIN_DIR/static (supports"
    assert_check ok state-dir "$STATE_DIR (uid 0, mode 0700)"
    assert_check ok "state-dir writable" "$STATE_DIR"
    assert_check ok "state-dir space" "free"
    assert_check ok "state-dir temporary files" "none left over"
    assert_check ok "attachment $CID/net1" "pod testns/pod-$CID, network net-$TID: $NIC (PCI $PCI) in pod netns $POD_NETNS as $NIC"
    assert_check ok "kubelet checkpoint" "$KUBELET_CHECKPOINT: 1 allocated network functions" "amd.com/nic (2 devices)"
    assert_check ok "allocation $PCI" "allocated to pod uid-$CID: in its pod (netns $POD_NETNS as $NIC), as attachment $CID/net1 says"
    assert_check ok "nic $PCI" "held by attachment $CID/net1, in pod netns $POD_NETNS as $NIC" "offered to pods as amd.com/nic"
    assert_check ok "nic 0000:5e:00.2" "f${TID} (driver fakenic, up): ADD would accept it; offered to pods as amd.com/nic"
    assert_check ok rdma "no RDMA subsystem"
    assert_check ok log-file "$LOG_FILE: a regular file, writable"
    [[ $(tail -1 <<<"$output") == "doctor: 14 ok, 0 warn, 0 FAIL" ]] || die "summary: $(tail -1 <<<"$output")"
    ! grep -qvE '^(ok  |doctor: )' <<<"$output" || die "a line is not ok: $output"

    assert_json_matches_text
    [[ $(snapshot) == "$before" ]] || die "doctor changed the node:
$(diff <(echo "$before") <(snapshot))"
}

@test "an unsafe policy file (group-writable, not root's): FAIL naming the file and the fix, exit 1" {
    standard_nic
    chmod 0664 "$POLICY_FILE"
    run_doctor
    assert_exit 1
    assert_check FAIL policy "$POLICY_FILE (uid 0, mode 0664)" "every ADD fails (code 7)" \
        "group- or world-writable" "fix: " "chmod 0644 $POLICY_FILE"
    assert_json_matches_text
    # ADD refuses the same file
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 7

    chmod 0644 "$POLICY_FILE"
    chown 1000 "$POLICY_FILE"
    run_doctor
    assert_exit 1
    assert_check FAIL policy "(uid 1000, mode 0644)" "not root" "chown root:root $POLICY_FILE"

    chown 0 "$POLICY_FILE"
    run_doctor
    assert_exit 0
    assert_check ok policy "parsed"
}

@test "no host-device (nor static) where the plugin looks: FAIL, exit 1; --cni-path finds them where the runtime keeps them" {
    standard_nic
    # The runtime's own plugin dir, copied before the usual ones are hidden.
    mkdir -p "$WORKDIR/cni"
    cp "$CNI_PLUGIN_DIR/host-device" "$CNI_PLUGIN_DIR/static" "$WORKDIR/cni/"
    local dir
    for dir in /opt/cni/bin /usr/lib/cni /usr/libexec/cni; do
        if run_in_host_ns test -d "$dir"; then
            run_in_host_ns mount -t tmpfs -o size=64k,mode=0755 "amdhd-empty-$TID" "$dir" ||
                die "cannot hide $dir in the host ns"
        fi
    done
    run_doctor
    assert_exit 1
    assert_check FAIL "plugin host-device" "not found in /opt/cni/bin, /usr/lib/cni, /usr/libexec/cni" \
        "code 50" "fix: install the reference CNI plugins"
    assert_check FAIL "plugin static" "not found in"
    assert_json_matches_text
    # ADD agrees (its CNI_PATH holds no host-device either)
    PLUGIN_CNI_PATH=/usr/lib/cni run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 50

    run_doctor --cni-path "$WORKDIR/cni"
    assert_exit 0
    assert_check ok "plugin host-device" "$WORKDIR/cni/host-device (supports"
    assert_check ok "plugin static" "$WORKDIR/cni/static (supports"
}

@test "a read-only state directory: FAIL state-dir writable, exit 1" {
    standard_nic
    attach_nic
    run_in_host_ns mount --bind "$STATE_DIR" "$STATE_DIR"
    run_in_host_ns mount -o remount,bind,ro "$STATE_DIR" || die "cannot make $STATE_DIR read-only"
    run_doctor
    assert_exit 1
    assert_check FAIL "state-dir writable" "$STATE_DIR: Read-only file system" "every ADD fails (code 5)" \
        "fix: mount the file system of $STATE_DIR read-write"
    # what is in it is still checked
    assert_check ok "attachment $CID/net1" "in pod netns $POD_NETNS"
    assert_json_matches_text
}

@test "a full state directory (a small tmpfs, filled): FAIL state-dir space, exit 1" {
    standard_nic
    mkdir -p "$STATE_DIR"
    chmod 0700 "$STATE_DIR"
    run_in_host_ns mount -t tmpfs -o size=256k,mode=0700 "amdhd-full-$TID" "$STATE_DIR" ||
        die "cannot mount a tmpfs on $STATE_DIR"
    run_in_host_ns dd if=/dev/zero of="$STATE_DIR/filler" bs=4k 2>/dev/null || true
    run_doctor
    assert_exit 1
    assert_check FAIL "state-dir space" "$STATE_DIR: 0 B free" "full, ADD cannot write its state (code 5)" \
        "fix: free space on the file system of $STATE_DIR"
    assert_check ok "state-dir writable"
    assert_json_matches_text
    # ADD agrees
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 5
    assert_nic_home
}

@test "a stale attachment (its pod's netns gone, the NIC handed back as dev3): warn naming the restore that fixes it, exit 0" {
    rich_nic
    attach_nic
    hand_back_to_host "$NIC" dev3
    kill_pod_netns
    run_doctor
    assert_exit 0
    assert_check warn "attachment $CID/net1" "stale, its pod's netns $POD_NETNS is gone; the NIC is on the host as dev3" \
        "; fix: amd-host-device restore $CID"
    local fix
    fix=$(line_of "attachment $CID/net1" | sed 's/.*; fix: amd-host-device //')
    assert_json_matches_text

    # the fix it names works, and then the node is clean
    # shellcheck disable=SC2086
    run_admin $fix
    assert_admin_ok
    assert_nic_restored
    run_doctor
    assert_exit 0
    [[ $output != *"attachment $CID"* ]] || die "the restored attachment is still reported: $output"
    ! grep -q '^warn' <<<"$output" || die "warnings left after the restore: $output"
}

@test "a NIC carrying the host's default route: warn without a checkpoint, FAIL when kubelet offers it to pods (ADD: 104), ok when the policy allows it" {
    standard_nic
    add_route default 10.77.0.1 "$NIC"
    run_doctor
    assert_exit 0
    assert_check warn "nic $PCI" "$NIC (driver fakenic, up): ADD would refuse it (code 104)" \
        "carries a default route" "fix: do not offer the host's uplink to pods"

    registered "$PCI"
    run_doctor
    assert_exit 1
    assert_check FAIL "nic $PCI" "ADD would refuse it (code 104)" "offered to pods as amd.com/nic"
    assert_json_matches_text
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 104
    assert_nic_home

    write_policy '{"allowDefaultRouteDevice": true}'
    run_doctor
    assert_exit 0
    assert_check ok "nic $PCI" "ADD would accept it" "offered to pods as amd.com/nic"
    assert_check ok policy "allowDefaultRouteDevice"
}

@test "a bridge port: FAIL when kubelet offers it to pods (ADD: 107), the host's own (ok) when it does not" {
    standard_nic
    run_in_host_ns ip link add name "br$TID" type bridge || die "cannot create a bridge"
    run_in_host_ns ip link set "$NIC" master "br$TID"
    registered "$PCI"
    run_doctor
    assert_exit 1
    assert_check FAIL "nic $PCI" "ADD would refuse it (code 107)" "$NIC is a port of br$TID" \
        "fix: take it out of the host's bridge/bond"
    assert_json_matches_text
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 107

    # registered: another NIC only; this one is the host's
    registered 0000:5e:00.9
    run_doctor
    assert_exit 0
    assert_check ok "nic $PCI" "the host's own; $NIC (driver fakenic, up): ADD would refuse it (code 107)" \
        "not offered to pods by kubelet"
}

@test "a kubelet checkpoint that cannot be parsed: FAIL, exit 1 (ADD: 6)" {
    standard_nic
    mkdir -p "$(dirname "$KUBELET_CHECKPOINT")"
    echo '{"Data": {"PodDeviceEntries": [' >"$KUBELET_CHECKPOINT"
    run_doctor
    assert_exit 1
    assert_check FAIL "kubelet checkpoint" "$KUBELET_CHECKPOINT cannot be parsed" "code 6 for every pod" \
        "fix: kubelet rewrites $KUBELET_CHECKPOINT when it restarts"
    assert_json_matches_text
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 6
}

@test "the log file the policy names is a symlink: FAIL; and doctor never writes a log line to it" {
    standard_nic
    ln -s "$WORKDIR/elsewhere.log" "$LOG_FILE"
    run_doctor
    assert_exit 1
    assert_check FAIL log-file "$LOG_FILE is a symlink"
    [[ ! -e $WORKDIR/elsewhere.log ]] || die "something was written through the symlink"
    rm "$LOG_FILE"
    run_doctor
    assert_exit 0
    assert_check ok log-file "$LOG_FILE does not exist yet"
    [[ ! -e $LOG_FILE ]] || die "doctor created the log file"
}

@test "24 NICs and 100 attachments are checked in under a second" {
    local i pci n=0
    for i in $(seq 0 23); do
        pci=$(printf '0000:5e:%02x.%x' $((i / 8)) $((i % 8)))
        make_nic "q${TID}$i" "$pci" "10.80.$i.2/24"
    done
    PCI=0000:5e:00.0
    NIC=q${TID}0
    attach_nic
    # 99 more attachments of the same NIC, half in the live pod, half stale
    local state netns
    state=$(cat "$(state_file "$CID" net1)")
    for i in $(seq 1 99); do
        netns=$POD_NETNS
        ((i % 2)) && netns=/proc/999999999/ns/net
        jq --arg cid "${CID}x$i" --arg ns "$netns" '.containerId = $cid | .netns = $ns' \
            <<<"$state" >"$(state_file "${CID}x$i" net1)"
        chmod 0600 "$(state_file "${CID}x$i" net1)"
    done
    local start end ms
    start=$(date +%s%N)
    run_doctor
    end=$(date +%s%N)
    ms=$(((end - start) / 1000000))
    assert_exit 0
    n=$(grep -c '^[a-zA-Z ]*  nic ' <<<"$output")
    [[ $n -eq 24 ]] || die "expected 24 nic lines, got $n: $output"
    n=$(grep -c '^[a-zA-Z ]*  attachment ' <<<"$output")
    [[ $n -eq 100 ]] || die "expected 100 attachment lines, got $n"
    n=$(grep -c '^warn  attachment .*stale' <<<"$output")
    [[ $n -eq 50 ]] || die "expected 50 stale attachments, got $n"
    echo "# doctor on 24 NICs and 100 attachments: $ms ms" >&3
    ((ms < 1000)) || die "doctor took $ms ms on 24 NICs and 100 attachments"
}

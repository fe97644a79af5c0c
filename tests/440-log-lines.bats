#!/usr/bin/env bats
#
# One event is one log line, whatever a tenant puts in what gets logged: a
# K8S_POD_UID or a pod name in CNI_ARGS, a device name, a delegate's stderr or
# its error message. Control characters are escaped (a newline becomes the two
# characters \n), so every line of the log file (the policy's logFile) and of
# stderr starts with "2026-12-01T13:08:11.123Z <level> ", and a forged line
# (itself with a timestamp) never starts a line. The log file is written only
# if it is a regular file, never through a symlink.

load helpers

setup() {
    basic_setup
    standard_nic
    # What a tenant would like to see as a line of its own in the node's log.
    FORGED="2026-12-01T13:08:11.123Z info ADD network=net-$TID container=$CID ifname=net1 attached $NIC"
}

# fake_host_device <shell line>: $WORKDIR/cni/host-device runs it (stdin: the
# config); run the plugin with PLUGIN_CNI_PATH=$WORKDIR/cni:... to use it.
fake_host_device() {
    mkdir -p "$WORKDIR/cni"
    printf '#!/bin/sh\n%s\n' "$1" >"$WORKDIR/cni/host-device"
    chmod +x "$WORKDIR/cni/host-device"
}

# assert_logged_escaped <text>: the log has <text> with its newlines as \n, on one line.
assert_logged_escaped() {
    grep -qF -- "${1//$'\n'/\\n}" "$LOG_FILE" || die "the log does not show '$1' escaped: $(cat "$LOG_FILE")"
}

# assert_one_event_per_line for the log file and the last run's stderr.
assert_log_and_stderr_unforged() {
    assert_one_event_per_line "the log $LOG_FILE" "$(cat "$LOG_FILE" 2>/dev/null)" "$FORGED"
    assert_one_event_per_line stderr "$stderr" "$FORGED"
}

@test "log lines: a K8S_POD_UID with a newline, quoted by a 106 refusal; a pod name with one" {
    jq -n --arg pci "$PCI" '{Data: {PodDeviceEntries: [], RegisteredDevices: {"amd.com/nic": [$pci]}}}' \
        >"$(mkdir -p "$(dirname "$KUBELET_CHECKPOINT")" && echo "$KUBELET_CHECKPOINT")"
    PLUGIN_CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAMESPACE=testns;K8S_POD_NAME=p$TID"$'\n'"$FORGED;K8S_POD_UID=u$TID"$'\n'"$FORGED" \
        run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 106
    assert_logged_escaped "u$TID"$'\n'"$FORGED"
    assert_log_and_stderr_unforged
}

@test "log lines: a device name with a newline (refused, 7)" {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(config_for "net-$TID" "$(jq -cn --arg d "x"$'\n'"$FORGED" '{device: $d}')")"
    assert_cni_error 7
    [[ $stderr == *'"device"'* && $(wc -l <<<"$stderr") -eq 1 ]] || die "the refusal is not one line of stderr: $stderr"
    assert_log_and_stderr_unforged
}

@test "log lines: a delegate's stderr with a newline, at debug level" {
    printf 'warning: one\n%s\n' "$FORGED" >"$WORKDIR/delegate.stderr"
    fake_host_device "cat '$WORKDIR/delegate.stderr' >&2; exec '$CNI_PLUGIN_DIR/host-device' \"\$@\""
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok
    assert_logged_escaped "host-device ADD stderr: warning: one"$'\n'"$FORGED"
    assert_log_and_stderr_unforged
}

@test "log lines: a delegate's error message with a newline (103, rolled back)" {
    jq -cn --arg m "boom"$'\n'"$FORGED" '{code: 999, msg: $m}' >"$WORKDIR/delegate.stdout"
    fake_host_device "cat >/dev/null; cat '$WORKDIR/delegate.stdout'; exit 1"
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_cni_error 103
    assert_nic_home
    assert_logged_escaped "boom"$'\n'"$FORGED"
    assert_log_and_stderr_unforged
}

@test "log lines: a log file that is a planted symlink or a FIFO is never written; the lines go to stderr" {
    mkdir -p "$WORKDIR/etc"
    echo "root:x:0:0:root:/root:/bin/sh" >"$WORKDIR/etc/passwd"
    local sum kind
    sum=$(sha256sum "$WORKDIR/etc/passwd")
    ln -s "$WORKDIR/etc/passwd" "$WORKDIR/link.log"
    mkfifo "$WORKDIR/fifo.log"
    for kind in link fifo; do
        write_policy "{\"logFile\": \"$WORKDIR/$kind.log\"}"
        add_del_ok "$(multus_config)"
        [[ $stderr == *" info DEL "*" restored $NIC "* ]] || die "$kind: DEL's log lines are not on stderr: $stderr"
        assert_one_event_per_line stderr "$stderr"
    done
    [[ $(sha256sum "$WORKDIR/etc/passwd") == "$sum" && -L $WORKDIR/link.log && -p $WORKDIR/fifo.log ]] ||
        die "the symlink's target or the FIFO was written or replaced: $(ls -la "$WORKDIR")"
}

@test "log lines: a refused network config is in the node's log file too" {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(multus_config | jq -c --arg n "x$TID"$'\n'"$FORGED" '.name = $n')"
    assert_cni_error 7
    [[ -s $LOG_FILE ]] || die "the refusal is not in the node's log file $LOG_FILE (stderr: $stderr)"
    assert_logged_escaped "x$TID"$'\n'"$FORGED"
    assert_log_and_stderr_unforged
}

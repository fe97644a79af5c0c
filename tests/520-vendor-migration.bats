#!/usr/bin/env bats
# -*- bats -*-
#
# Upgrading from the vendor plugin with pods running. The vendor kept one file,
# <stateDir>/ip-interface-mappings.json: a JSON object keyed by PCI address,
# each value {"hostInterfaceName", "hostInterfaceIPs" (a list or null),
# "state" ("UP"/"DOWN", left out when empty)}, written by Go's MarshalIndent
# with a two-space indent, mode 0644. The tests play the vendor's ADD
# themselves (the NIC moved into the pod, renamed CNI_IFNAME there by its
# v1.2+ releases or kept under its host name by older ones, host-device's
# alias = the host name, its addresses, UP), write its entry, then run our DEL
# as Multus sends it (deviceID): the NIC comes back under its host name with the
# entry's addresses and up/down state, from the pod or from the host, and only
# its entry is removed (the file goes with the last one). A malformed file is
# logged and left alone. `list` shows the vendor's attachments as (vendor);
# `restore` gives back one that is on the host.

load helpers

MAPPINGS=ip-interface-mappings.json

setup() {
    basic_setup
    standard_nic
    # a second NIC the vendor attached, to another pod
    NIC_B=m${TID}
    PCI_B=0000:5e:00.2
    make_nic "$NIC_B" "$PCI_B" 10.78.0.2/24
    MAPPINGS_FILE=$STATE_DIR/$MAPPINGS
}

# assert_mappings <json-object>: the vendor's file holds exactly these entries.
assert_mappings() {
    [[ -f $MAPPINGS_FILE ]] || die "the vendor's file is gone; expected $1"
    local got want
    got=$(jq -cS . "$MAPPINGS_FILE" 2>&1) || die "the vendor's file is no longer JSON: $(cat "$MAPPINGS_FILE")"
    want=$(jq -cS . <<<"$1")
    [[ $got == "$want" ]] || die "the vendor's file holds $got, expected $want"
}

# assert_home <nic> <up|down> [addr...]: <nic> is back on the host under its
# name, in that admin state, with exactly these addresses, alias and
# alternative names gone.
assert_home() {
    local nic=$1 updown=$2
    shift 2
    assert_link_exists host "$nic"
    case $updown in
    up) assert_link_up host "$nic" ;;
    down) assert_link_down host "$nic" ;;
    esac
    assert_addrs host "$nic" "$@"
    assert_altnames host "$nic"
    assert_no_alias host "$nic"
}

# The vendor's entries of both NICs: $NIC with both its addresses, UP; $NIC_B
# without addresses, DOWN.
both_entries() {
    jq -cn --arg a "$PCI" --argjson ea "$(vendor_entry "$NIC" UP "$NIC_V4" "$NIC_V6")" \
        --arg b "$PCI_B" --argjson eb "$(vendor_entry "$NIC_B" DOWN)" '{($a): $ea, ($b): $eb}'
}

###########################################################################

@test "two vendor pods (v1.2+ as net1, older under the host name): each DEL gives its NIC back from its entry and drops only that entry; the last takes the file" {
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    new_pod_ns
    local pod_b=$NEW_POD_NETNS
    vendor_attach "$NIC_B" "$NIC_B" "$pod_b"
    write_mappings "$(both_entries)"

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_no_link pod net1
    assert_no_link pod "$NIC"
    assert_mappings "$(jq -c --arg a "$PCI" 'del(.[$a])' <<<"$(both_entries)")"
    assert_link_up "$pod_b" "$NIC_B"
    grep -q "recovering $NIC .* without state of ours (the vendor plugin's attachment)" "$LOG_FILE" &&
        grep -q "removed the vendor plugin's entry for $PCI" "$LOG_FILE" ||
        die "the log does not tell the vendor's attachment was given back: $(cat "$LOG_FILE")"
    [[ -z $(find "$STATE_DIR" -maxdepth 1 -name '*.json' ! -name "$MAPPINGS") ]] ||
        die "state of ours left: $(ls -A "$STATE_DIR")"

    # a second DEL is a no-op, the other entry stays
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    assert_mappings "$(jq -c --arg a "$PCI" 'del(.[$a])' <<<"$(both_entries)")"

    # the older vendor's pod: under its host name, null addresses, DOWN
    run_plugin DEL "${CID}b" "$pod_b" net1 "$(multus_config "$PCI_B")"
    assert_plugin_ok_silent
    assert_home "$NIC_B" down
    assert_no_link "$pod_b" "$NIC_B"
    [[ ! -e $MAPPINGS_FILE ]] || die "the file outlived its last entry: $(cat "$MAPPINGS_FILE")"
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
}

@test "an older vendor's pod (NIC under its host name, no CNI_IFNAME in the pod): DEL gives it back with the entry's addresses, UP" {
    vendor_attach "$NIC" "$NIC" pod "$NIC_V4"
    write_mappings "$(jq -cn --arg a "$PCI" --argjson e "$(vendor_entry "$NIC" UP "$NIC_V4")" '{($a): $e}')"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4"
    assert_no_link pod "$NIC"
    [[ ! -e $MAPPINGS_FILE ]] || die "the file outlived its last entry: $(cat "$MAPPINGS_FILE")"
}

@test "an entry without state and with the vendor's \"<nil>\" address: the NIC comes back DOWN, without addresses" {
    vendor_attach "$NIC" net1 pod
    write_mappings "$(jq -cn --arg a "$PCI" --argjson e "$(vendor_entry "$NIC" "" "<nil>")" '{($a): $e}')"
    jq -e --arg a "$PCI" '.[$a] | has("state") | not' "$MAPPINGS_FILE" >/dev/null || die "the entry has a state"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" down
    assert_no_link pod net1
    [[ ! -e $MAPPINGS_FILE ]] || die "the file outlived its last entry: $(cat "$MAPPINGS_FILE")"
}

@test "the kernel already handed the vendor's NIC back (pod netns gone, as net1, DOWN, no addresses): DEL restores it on the host from the entry" {
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    write_mappings "$(both_entries)"
    hand_back_to_host net1 net1
    rename_fake_netdev "$PCI" "$NIC" net1
    kill_pod_netns
    assert_link_down host net1
    assert_addrs host net1

    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    assert_mac host "$NIC" "$NIC_MAC_ADDR"
    assert_no_link host net1
    assert_mappings "$(jq -c --arg a "$PCI" 'del(.[$a])' <<<"$(both_entries)")"
    # the other entry's NIC was never touched
    assert_addrs host "$NIC_B" 10.78.0.2/24
}

@test "the same with an empty CNI_NETNS" {
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    write_mappings "$(jq -cn --arg a "$PCI" --argjson e "$(vendor_entry "$NIC" UP "$NIC_V4" "$NIC_V6")" '{($a): $e}')"
    hand_back_to_host net1 net1
    rename_fake_netdev "$PCI" "$NIC" net1
    kill_pod_netns
    run_plugin DEL "$CID" "" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    [[ ! -e $MAPPINGS_FILE ]] || die "the file outlived its last entry: $(cat "$MAPPINGS_FILE")"
}

@test "a malformed vendor file: DEL exits 0, logs it, leaves the file as it was, and still gives back the NIC it can prove in the pod" {
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    mkdir -p -m 0700 "$STATE_DIR"
    local bad
    for bad in "{\"$PCI\": {\"hostInterfaceName\": \"$NIC\", \"hostInterfaceIPs\": [" '["not", "an", "object"]'; do
        printf '%s' "$bad" >"$MAPPINGS_FILE"
        cp "$MAPPINGS_FILE" "$WORKDIR/mappings.before"
        # a link it cannot prove (net1 without host-device's alias) stays where it is
        run_in_pod_ns ip link set dev net1 alias ""
        run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
        assert_plugin_ok_silent
        assert_addrs pod net1 "$NIC_V4" "$NIC_V6"
        assert_no_link host "$NIC"
        cmp -s "$MAPPINGS_FILE" "$WORKDIR/mappings.before" || die "the malformed file was changed: $(cat "$MAPPINGS_FILE")"
    done
    grep -q "$MAPPINGS is corrupt" "$LOG_FILE" || die "the malformed file is not logged: $(cat "$LOG_FILE")"

    # with host-device's alias, the NIC is provably the selected one: it comes back
    # with what it carries in the pod
    run_in_pod_ns ip link set dev net1 alias "$NIC"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(multus_config)"
    assert_plugin_ok_silent
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    assert_no_link pod net1
    cmp -s "$MAPPINGS_FILE" "$WORKDIR/mappings.before" || die "the malformed file was changed: $(cat "$MAPPINGS_FILE")"
}

@test "list shows the vendor's attachments as (vendor), where their NICs are, beside ours; --json says owner vendor" {
    # ours, in the pod
    make_nic "o${TID}" 0000:5e:00.3 10.79.0.2/24
    run_plugin ADD "$CID" "$POD_NETNS" net2 "$(multus_config 0000:5e:00.3)"
    assert_plugin_ok
    # the vendor's: $NIC handed back to the host as net1, $NIC_B in a pod
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    hand_back_to_host net1 net1
    rename_fake_netdev "$PCI" "$NIC" net1
    new_pod_ns
    vendor_attach "$NIC_B" net1 "$NEW_POD_NETNS"
    write_mappings "$(both_entries)"

    run_admin list
    assert_admin_ok
    [[ $(wc -l <<<"$output") -eq 4 ]] || die "expected a header and three rows: $output"
    local row
    row=$(grep -F " $PCI " <<<"$output") || die "no row for $PCI: $output"
    [[ $row == "(vendor) "* ]] || die "the row of $PCI is not marked (vendor): $row"
    for cell in "$NIC " "$NIC_V4,$NIC_V6" "host as net1"; do
        [[ $row == *"$cell"* ]] || die "row lacks '$cell': $row"
    done
    row=$(grep -F " $PCI_B " <<<"$output") || die "no row for $PCI_B: $output"
    [[ $row == "(vendor) "* && $row == *"$NIC_B "* &&
        $row == *"not on the host (the vendor plugin's record names no pod)"* ]] ||
        die "the row of $PCI_B is wrong: $row"
    grep -q "^${CID:0:12} .*0000:5e:00.3 .*o${TID} .*pod $POD_NETNS as o${TID}" <<<"$output" ||
        die "our own attachment's row is wrong: $output"

    run_admin list --json
    assert_admin_ok
    assert_json "[.[] | select(.pciAddress == \"$PCI\") | .owner, .hostName, .location.where, .location.ifname, (.addresses | join(\",\"))] | join(\" \")" \
        "vendor $NIC host net1 $NIC_V4,$NIC_V6"
    assert_json "[.[] | select(.pciAddress == \"$PCI_B\") | .owner, .location.where] | join(\" \")" "vendor notOnHost"
    assert_json '[.[] | select(.pciAddress == "0000:5e:00.3") | .owner, .containerId] | join(" ")' "amd-host-device $CID"
    # listing changed nothing
    assert_mappings "$(both_entries)"
}

@test "restore <PCI> gives back a vendor NIC that is on the host and drops its entry; one still in a pod is an error" {
    vendor_attach "$NIC" net1 pod "$NIC_V4" "$NIC_V6"
    hand_back_to_host net1 net1
    rename_fake_netdev "$PCI" "$NIC" net1
    kill_pod_netns
    new_pod_ns
    vendor_attach "$NIC_B" net1 "$NEW_POD_NETNS" 10.78.0.2/24
    write_mappings "$(jq -cn --arg a "$PCI" --argjson ea "$(vendor_entry "$NIC" UP "$NIC_V4" "$NIC_V6")" \
        --arg b "$PCI_B" --argjson eb "$(vendor_entry "$NIC_B" UP 10.78.0.2/24)" '{($a): $ea, ($b): $eb}')"

    run_admin restore "$PCI"
    assert_admin_ok
    [[ $output == *"restored $NIC (the vendor plugin's attachment)"* ]] || die "stdout does not say it: $output"
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
    assert_no_link host net1
    assert_mappings "$(jq -cn --arg b "$PCI_B" --argjson eb "$(vendor_entry "$NIC_B" UP 10.78.0.2/24)" '{($b): $eb}')"

    # the second: not on the host, and the vendor's record names no pod
    run_admin restore "$PCI_B"
    [[ $status -ne 0 ]] || die "restore of a vendor NIC in a pod succeeded: $output"
    [[ $stderr == *"is not on the host"* && $stderr == *"vendor plugin's record does not say which pod has it"* ]] ||
        die "stderr does not say why: $stderr"
    assert_addrs "$NEW_POD_NETNS" net1 10.78.0.2/24
    assert_no_link host "$NIC_B"
    assert_mappings "$(jq -cn --arg b "$PCI_B" --argjson eb "$(vendor_entry "$NIC_B" UP 10.78.0.2/24)" '{($b): $eb}')"

    # and a second restore of the first finds nothing to do
    run_admin restore "$PCI"
    [[ $status -eq 2 ]] || die "a second restore exited $status, expected 2 (nothing matched)"
    [[ $stderr == *"nothing to restore"* ]] || die "a second restore did something: $output $stderr"
    assert_home "$NIC" up "$NIC_V4" "$NIC_V6"
}

@test "restore <host name> of a vendor NIC on the host (DOWN entry): back DOWN with its addresses, the file gone" {
    vendor_attach "$NIC" net1 pod "$NIC_V4"
    hand_back_to_host net1 net1
    rename_fake_netdev "$PCI" "$NIC" net1
    kill_pod_netns
    write_mappings "$(jq -cn --arg a "$PCI" --argjson e "$(vendor_entry "$NIC" DOWN "$NIC_V4")" '{($a): $e}')"

    run_admin restore "$NIC"
    assert_admin_ok
    [[ $output == *"restored $NIC (the vendor plugin's attachment)"* ]] || die "stdout does not say it: $output"
    assert_home "$NIC" down "$NIC_V4"
    [[ ! -e $MAPPINGS_FILE ]] || die "the file outlived its last entry: $(cat "$MAPPINGS_FILE")"
}

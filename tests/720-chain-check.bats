#!/usr/bin/env bats
#
# A conflist run as libcni runs one: examples/chained-tuning.conflist
# ([amd-host-device, tuning], tuning setting an MTU and sysctls), ADD of each
# plugin in order with the previous one's result as prevResult, CHECK of each
# in order with the chain's final result as prevResult, DEL in reverse order
# with it too. tuning changes the MTU amd-host-device captured; CHECK must
# judge the chain's result, and still fail when the NIC really is not as the
# result says (left the pod, lost an address, DOWN).

load helpers

setup() {
    basic_setup
    standard_nic
    NET=net-$TID
    # The shipped example, on this test's NIC, with an MTU for tuning to change.
    # tuning keeps a backup of what it changed in dataDir (by default under the
    # machine's /run). tuning before v1.3.0 (Debian's is 1.1.1) does not replace
    # IFNAME in its own CHECK, so the sysctl keys name the pod-side interface.
    CHAIN=$(jq -c --arg nic "$NIC" --arg dir "$WORKDIR/tuning" '
        .plugins[0].device = $nic
        | (.plugins[] | select(.type == "tuning")) |= (
            .mtu = 1280 | .dataDir = $dir
            | .sysctl = (.sysctl | with_entries(.key |= sub("IFNAME"; "net1")))
          )' "$REPO/examples/chained-tuning.conflist") ||
        die "cannot read examples/chained-tuning.conflist"
    jq -e '.plugins[0].type == "amd-host-device" and .plugins[0].podInterfaceName == "cni"
           and .plugins[1].type == "tuning" and (.plugins[1].sysctl | length) > 0' <<<"$CHAIN" >/dev/null ||
        die "the example is no longer [amd-host-device (podInterfaceName cni), tuning with sysctls]: $CHAIN"
    [[ -x $CNI_PLUGIN_DIR/tuning ]] || skip "needs the reference tuning plugin in $CNI_PLUGIN_DIR"
}

# plugin_conf <index> <cniVersion>: plugin <index> of the chain as libcni hands
# it over, with the list's name and the version injected.
plugin_conf() {
    jq -c --argjson i "$1" --arg v "$2" --arg name "$NET" '.plugins[$i] + {cniVersion: $v, name: $name}' <<<"$CHAIN"
}

# with_prev <config> <result>: the config with prevResult.
with_prev() {
    jq -c --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"
}

# tuning_speaks <cniVersion>: whether this tuning supports that version.
tuning_speaks() {
    CNI_COMMAND=VERSION "$CNI_PLUGIN_DIR/tuning" </dev/null 2>/dev/null |
        jq -e --arg v "$1" '.supportedVersions | index($v)' >/dev/null
}

# run_tuning <CMD> <cniVersion> <prevResult>: the chain's tuning. One that
# does not speak <cniVersion> (1.1.1 and 1.1.0) runs at 1.0.0, the newest it
# speaks, for what it does to the pod.
run_tuning() {
    local cmd=$1 version=$2 prev=$3
    tuning_speaks "$version" || version=1.0.0
    prev=$(jq -c --arg v "$version" '.cniVersion = $v' <<<"$prev")
    run_bare_plugin "$CNI_PLUGIN_DIR/tuning" "$cmd" "$CID" "$POD_NETNS" net1 "$(with_prev "$(plugin_conf 1 "$version")" "$prev")"
}

# chain_add <cniVersion>: ADD of both plugins in order; RESULT is the chain's
# result libcni caches.
chain_add() {
    local version=$1 ours
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(plugin_conf 0 "$version")"
    assert_plugin_ok
    ours=$output
    run_tuning ADD "$version" "$ours"
    assert_plugin_ok
    RESULT=$output
    # tuning passes its prevResult through (only a MAC it sets is rewritten), so
    # where it cannot speak the version, the chain's result is ours as it is.
    tuning_speaks "$version" || RESULT=$ours
    assert_json .cniVersion "$version" "$RESULT"
}

# check_ours <cniVersion>: amd-host-device's CHECK with the chain's result.
check_ours() {
    run_plugin CHECK "$CID" "$POD_NETNS" net1 "$(with_prev "$(plugin_conf 0 "$1")" "$RESULT")"
}

# chain_del <cniVersion>: DEL of both in reverse order, both succeed, the NIC
# is home as it was (MTU 1500 again), no state left.
chain_del() {
    run_tuning DEL "$1" "$RESULT"
    assert_plugin_ok_silent
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$(with_prev "$(plugin_conf 0 "$1")" "$RESULT")"
    assert_plugin_ok_silent
    assert_nic_home 1500
    assert_no_link pod net1
    assert_no_state_left "after the chain's DEL"
}

@test "chained-tuning.conflist (mtu 1280, sysctls) at 0.4.0, 1.0.0 and 1.1.0: ADD, CHECK of each plugin in order, DEL in reverse all succeed" {
    local version key want
    for version in 0.4.0 1.0.0 1.1.0; do
        chain_add "$version"
        # tuning acted on the NIC, which is net1 in the pod
        assert_mtu pod net1 1280
        assert_mac pod net1 "$NIC_MAC_ADDR"
        for key in $(jq -r '.plugins[1].sysctl | keys[]' <<<"$CHAIN"); do
            want=$(jq -r --arg k "$key" '.plugins[1].sysctl[$k]' <<<"$CHAIN")
            [[ $(run_in_pod_ns sysctl -n "$key") == "$want" ]] ||
                die "$version: tuning did not set $key to $want in the pod"
        done

        check_ours "$version"
        assert_plugin_ok_silent
        run_tuning CHECK "$version" "$RESULT"
        assert_plugin_ok_silent

        chain_del "$version"
    done
}

@test "chain CHECK fails (105) when the NIC left the pod" {
    local version
    for version in 0.4.0 1.0.0 1.1.0; do
        chain_add "$version"
        run_in_pod_ns ip link set net1 netns "$HOST_NS_PID"
        check_ours "$version"
        assert_cni_error 105
        assert_json .msg "net1 is not in the pod network namespace $POD_NETNS"
        # DEL still gives it back, from wherever it is
        chain_del "$version"
    done
}

@test "chain CHECK fails (105) when the NIC lost an address of the result" {
    local version
    for version in 0.4.0 1.0.0 1.1.0; do
        chain_add "$version"
        run_in_pod_ns ip addr del "$NIC_V4" dev net1
        check_ours "$version"
        assert_cni_error 105
        assert_json .msg "address $NIC_V4 is missing from net1 in the pod"
        chain_del "$version"
    done
}

@test "chain CHECK fails (105) when the NIC is DOWN" {
    local version
    for version in 0.4.0 1.0.0 1.1.0; do
        chain_add "$version"
        run_in_pod_ns ip link set net1 down
        check_ours "$version"
        assert_cni_error 105
        assert_json .msg "net1 is down in the pod"
        chain_del "$version"
    done
}

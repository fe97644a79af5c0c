#!/usr/bin/env bats
# -*- bats -*-
#
# Different NICs run fully in parallel; the same attachment is serialised.

load helpers

N_NICS=6

make_many() {
    local i
    for i in $(seq 0 $((N_NICS - 1))); do
        make_nic "n${TID}$i" "0000:5e:00.$i" "10.80.$i.2/24" "2001:db8:80:1$i::2/64"
        add_route "10.81.$i.0/24" "10.80.$i.1" "n${TID}$i"
        new_pod_ns
        PODS[$i]=$NEW_POD_NETNS
    done
}

conf_of() {
    config_for "par-$TID" "{\"deviceID\":\"0000:5e:00.$1\",\"pciBusID\":\"0000:5e:00.$1\"}"
}

# bg_round <ADD|DEL>: the command for every NIC i (container c<tid>x<i>, pod
# PODS[i], net1) at once in the background; waits for all, each must exit 0.
# Outputs in $WORKDIR/<add|del><i>.{stdout,stderr,status}.
bg_round() {
    local cmd=$1 i
    for i in $(seq 0 $((N_NICS - 1))); do
        plugin_bg "$WORKDIR/${cmd,,}$i" "$cmd" "c${TID}x$i" "${PODS[$i]}" net1 "$(conf_of "$i")"
    done
    wait_bg
    for i in $(seq 0 $((N_NICS - 1))); do
        assert_bg_ok "$WORKDIR/${cmd,,}$i"
    done
}

@test "$N_NICS NICs ADDed in parallel and DELed in parallel, three rounds, everything intact" {
    declare -a PODS
    make_many
    local round i
    for round in 1 2 3; do
        bg_round ADD
        for i in $(seq 0 $((N_NICS - 1))); do
            jq -e '.interfaces[0].name == "net1"' "$WORKDIR/add$i.stdout" >/dev/null ||
                die "round $round: result of NIC $i is wrong: $(cat "$WORKDIR/add$i.stdout")"
            assert_addrs "${PODS[$i]}" "n${TID}$i" "10.80.$i.2/24" "2001:db8:80:1$i::2/64"
            assert_route "${PODS[$i]}" "10.81.$i.0/24" "10.80.$i.1" "n${TID}$i"
            assert_no_link host "n${TID}$i"
        done
        bg_round DEL
        for i in $(seq 0 $((N_NICS - 1))); do
            assert_addrs host "n${TID}$i" "10.80.$i.2/24" "2001:db8:80:1$i::2/64"
            assert_link_up host "n${TID}$i"
            assert_route host "10.81.$i.0/24" "10.80.$i.1" "n${TID}$i"
            assert_no_link "${PODS[$i]}" "n${TID}$i"
        done
        [[ -z $(ls "$STATE_DIR"/*.json 2>/dev/null) ]] || die "round $round: state left behind: $(ls "$STATE_DIR")"
    done
}

@test "concurrent ADD and DEL of the same attachment end consistent, and a final DEL restores" {
    standard_nic
    local conf round
    conf=$(config_for "race-$TID" "{\"deviceID\":\"$PCI\"}")
    for round in 1 2 3 4 5; do
        plugin_bg "$WORKDIR/add" ADD "$CID" "$POD_NETNS" net1 "$conf"
        plugin_bg "$WORKDIR/del" DEL "$CID" "$POD_NETNS" net1 "$conf"
        wait_bg
        assert_bg_ok "$WORKDIR/add"
        assert_bg_ok "$WORKDIR/del"
        if [[ -e $(state_file "$CID" net1) ]]; then
            # ADD won the race: the NIC is in the pod, fully configured
            assert_addrs pod "$NIC" "$NIC_V4" "$NIC_V6"
            assert_no_link host "$NIC"
        else
            # DEL ran last: the NIC is home
            assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
            assert_no_link pod "$NIC"
        fi
        run_plugin DEL "$CID" "$POD_NETNS" net1 "$conf"
        assert_plugin_ok_silent
        assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
        assert_link_up host "$NIC"
    done
}

@test "two pods racing for one NIC: exactly one wins, the other gets a clear error" {
    standard_nic
    new_pod_ns
    local conf winner
    conf=$(config_for "race2-$TID" "{\"deviceID\":\"$PCI\"}")
    plugin_bg "$WORKDIR/a" ADD "${CID}a" "$POD_NETNS" net1 "$conf"
    plugin_bg "$WORKDIR/b" ADD "${CID}b" "$NEW_POD_NETNS" net1 "$conf"
    wait_bg
    local ok=0
    [[ $(cat "$WORKDIR/a.status") == 0 ]] && ok=$((ok + 1)) && winner=a
    [[ $(cat "$WORKDIR/b.status") == 0 ]] && ok=$((ok + 1)) && winner=b
    [[ $ok == 1 ]] || die "expected exactly one winner, got $ok: a=$(cat "$WORKDIR/a.stdout") b=$(cat "$WORKDIR/b.stdout")"
    local loser=a
    [[ $winner == a ]] && loser=b
    jq -e '.code == 100 or .code == 101' "$WORKDIR/$loser.stdout" >/dev/null ||
        die "the loser's error is not 'not found'/'claimed': $(cat "$WORKDIR/$loser.stdout")"
    run_plugin DEL "${CID}$loser" "$POD_NETNS" net1 "$conf"
    assert_plugin_ok_silent
    local winner_ns=$POD_NETNS
    [[ $winner == b ]] && winner_ns=$NEW_POD_NETNS
    run_plugin DEL "${CID}$winner" "$winner_ns" net1 "$conf"
    assert_plugin_ok_silent
    assert_addrs host "$NIC" "$NIC_V4" "$NIC_V6"
}

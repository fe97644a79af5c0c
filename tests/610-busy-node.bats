#!/usr/bin/env bats
# -*- bats -*-
#
# A busy node: many pods, and every pod's first secondary network is net1, so
# every NIC in a pod answers to net1. The kernel refuses to move a link into a
# namespace where its name or one of its alternative names is taken (EEXIST),
# so NICs coming home at the same moment must not carry net1 (or any name the
# host has) across. ADD, CHECK, DEL and GC of every pod run at once, with live
# and dead pod netns; pause points make the worst interleaving deterministic.

load helpers

N_PODS=8

nic_of() { echo "n${TID}$1"; }
cid_of() { echo "c${TID}x$1"; }

# make_busy_nics <i>...: NIC i is n<tid><i> at 0000:5e:00.<i>, MTU 1400,
# 10.82.<i>.2/24 and 2001:db8:82:1<i>::2/64 (nodad), a route 10.83.<i>.0/24 via
# 10.82.<i>.1; its MAC in MACS[i].
make_busy_nics() {
    local i
    for i; do
        NIC_MTU=1400 make_nic "$(nic_of "$i")" "0000:5e:00.$i" "10.82.$i.2/24" "2001:db8:82:1$i::2/64"
        add_route "10.83.$i.0/24" "10.82.$i.1" "$(nic_of "$i")"
        MACS[$i]=$(nic_mac "$(nic_of "$i")")
    done
}

# new_pods <i>...: a fresh pod netns for each: PODS[i] its path, POD_PIDS[i] its holder.
new_pods() {
    local i
    for i; do
        new_pod_ns
        PODS[$i]=$NEW_POD_NETNS
        POD_PIDS[$i]=${EXTRA_NS_PIDS[-1]}
    done
}

# kill_pod <i>: pod i's netns dies (its holder is killed, reaped and no longer
# one teardown kills).
kill_pod() {
    local pid=${POD_PIDS[$1]} p kept=()
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    for p in "${EXTRA_NS_PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    EXTRA_NS_PIDS=("${kept[@]}")
    [[ ! -e ${PODS[$1]} ]] || die "pod $1's netns ${PODS[$1]} did not go away"
}

# kernel_hands_back <i>: what the kernel does with a physical NIC when its pod's
# netns dies, played on the veth (which would die with it): it comes home
# down, without addresses, under its pod-side name, and only the alternative
# names the host does not have yet come along (the first NIC home keeps net1).
kernel_hands_back() {
    local netns=${PODS[$1]} name alt
    name=$(nic_of "$1")
    nsenter --net="$netns" ip link set "$name" down
    for alt in $(link_altnames "$netns" "$name"); do
        if run_in_host_ns ip link show dev "$alt" &>/dev/null; then
            nsenter --net="$netns" ip link property del dev "$name" altname "$alt"
        fi
    done
    nsenter --net="$netns" ip link set "$name" netns "$HOST_NS_PID"
}

conf_of() {
    config_for "busy-$TID" "{\"cniVersion\":\"1.1.0\",\"deviceID\":\"0000:5e:00.$1\",\"pciBusID\":\"0000:5e:00.$1\"}"
}

# configs <i>...: CONFS[i], pod i's config, made once (a phase then starts its
# runs without a jq in between).
configs() {
    local i
    for i; do CONFS[$i]=$(conf_of "$i"); done
}

# CHECK's config for pod i: ADD's result ($WORKDIR/add<i>.stdout) as prevResult.
check_conf_of() {
    jq -c --slurpfile prev "$WORKDIR/add$1.stdout" '. + {prevResult: $prev[0]}' <<<"${CONFS[$1]}"
}

# gc_conf <i>...: GC's config listing the attachments of these pods as valid.
gc_conf() {
    local valid
    valid=$(printf '%s\n' "$@" | jq -cR --arg tid "$TID" 'select(length > 0) | {containerID: "c\($tid)x\(.)", ifname: "net1"}' | jq -cs .)
    config_for "busy-$TID" "{\"cniVersion\":\"1.1.0\",\"cni.dev/valid-attachments\":$valid}"
}

# bg <CMD> <i> [VAR=value...]: CMD for pod i (container c<tid>x<i>, net1,
# CONFS[i], or CHECK_CONFS[i]) in the background; output in $WORKDIR/<cmd><i>.*.
bg() {
    local cmd=$1 i=$2 conf=${CONFS[$2]}
    shift 2
    [[ $cmd != CHECK ]] || conf=${CHECK_CONFS[$i]}
    plugin_bg "$WORKDIR/${cmd,,}$i" "$cmd" "$(cid_of "$i")" "${PODS[$i]}" net1 "$conf" "$@"
}

# phase <gc-keeps> <CMD>:<i>...: the runs given (e.g. DEL:3) and a GC that
# keeps the attachments of the pods in <gc-keeps> (a space-separated list),
# all started at the same moment; every one must exit 0.
phase() {
    local keep=$1 run cmd gc names=(gc)
    shift
    # shellcheck disable=SC2086
    gc=$(gc_conf $keep)
    for run; do
        [[ ${run%%:*} != CHECK ]] || CHECK_CONFS[${run#*:}]=$(check_conf_of "${run#*:}")
    done
    bg_hold
    for run; do
        cmd=${run%%:*}
        bg "$cmd" "${run#*:}"
        names+=("${cmd,,}${run#*:}")
    done
    plugin_bg "$WORKDIR/gc" GC "<unset>" "<unset>" "<unset>" "$gc"
    bg_release
    wait_bg
    for run in "${names[@]}"; do
        assert_bg_ok "$WORKDIR/$run"
    done
}

# runs <CMD> <i>...: "CMD:i" for each, for phase.
runs() {
    local cmd=$1 i
    shift
    for i; do printf '%s:%s ' "$cmd" "$i"; done
}

# What NIC i should look like, for jq: its name, addresses and route.
NIC_OF_JQ='def nic($i): {name: "n\($tid)\($i)", v4: "10.82.\($i).2/24", v6: "2001:db8:82:1\($i)::2/64",
                      dst: "10.83.\($i).0/24", gw: "10.82.\($i).1"};
           def globals: [.addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | sort;
           def routed($routes; $n): any($routes[]; .dst == $n.dst and .gateway == $n.gw and .dev == $n.name);'

# view <netns-path|host>: {links, routes} of a namespace, read in one go.
view() {
    local -a enter=(nsenter --net="$1")
    [[ $1 != host ]] || enter=(nsenter -n -m -t "$HOST_NS_PID")
    "${enter[@]}" sh -c 'printf "{\"links\":"; ip -j -d addr show; printf ",\"routes\":"; ip -j route show; printf "}"'
}

# assert_in_pod <i>...: NIC i is in pod i under its host name, answers to
# net1 there (ADD's result says net1), with its addresses and route, and is
# not on the host.
assert_in_pod() {
    local i views=() bad
    for i; do
        jq -e '.interfaces[0].name == "net1"' "$WORKDIR/add$i.stdout" >/dev/null ||
            die "ADD's result for pod $i does not name net1: $(cat "$WORKDIR/add$i.stdout")"
        views+=("{\"i\":$i,\"pod\":$(view "${PODS[$i]}")}")
    done
    bad=$(printf '%s\n' "${views[@]}" | jq -rs --arg tid "$TID" --argjson host "$(view host)" "$NIC_OF_JQ"'
        .[] | .i as $i | nic($i) as $n | [.pod.links[] | select(.ifname == $n.name)] as $found
        | select(($found | length) != 1
                 or ($found[0] | (.altnames // []) != ["net1"] or (.flags | index("UP")) == null
                                 or globals != ([$n.v4, $n.v6] | sort))
                 or (routed(.pod.routes; $n) | not)
                 or any($host.links[]; .ifname == $n.name))
        | "NIC \($i) is not in pod \($i) as ADD put it there: \($found) routes \(.pod.routes)"')
    [[ -z $bad ]] || die "$bad"
}

# assert_home <i>...: NIC i is on the host exactly as make_busy_nics made it
# (name, up, MTU, MAC, addresses with nodad, route), without net1 or any other
# alternative name, without host-device's alias, and its state is gone.
assert_home() {
    local i macs bad
    macs=$(for i; do printf '{"i":%s,"mac":"%s"}\n' "$i" "${MACS[$i]}"; done | jq -cs .)
    bad=$(jq -rn --arg tid "$TID" --argjson macs "$macs" --argjson host "$(view host)" "$NIC_OF_JQ"'
        $macs[] | .mac as $mac | .i as $i | nic($i) as $n
        | [$host.links[] | select(.ifname == $n.name)] as $found
        | select(($found | length) != 1
                 or ($found[0] | (.altnames // []) != [] or (.ifalias // "") != ""
                                 or (.flags | index("UP")) == null or .mtu != 1400 or .address != $mac
                                 or globals != ([$n.v4, $n.v6] | sort)
                                 or (any(.addr_info[]; .local == ($n.v6 | split("/")[0]) and .nodad == true) | not))
                 or (routed($host.routes; $n) | not))
        | "NIC \($i) is not home as it was: \($found) routes \($host.routes)"')
    [[ -z $bad ]] || die "$bad"
    for i; do
        [[ ! -e $(state_file "$(cid_of "$i")" net1) ]] || die "state of pod $i left: $(cat "$(state_file "$(cid_of "$i")" net1)")"
    done
}

# Nothing on the host answers to net1 and no state or claim is left.
assert_node_clean() {
    assert_no_link host net1
    assert_no_state_left "$@"
}

###########################################################################

@test "$N_PODS pods, all net1: ADD, CHECK, DEL and GC run at once, three rounds, zero failures, every NIC restored exactly" {
    local all evens odds round
    all=$(seq 0 $((N_PODS - 1)))
    evens=$(seq 0 2 $((N_PODS - 1)))
    odds=$(seq 1 2 $((N_PODS - 1)))
    # shellcheck disable=SC2086
    make_busy_nics $all
    # shellcheck disable=SC2086
    new_pods $all
    # shellcheck disable=SC2086
    configs $all
    # shellcheck disable=SC2086
    for round in 1 2 3; do
        # Every pod comes up while a GC that lists them all runs.
        phase "$all" $(runs ADD $all)
        assert_in_pod $all
        # The even pods are CHECKed while the odd ones go, by their DEL and by
        # a GC that keeps only the even ones, racing each other.
        phase "$evens" $(runs CHECK $evens) $(runs DEL $odds)
        assert_home $odds
        assert_in_pod $evens
        # The odd pods come back while the even ones go (DEL, and a GC keeping the odd).
        phase "$odds" $(runs ADD $odds) $(runs DEL $evens)
        assert_home $evens
        assert_in_pod $odds
        # The odd pods are CHECKed and go, DEL racing a GC that keeps nothing.
        phase "$odds" $(runs CHECK $odds)
        phase "" $(runs DEL $odds)
        assert_home $all
        assert_node_clean "after round $round"
    done
}

@test "$N_PODS pods, all net1, half of their netns dead before DEL (the first NIC the kernel hands back keeps net1): every DEL and a GC at once, three rounds, every NIC restored exactly" {
    local all evens odds i round
    all=$(seq 0 $((N_PODS - 1)))
    evens=$(seq 0 2 $((N_PODS - 1)))
    odds=$(seq 1 2 $((N_PODS - 1)))
    # shellcheck disable=SC2086
    make_busy_nics $all
    # shellcheck disable=SC2086
    for round in 1 2 3; do
        new_pods $all
        configs $all
        phase "$all" $(runs ADD $all)
        assert_in_pod $all
        for i in $evens; do
            kernel_hands_back "$i"
            kill_pod "$i"
        done
        assert_answers_to host net1 "$(nic_of 0)"
        # Every DEL at once, the dead pods' with their netns path gone, and a
        # GC that keeps only the live pods (it races the dead pods' DELs).
        phase "$odds" $(runs DEL $all)
        assert_home $all
        assert_node_clean "after round $round"
        for i in $odds; do kill_pod "$i"; done
    done
}

@test "DEL of pod A held with its NIC home but not restored, while DEL of pod B (both net1) moves B's NIC home: both succeed, both NICs restored" {
    make_busy_nics 0 1
    new_pods 0 1
    configs 0 1
    local pod pause=$WORKDIR/pause
    mkdir -p "$pause"
    # (not `i`: bats' `run` leaves a global i behind)
    for pod in 0 1; do
        run_plugin ADD "$(cid_of "$pod")" "${PODS[$pod]}" net1 "$(conf_of "$pod")"
        assert_plugin_ok
        printf '%s' "$output" >"$WORKDIR/add$pod.stdout"
    done
    assert_in_pod 0 1

    # B gets as far as it goes before its NIC leaves the pod...
    bg DEL 1 AMD_HOST_DEVICE_TEST_PAUSE=del-before-move-to-host AMD_HOST_DEVICE_TEST_PAUSE_DIR="$pause"
    wait_for_file "$pause/del-before-move-to-host.reached"
    # ...then A's NIC comes home and A is held before restoring it...
    bg DEL 0 AMD_HOST_DEVICE_TEST_PAUSE=del-after-move-to-host AMD_HOST_DEVICE_TEST_PAUSE_DIR="$pause"
    wait_for_file "$pause/del-after-move-to-host.reached"
    assert_link_exists host "$(nic_of 0)"
    # ...and B's NIC comes home now, while A's is there.
    touch "$pause/del-before-move-to-host.go"
    wait "${BG_PIDS[0]}" || true
    assert_bg_ok "$WORKDIR/del1"
    assert_home 1

    touch "$pause/del-after-move-to-host.go"
    wait_bg
    assert_bg_ok "$WORKDIR/del0"
    assert_home 0
    assert_node_clean
}

@test "a NIC carrying a name the host has (besides net1) is refused by the kernel: that name is taken off in the pod and the move tried again" {
    make_busy_nics 0
    new_pods 0
    run_plugin ADD "$(cid_of 0)" "${PODS[0]}" net1 "$(conf_of 0)"
    assert_plugin_ok
    printf '%s' "$output" >"$WORKDIR/add0.stdout"
    assert_in_pod 0
    # A tenant named the NIC once more in the pod, a name the host has too.
    nsenter --net="${PODS[0]}" ip link property add dev "$(nic_of 0)" altname "x${TID}"
    run_in_host_ns ip link add "x${TID}" type veth peer name "x${TID}p"

    run_plugin DEL "$(cid_of 0)" "${PODS[0]}" net1 "$(conf_of 0)"
    assert_plugin_ok_silent
    assert_home 0
    assert_node_clean
    assert_link_exists host "x${TID}"
    grep -q "x${TID}" "$LOG_FILE" || die "the clash is not logged: $(cat "$LOG_FILE")"
}

@test "ADD's temporary host name taken on the host: the next candidate is used, and DEL restores" {
    make_busy_nics 0
    new_pods 0
    local nic index
    nic=$(nic_of 0)
    index=$(run_in_host_ns cat "/sys/class/net/$nic/ifindex")
    # The pod has a link of the NIC's host name (so the NIC is staged under a
    # temporary name), and the host a link of the first temporary name.
    nsenter --net="${PODS[0]}" ip link add "$nic" type veth peer name "${nic}q"
    run_in_host_ns ip link add "ahd$index" type veth peer name "ahd${index}p"

    run_plugin ADD "$(cid_of 0)" "${PODS[0]}" net1 "$(conf_of 0)"
    assert_plugin_ok
    assert_addrs "${PODS[0]}" net1 "10.82.0.2/24" "2001:db8:82:10::2/64"
    jq -e --arg first "ahd$index" '.stagingName != null and .stagingName != $first' \
        "$(state_file "$(cid_of 0)" net1)" >/dev/null ||
        die "the state does not record the temporary name used: $(cat "$(state_file "$(cid_of 0)" net1)")"
    assert_link_exists host "ahd$index"

    run_plugin DEL "$(cid_of 0)" "${PODS[0]}" net1 "$(conf_of 0)"
    assert_plugin_ok_silent
    assert_home 0
    assert_no_state_left
}

#!/usr/bin/env bats
# -*- bats -*-
#
# A SIGKILL at any crash point leaves nothing the next call cannot finish.
#
# The points come from the source, so a new one is tested without a new case:
# every literal `fault::point("<name>")`, and every flow entered with
# `fault::flow("<flow>")` crossed with every shared step `fault::step("<step>")`
# (the give-back, the restore of a NIC and the removal of a state run in each
# of those flows, as `<flow>-<step>`). A point's name starts with its flow,
# and the flow says which world is built, which call dies and which call comes
# next (the runtime's, or the admin's):
#
#   flow             world                           dies          next call
#   add              the NIC on the host             ADD           DEL
#   add-passthrough  a function bound to vfio-pci    ADD           DEL
#   add-rollback     a route the pod cannot take     ADD           DEL
#   del              the NIC ADDed                   DEL           DEL
#   gc               the NIC ADDed at 1.1.0          GC            GC
#   restore          the NIC ADDed                   restore       restore
#                                                    --force       --force
#   restore-vendor   a vendor NIC handed back        restore       restore
#   stale            the first pod gone without DEL  2nd pod's ADD 2nd pod's DEL
#                    (or gone for kubelet)
#   recovery         the NIC ADDed, state wiped      DEL           DEL
#   vendor           the vendor's NIC in the pod     DEL           DEL
#
# For every point: build the world and note the NIC as it is (name, MAC, MTU,
# UP, alias, alternative names, master, global addresses with their flags,
# routes of both families in every table but the link-local ones the kernel
# makes, on its own time, the host's links and the pod's), run the call
# with AMD_HOST_DEVICE_TEST_FAULT=<point> and require it to die there (exit
# 137 and its last words naming the point: a point no longer reached fails),
# run the next call (exit 0), require the NIC exactly as noted and nothing of
# ours left in the state dir (no state, claim, temp or vendor file; only lock
# files and parked spares with no other name), then run the next call once
# more: it finds nothing to do (exit 0; `restore` exits 2, "nothing to
# restore") and changes nothing. One test per flow; a failure names its point.

load helpers

# Points that cannot be reached on the test machines, and why. Listed here by
# name: anything else the source defines must be reached.
declare -gA UNREACHABLE=(
    [add-after-rdma-move]="moves RDMA devices into the pod: needs an RDMA subsystem in exclusive netns mode"
    [restore-vendor-before-move-to-host]="restore takes a vendor NIC only from the host: its record names no pod to move it out of"
)

# The flows, longest prefix first (add-rollback-... is no add-... point).
FLOWS=(add-rollback add-passthrough add restore-vendor restore del gc stale recovery vendor)

# code_names <call>: the string literals given to fault::<call>(...) in src/,
# comment lines left out.
code_names() {
    grep -rhE --include='*.rs' "fault::$1\(\"" "$REPO/src" |
        grep -vE '^[[:space:]]*//' |
        grep -oE "fault::$1\(\"[a-z0-9-]+\"\)" |
        sed -E 's/.*\("([a-z0-9-]+)"\)/\1/' | sort -u
}

# Every crash point the source defines, one a line.
source_points() {
    local flows steps f s
    flows=$(code_names flow)
    steps=$(code_names step)
    {
        code_names point
        for f in $flows; do
            for s in $steps; do
                echo "$f-$s"
            done
        done
    } | sort -u
}

# flow_of <point>: its flow, by the longest known prefix; fails for none.
flow_of() {
    local f
    for f in "${FLOWS[@]}"; do
        if [[ $1 == "$f-"* ]]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

setup_file() {
    POINTS=$(source_points)
    export POINTS
}

# Failures name the point being tested.
die() {
    echo "#/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" >&2
    echo "#| FAIL${POINT:+ at crash point $POINT}: $*" >&2
    echo "#\\^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^" >&2
    false
}

###########################################################################
# the world, fresh for every point
###########################################################################

# A new pod, no second pod, no NIC (a veth goes with its peer, which stays on
# the host), an empty PCI tree, no state dir, an empty log.
fresh_world() {
    run_in_host_ns ip link del "n${TID}p" 2>/dev/null || true
    local pid
    for pid in "$POD_NS_PID" "${EXTRA_NS_PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    EXTRA_NS_PIDS=()
    spawn_ns_holder POD_NS_PID -n
    wait_ns_ready "$POD_NS_PID"
    POD_NETNS=/proc/$POD_NS_PID/ns/net
    run_in_pod_ns ip link set lo up
    run_in_pod_ns sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    find "$WORKDIR/pci" -mindepth 1 -delete
    rm -rf "$STATE_DIR" "$(dirname "$KUBELET_CHECKPOINT")"
    : >"$LOG_FILE"
}

# rich_nic and an IPv6 route: everything a give-back has to bring back.
richest_nic() {
    rich_nic
    add_route 2001:db8:99::/48 2001:db8:77::1 "$NIC"
}

# A NIC with what a recovery without state can give back exactly: no IPv6
# address, whose nodad flag the pod's copy does not carry (see
# 510-recovery-without-state.bats), and, for the vendor's NICs, no route
# (the vendor's entry records none).
plain_nic() {
    NIC=n${TID}
    PCI=0000:5e:00.1
    NIC_V4=10.77.0.2/24
    NIC_MTU=1400 make_nic "$NIC" "$PCI" "$NIC_V4"
    CONF=$(multus_config)
}

vendor_file_with_the_nic() {
    write_mappings "$(jq -cn --arg a "$PCI" --argjson e "$(vendor_entry "$NIC" UP "$NIC_V4")" '{($a): $e}')"
}

# note_world <file>: the host's links and the NIC on the host as they are.
note_world() {
    {
        echo "host links: $(run_in_host_ns ip -j link show | jq -c '[.[].ifname] | sort')"
        [[ -z ${NIC:-} ]] && return 0
        echo "link: $(run_in_host_ns ip -j -d link show dev "$NIC" 2>&1 | jq -c '.[0] | {ifname, address, mtu,
            up: ((.flags // []) | index("UP") != null), ifalias: (.ifalias // ""),
            altnames: (.altnames // []), master: (.master // "")}' 2>&1)"
        echo "addresses: $(run_in_host_ns ip -j addr show dev "$NIC" 2>&1 | jq -c '[.[0].addr_info[]
            | select(.scope == "global")
            | {family, local, prefixlen, flags: ([to_entries[] | select(.value == true) | .key] | sort)}]
            | sort_by(.local)' 2>&1)"
        local family
        for family in -4 -6; do
            echo "routes $family: $(run_in_host_ns ip -j "$family" route show table all dev "$NIC" 2>&1 |
                jq -c 'map(select(.dst | startswith("fe80:") | not) | del(.expires)) | sort_by(tostring)' 2>&1)"
        done
    } >"$1"
}

# note_pod <file>: the links of the pod, if it still lives.
note_pod() {
    if kill -0 "$POD_NS_PID" 2>/dev/null; then
        run_in_pod_ns ip -j link show | jq -c '[.[].ifname] | sort' >"$1"
    else
        echo gone >"$1"
    fi
}

# assert_as_noted <what>: the host (and the pod, while it lives) as noted
# before the first call.
assert_as_noted() {
    note_world "$WORKDIR/world.now"
    diff -u "$WORKDIR/world.before" "$WORKDIR/world.now" >&2 ||
        die "$1: the host is not as it was before the first call (diff above)"
    note_pod "$WORKDIR/pod.now"
    if [[ $(cat "$WORKDIR/pod.now") != gone ]]; then
        diff -u "$WORKDIR/pod.before" "$WORKDIR/pod.now" >&2 ||
            die "$1: the pod's links are not as they were before the first call (diff above)"
    fi
}

# assert_nothing_left <what>: no state, claim, temp file or vendor file of the
# NIC in the state dir; only lock files and parked spares (with no other name).
assert_nothing_left() {
    [[ -d $STATE_DIR ]] || return 0
    local left
    left=$(find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name locks ! -name '.spare-*' -printf '%f ')
    [[ -z $left ]] || die "$1: left in the state dir: $left"
    left=$(find "$STATE_DIR" -maxdepth 1 -name '.spare-*' \( ! -type f -o -links +1 \) -printf '%f ')
    [[ -z $left ]] || die "$1: a parked spare with another name: $left"
    left=$(find "$STATE_DIR/locks" -mindepth 1 ! -name '*.lock' -printf '%f ' 2>/dev/null)
    [[ -z $left ]] || die "$1: not a lock file in locks/: $left"
}

# The state dir's listing (to see that a call changed nothing).
listing() {
    find "$STATE_DIR" -mindepth 1 -printf '%P %n\n' 2>/dev/null | sort
}

###########################################################################
# running the calls
###########################################################################

# run_admin_env <extra-env> <args>...: run_admin with extra environment and
# without the timeout wrapper (see run_plugin_env).
run_admin_env() {
    local extra=$1
    shift
    # shellcheck disable=SC2086
    run --separate-stderr nsenter -n -m -t "$HOST_NS_PID" \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$(node_policy_env)" $extra \
        "$PLUGIN" "$@" 3>&-
    echo "# admin $extra: amd-host-device $*: status $status stdout: $output stderr: $stderr"
}

# assert_killed_at <point>: the last run died by SIGKILL at that point.
assert_killed_at() {
    [[ $status -eq 137 ]] ||
        die "expected the plugin to be SIGKILLed at $1 (exit 137), got $status: stdout $output, stderr $stderr"
    [[ $stderr == *"test fault point $1: killing myself"* ]] ||
        die "the plugin died, but not at $1: stderr $stderr"
}

# assert_ok <what>: the last run succeeded.
assert_ok() {
    [[ $status -eq 0 ]] || die "$1 failed (exit $status): stdout $output, stderr $stderr"
}

GC_VALID_NONE='{"cni.dev/valid-attachments": []}'

# assert_finished <flow>: the last run, the next call, succeeded. `restore`
# exits 2 ("nothing to restore") when the crash came after the attachment's
# state was gone: what it left (claims naming nobody) is still removed.
assert_finished() {
    case $1 in
    restore | restore-vendor)
        [[ $status -eq 0 || ($status -eq 2 && $stderr == *"nothing to restore"*) ]] ||
            die "the next call failed (exit $status): stdout $output, stderr $stderr"
        ;;
    *) assert_ok "the next call" ;;
    esac
}

# assert_nothing_to_do <flow>: the last run, the next call once more, found
# nothing to do: exit 0, or for `restore` 2 and it says so.
assert_nothing_to_do() {
    case $1 in
    restore | restore-vendor)
        [[ $status -eq 2 && $stderr == *"nothing to restore"* ]] ||
            die "the next call, once more, should have found nothing to restore (exit 2), got exit $status: stdout $output, stderr $stderr"
        ;;
    *) assert_ok "the next call, once more" ;;
    esac
}

# world_<flow>: build what exists before the first call (noted then);
# before_<flow>: the calls that come first and succeed; crash_<flow> <point>:
# the call that dies; next_<flow>: the call after it (run twice).

world_add() {
    richest_nic
    # The NIC's name is taken in the pod: it moves under a staging name.
    if [[ $POINT == add-after-staging-rename ]]; then
        run_in_pod_ns ip link add "$NIC" type veth peer name "${NIC}q"
    fi
}
before_add() { :; }
crash_add() { run_plugin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" ADD "$CID" "$POD_NETNS" net1 "$CONF"; }
next_add() { run_plugin DEL "$CID" "$POD_NETNS" net1 "$CONF"; }

world_add-passthrough() {
    NIC=
    PCI=0000:5e:00.4
    mkdir -p "$WORKDIR/pci/$PCI" "$WORKDIR/drivers/vfio-pci"
    ln -sfn "$WORKDIR/drivers/vfio-pci" "$WORKDIR/pci/$PCI/driver"
    CONF=$(multus_config)
}
before_add-passthrough() { :; }
crash_add-passthrough() { crash_add "$@"; }
next_add-passthrough() { next_add; }

world_add-rollback() {
    richest_nic
    # a route whose preferred source lives on another host interface cannot be
    # put back in the pod: ADD fails after host-device moved the NIC
    run_in_host_ns ip addr add 198.51.100.9/24 dev "${NIC}p"
    run_in_host_ns ip route add 10.98.0.0/16 dev "$NIC" src 198.51.100.9
}
before_add-rollback() { :; }
crash_add-rollback() { crash_add "$@"; }
next_add-rollback() { next_add; }

world_del() { richest_nic; }
before_del() {
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$CONF"
    assert_plugin_ok
}
crash_del() { run_plugin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" DEL "$CID" "$POD_NETNS" net1 "$CONF"; }
next_del() { next_add; }

world_gc() {
    richest_nic
    CONF=$(jq -c '.cniVersion = "1.1.0"' <<<"$CONF")
}
before_gc() { before_del; }
crash_gc() {
    run_plugin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" GC "<unset>" "<unset>" "<unset>" \
        "$(jq -c ". + $GC_VALID_NONE" <<<"$CONF")"
}
next_gc() { run_plugin GC "<unset>" "<unset>" "<unset>" "$(jq -c ". + $GC_VALID_NONE" <<<"$CONF")"; }

world_restore() { richest_nic; }
before_restore() { before_del; }
crash_restore() { run_admin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" restore --force "$PCI"; }
next_restore() { run_admin restore --force "$PCI"; }

world_restore-vendor() { plain_nic; }
before_restore-vendor() {
    vendor_attach "$NIC" net1 pod "$NIC_V4"
    # the kernel handed it back under its host name (the fake PCI tree cannot
    # follow a rename), DOWN, without addresses, and the pod is gone
    hand_back_to_host net1 "$NIC"
    kill_pod_netns
    vendor_file_with_the_nic
}
crash_restore-vendor() { run_admin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" restore "$PCI"; }
next_restore-vendor() { run_admin restore "$PCI"; }

world_stale() { richest_nic; }
before_stale() {
    # Leaving the first pod is a step only while that pod lives: then it is gone for
    # kubelet, which allocates the NIC to the next pod.
    if [[ $POINT == stale-before-move-to-host ]]; then
        kubelet_allocates "uid-$CID"
        before_del
        kubelet_allocates "uid-${CID}b"
        new_pod_ns
        return
    fi
    before_del
    # the first pod vanishes without DEL: the NIC handed back as net1
    hand_back_to_host "$NIC" net1
    kill_pod_netns
    new_pod_ns
}
crash_stale() { run_plugin_env "AMD_HOST_DEVICE_TEST_FAULT=$1" ADD "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"; }
next_stale() { run_plugin DEL "${CID}b" "$NEW_POD_NETNS" net1 "$CONF"; }

world_recovery() {
    plain_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
}
before_recovery() {
    before_del
    wipe_state
}
crash_recovery() { crash_del "$@"; }
next_recovery() { next_add; }

world_vendor() { plain_nic; }
before_vendor() {
    vendor_attach "$NIC" net1 pod "$NIC_V4"
    vendor_file_with_the_nic
}
crash_vendor() { crash_del "$@"; }
next_vendor() { next_add; }

# crash_and_finish <flow> <point>
crash_and_finish() {
    local flow=$1 point=$2
    fresh_world
    "world_$flow"
    note_world "$WORKDIR/world.before"
    note_pod "$WORKDIR/pod.before"
    "before_$flow"

    "crash_$flow" "$point"
    assert_killed_at "$point"

    "next_$flow"
    assert_finished "$flow"
    assert_as_noted "after the next call"
    assert_nothing_left "after the next call"

    local files
    files=$(listing)
    "next_$flow"
    assert_nothing_to_do "$flow"
    assert_as_noted "after the next call, once more"
    [[ $(listing) == "$files" ]] ||
        die "the next call, once more, changed the state dir: before [$files], after [$(listing)]"
}

# crash_every_point_of <flow>: crash_and_finish at each point of the flow.
crash_every_point_of() {
    local flow=$1 point tested=()
    for point in $POINTS; do
        [[ $(flow_of "$point") == "$flow" ]] || continue
        if [[ -n ${UNREACHABLE[$point]:-} ]]; then
            echo "# $point: not tested here: ${UNREACHABLE[$point]}" >&3
            continue
        fi
        POINT=$point
        crash_and_finish "$flow" "$point"
        tested+=("$point")
    done
    POINT=
    ((${#tested[@]} > 0)) || die "the source has no crash point of flow $flow"
    echo "# $flow: ${#tested[@]} points: ${tested[*]}" >&3
}

###########################################################################

@test "the crash points are read from the source, each of a known flow; the unreachable ones exist" {
    [[ -n $POINTS ]] || die "no crash point found in $REPO/src"
    local point unknown=()
    for point in $POINTS; do
        flow_of "$point" >/dev/null || unknown+=("$point")
    done
    ((${#unknown[@]} == 0)) ||
        die "crash points of no known flow (name them <flow>-..., or add the flow to FLOWS and a world here): ${unknown[*]}"
    for point in "${!UNREACHABLE[@]}"; do
        grep -qxF "$point" <<<"$POINTS" || die "$point is listed as unreachable but the source has no such point"
    done
    local flow
    for flow in "${FLOWS[@]}"; do
        grep -q "^$flow-" <<<"$POINTS" || die "flow $flow has no crash point in the source"
    done
    echo "# $(wc -l <<<"$POINTS") crash points, ${#UNREACHABLE[@]} unreachable here" >&3
    "$PLUGIN" --version | grep -q 'fault injection built in' ||
        die "$PLUGIN was built without the fault points: build it with 'cargo build --features test-faults' (scripts/test.sh does)"
}

@test "ADD: a crash at any add- point, then the runtime's DEL" {
    crash_every_point_of add
}

@test "ADD of a DPDK-bound function: a crash at any add-passthrough- point, then DEL" {
    crash_every_point_of add-passthrough
}

@test "ADD's rollback: a crash at any add-rollback- point, then DEL" {
    crash_every_point_of add-rollback
}

@test "DEL: a crash at any del- point, then DEL again" {
    crash_every_point_of del
}

@test "GC: a crash at any gc- point, then GC again" {
    crash_every_point_of gc
}

@test "restore: a crash at any restore- point, then restore again" {
    crash_every_point_of restore
}

@test "restore of a vendor NIC: a crash at any restore-vendor- point, then restore again" {
    crash_every_point_of restore-vendor
}

@test "a stale claim's repair in the next pod's ADD: a crash at any stale- point, then that pod's DEL" {
    crash_every_point_of stale
}

@test "DEL without state: a crash at any recovery- point, then DEL again" {
    crash_every_point_of recovery
}

@test "DEL of the vendor's attachment: a crash at any vendor- point, then DEL again" {
    crash_every_point_of vendor
}

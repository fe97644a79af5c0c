#!/usr/bin/env bats
# -*- bats -*-
#
# Upgrading a node with pods running: the state directory an earlier release
# left (tests/fixtures/upgrade/<release>/, made by make-fixtures.sh with that
# release's binary: state files, hard-link claims, lock files, a spare, the
# vendor plugin's mapping file) is installed, the world it describes is built
# again (the same NICs, names and MACs, in the same pods, as the release's ADD
# left them), and the current binary gives every NIC back: DEL for the
# attachments, the vendor's DEL, `restore` for a NIC whose pod died without a
# DEL. Each NIC must be on the host exactly as it was before the release's ADD
# (name, MAC, MTU, UP, addresses with their flags, routes), and nothing of the
# release's state is left. A state file in a format newer than this binary
# reads is refused by name and version, and its NIC is not touched.

load helpers
load fixtures/upgrade/world

FIXTURES=$BATS_TEST_DIRNAME/fixtures/upgrade

setup() {
    basic_setup
    upgrade_pods
}

# use_fixture <release>: WORLD is its world.json.
use_fixture() {
    RELEASE_DIR=$FIXTURES/$1
    [[ -f $RELEASE_DIR/world.json ]] || die "no fixtures for release $1 in $RELEASE_DIR"
    WORLD=$(cat "$RELEASE_DIR/world.json")
}

# world <jq filter> [arg...]: jq -c over WORLD (args as in jq --args: $ARGS.positional).
world() {
    local filter=$1
    shift
    jq -c "$filter" --args "$@" <<<"$WORLD"
}

# fill_placeholders: the placeholders of the fixtures replaced by this test's
# values (the pods' netns paths, the state dir, the log file); stdin to stdout.
fill_placeholders() {
    local pod args=(-e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@LOG_FILE@|$LOG_FILE|g")
    for pod in "${!UPGRADE_POD_NETNS[@]}"; do
        args+=(-e "s|@NETNS:$pod@|${UPGRADE_POD_NETNS[$pod]}|g")
    done
    sed "${args[@]}"
}

# install_state: $STATE_DIR as the release left it, from the MANIFEST: its
# directories and files with their modes first, then the second names
# (hard-link claims) and symlinks.
install_state() {
    local kind mode path target
    mkdir -m 0700 "$STATE_DIR"
    while read -r kind mode path target; do
        case $kind in
        d) mkdir -p "$STATE_DIR/$path" && chmod "$mode" "$STATE_DIR/$path" ;;
        f) fill_placeholders <"$RELEASE_DIR/state/$path" >"$STATE_DIR/$path" && chmod "$mode" "$STATE_DIR/$path" ;;
        h | l) ;;
        *) die "install_state: unknown MANIFEST line: $kind $mode $path $target" ;;
        esac || die "install_state: cannot make $path"
    done <"$RELEASE_DIR/MANIFEST"
    while read -r kind mode path target; do
        case $kind in
        h) ln "$STATE_DIR/$target" "$STATE_DIR/$path" ;;
        l) ln -s "$target" "$STATE_DIR/$path" ;;
        *) continue ;;
        esac || die "install_state: cannot link $path"
    done <"$RELEASE_DIR/MANIFEST"
}

# nic_of_mac <mac>: the fixture NIC with that MAC.
nic_of_mac() {
    world '.nics[] | select(.mac == $ARGS.positional[0]) | .name' "$1" | jq -r .
}

# place_link <pod|host> <description>: the fixture NIC whose MAC the
# description (describe_link's JSON) names, a bare veth on the host so far, made
# what the description says, in that pod or on the host.
place_link() {
    local where=$1 desc=$2 ns nic name a flags
    nic=$(nic_of_mac "$(jq -r .mac <<<"$desc")")
    name=$(jq -r .name <<<"$desc")
    ns=host
    if [[ $where != host ]]; then
        ns=${UPGRADE_POD_NETNS[$where]}
        run_in_host_ns ip link set "$nic" netns "${UPGRADE_POD_PID[$where]}" || die "cannot move $nic to pod $where"
    fi
    [[ $name == "$nic" ]] || ns_exec "$ns" ip link set "$nic" name "$name"
    ns_exec "$ns" ip link set "$name" mtu "$(jq -r .mtu <<<"$desc")"
    if [[ $(jq -r '.alias // empty' <<<"$desc") ]]; then
        ns_exec "$ns" ip link set dev "$name" alias "$(jq -r .alias <<<"$desc")"
    fi
    for a in $(jq -r '.altnames[]' <<<"$desc"); do
        ns_exec "$ns" ip link property add dev "$name" altname "$a"
    done
    while read -r a flags; do
        # shellcheck disable=SC2086 # the flags are words of `ip addr add`
        ns_exec "$ns" ip addr add "$a" dev "$name" $flags || die "cannot add $a $flags to $name"
    done < <(jq -r '.addresses[] | "\(.address) \(.flags | join(" "))"' <<<"$desc")
    if [[ $(jq -r .up <<<"$desc") == true ]]; then
        ns_exec "$ns" ip link set "$name" up
    fi
    local -a route
    while IFS= read -r a; do
        mapfile -t route < <(jq -r '.[]' <<<"$a")
        ns_exec "$ns" ip route add "${route[@]}" dev "$name" || die "cannot add route ${route[*]} dev $name"
    done < <(jq -c '.routes[] | select(.protocol != "kernel")
        | [.type, .dst] + (if .gateway then ["via", .gateway] else [] end)
          + ["table", .table, "proto", .protocol, "scope", .scope]
          + (if .metric then ["metric", (.metric | tostring)] else [] end)
          + (if .prefsrc then ["src", .prefsrc] else [] end)' <<<"$desc")
}

# build_world: the fixture's NICs (veths with their names and MACs, the peers
# UP on the host, the fake PCI tree), each as the release's ADD left it: in its
# pod (podsAfter), or on the host as it was (hostBefore) if no pod has it; then
# checks that the world is the one recorded.
build_world() {
    local nic pci mac pod desc
    while read -r nic pci mac; do
        run_in_host_ns ip link add "$nic" address "$mac" type veth peer name "${nic}p" ||
            die "cannot create $nic"
        run_in_host_ns ip link set "${nic}p" mtu "$(world '.hostBefore[$ARGS.positional[0]].mtu' "$nic")"
        run_in_host_ns ip link set "${nic}p" up
        add_fake_pci "$pci" "$nic"
    done < <(world '.nics[] | "\(.name) \(.pci) \(.mac)"' | jq -r .)
    for pod in a b c; do
        while IFS= read -r desc; do
            place_link "$pod" "$desc"
        done < <(world '.podsAfter[$ARGS.positional[0]][]' "$pod")
    done
    for nic in $(world '[.podsAfter[][] | .mac] as $placed | .nics[] | select(.mac as $m | $placed | index($m) | not) | .name' | jq -r .); do
        place_link host "$(world '.hostBefore[$ARGS.positional[0]]' "$nic")"
    done
    for pod in a b c; do
        [[ $(describe_pod "${UPGRADE_POD_NETNS[$pod]}") == "$(world '.podsAfter[$ARGS.positional[0]]' "$pod")" ]] ||
            die "pod $pod was not rebuilt as recorded: $(describe_pod "${UPGRADE_POD_NETNS[$pod]}") != $(world '.podsAfter[$ARGS.positional[0]]' "$pod")"
    done
}

# attachment <containerId> <ifname>: its entry in world.json (config filled in).
attachment() {
    world '.attachments[] | select(.containerId == $ARGS.positional[0] and .ifname == $ARGS.positional[1])' "$1" "$2" |
        fill_placeholders
}

# del_attachment <containerId> <ifname>: DEL with the current binary, as the
# runtime sends it (the config the release's ADD had); it succeeds.
del_attachment() {
    local a
    a=$(attachment "$1" "$2")
    run_plugin DEL "$1" "${UPGRADE_POD_NETNS[$(jq -r .pod <<<"$a")]}" "$2" "$(jq -c .config <<<"$a")"
    assert_plugin_ok_silent
}

# assert_home <nic>: the NIC is on the host exactly as it was before the
# release's ADD.
assert_home() {
    local got want
    got=$(describe_link host "$1" 2>&1) || die "$1 is not on the host: $(run_in_host_ns ip -br link)"
    want=$(world '.hostBefore[$ARGS.positional[0]]' "$1")
    [[ $got == "$want" ]] || die "$1 is not back as it was: got $got, expected $want"
}

# assert_nothing_left: no state file, claim or temp file of any attachment, no
# vendor file; every lock file is free.
assert_nothing_left() {
    assert_no_state_left "$@"
    [[ ! -e $STATE_DIR/ip-interface-mappings.json ]] ||
        die "the vendor's file is left: $(cat "$STATE_DIR/ip-interface-mappings.json")"
    [[ -z $(find "$STATE_DIR" -name '.tmp-*') ]] || die "temp files left: $(ls -A "$STATE_DIR")"
    local lock
    for lock in "$STATE_DIR"/locks/*.lock; do
        flock -n "$lock" true || die "$lock is still locked"
    done
}

# home_from <release>: every NIC of the release's node given back by the
# current binary, then its spare reused by a new ADD.
home_from() {
    use_fixture "$1"
    build_world
    install_state

    # `list` reads every attachment of the release, and the vendor's
    run_admin list --json
    assert_admin_ok
    assert_json '[.[].hostName] | sort | join(" ")' "enp94s0f0 enp94s0f1 enp94s0f2 enp94s0f3"
    assert_json '[.[] | select(.hostName == "enp94s0f1") | .location.ifname] | join(" ")' net1

    del_attachment ctr-upgrade-a net1
    assert_home enp94s0f0
    del_attachment ctr-upgrade-a net2
    assert_home enp94s0f2
    del_attachment ctr-upgrade-c net1
    assert_home enp94s0f3
    # pod b dies without a DEL: the kernel hands its NIC back as net1, DOWN,
    # without addresses; the admin restores it by PCI address
    ns_exec "${UPGRADE_POD_NETNS[b]}" ip link set net1 down
    ns_exec "${UPGRADE_POD_NETNS[b]}" ip link set net1 netns "$HOST_NS_PID"
    kill -9 "${UPGRADE_POD_PID[b]}"
    wait "${UPGRADE_POD_PID[b]}" 2>/dev/null || true
    run_admin restore 0000:5e:00.1
    assert_admin_ok
    [[ $output == *"restored enp94s0f1 (ctr-upgrade-b/net1)"* ]] || die "restore does not say it restored enp94s0f1: $output"
    assert_home enp94s0f1

    local nic
    for nic in enp94s0f0 enp94s0f1 enp94s0f2 enp94s0f3; do
        assert_home "$nic"
    done
    for pod in a c; do
        [[ -z $(pod_links "${UPGRADE_POD_NETNS[$pod]}") ]] || die "pod $pod still has $(pod_links "${UPGRADE_POD_NETNS[$pod]}")"
    done
    assert_nothing_left "after giving back the release's attachments"

    # the release's spare (releases from 2026-11-29 on park a DEL's file): a
    # new ADD writes into it; then its DEL gives the NIC back
    local spare=$STATE_DIR/.spare-0 inode= a
    if grep -q '^f [0-7]* \.spare-0$' "$RELEASE_DIR/MANIFEST"; then
        inode=$(stat -c %i "$spare")
    fi
    a=$(attachment ctr-upgrade-t net1)
    run_plugin ADD ctr-upgrade-t "$POD_NETNS" net1 "$(jq -c .config <<<"$a")"
    assert_plugin_ok
    [[ -z $inode || $(stat -c %i "$(state_file ctr-upgrade-t net1)") == "$inode" ]] ||
        die "the ADD did not write into the release's spare (inode $inode): $(ls -ai "$STATE_DIR")"
    assert_link_exists pod enp94s0f4
    del_attachment ctr-upgrade-t net1
    assert_home enp94s0f4
    assert_nothing_left "after the spare's ADD and DEL"
}

@test "from main of 2026-12-01 (972c06c): DEL, the vendor's DEL and restore give every NIC back exactly; nothing of its state is left; its spare is reused" {
    home_from 972c06c
}

@test "from the 2026-11-29 release (config-named state dir): every NIC back exactly, nothing left, its spare reused" {
    home_from 2026-11-29
}

@test "from the first release, 2026-11-23 (symlink claims, a lock file per attachment, no spares): every NIC back exactly, nothing left" {
    home_from 2026-11-23
}

@test "a state file in a newer format than this binary reads: DEL refuses it by name and version (6), its NIC stays in the pod, the file and its claims stay; the pod's other NIC comes back" {
    use_fixture 972c06c
    build_world
    install_state
    local file newer before
    file=$(state_file ctr-upgrade-a net1)
    newer=$(($(jq .schema "$file") + 1))
    # A format that changed a field, written in place: the claims are other
    # names of this file.
    jq --argjson v "$newer" '.schema = $v | .podInterface = .podIfname | del(.podIfname)' "$file" >"$WORKDIR/newer.json"
    cat "$WORKDIR/newer.json" >"$file"
    cp -p "$file" "$WORKDIR/before.json"

    del_attachment_fails() {
        run_plugin DEL ctr-upgrade-a "$POD_NETNS" net1 "$(attachment ctr-upgrade-a net1 | jq -c .config)"
        assert_cni_error 6
        assert_msg_contains "$file"
        assert_msg_contains "format $newer"
        assert_msg_contains "attached enp94s0f0, and it is left where it is"
        [[ $(describe_link pod enp94s0f0) == "$(world '.podsAfter.a[] | select(.name == "enp94s0f0")')" ]] ||
            die "the NIC of the newer state was touched: $(describe_link pod enp94s0f0)"
        assert_no_link host enp94s0f0
        cmp "$file" "$WORKDIR/before.json" || die "the newer state file was changed: $(cat "$file")"
        [[ $file -ef $STATE_DIR/claim-pci-0000:5e:00.0 && $file -ef $STATE_DIR/claim-name-enp94s0f0 ]] ||
            die "the newer state's claims are gone: $(ls -ai "$STATE_DIR")"
    }
    del_attachment_fails
    grep -qF "$file" "$LOG_FILE" || die "the log does not name the newer state file: $(cat "$LOG_FILE")"
    # the runtime retries: the same answer, nothing moved
    del_attachment_fails

    # `list` says why it cannot show it, and still shows the rest
    run_admin list --json
    assert_admin_ok
    [[ $stderr == *"$file"*"format $newer"* ]] || die "list does not name the newer state file: $stderr"
    assert_json '[.[].hostName] | sort | join(" ")' "enp94s0f1 enp94s0f2 enp94s0f3"
    # `doctor` warns of it with what to do, not as a damaged file
    run_admin doctor
    grep -qE "^warn  attachment ctr-upgrade-a/net1: state file $file is in format $newer" <<<"$output" ||
        die "doctor does not warn of the newer state file: $output"
    [[ $output == *"a newer amd-host-device attached this NIC: give it back with that version"* ]] ||
        die "doctor does not say what to do with the newer state file: $output"

    del_attachment ctr-upgrade-a net2
    assert_home enp94s0f2
    [[ $(describe_link pod enp94s0f0) == "$(world '.podsAfter.a[] | select(.name == "enp94s0f0")')" ]] ||
        die "the NIC of the newer state was touched by the other DEL: $(describe_link pod enp94s0f0)"
}

#!/usr/bin/env bats
#
# End to end through a real container runtime: podman (CNI network backend,
# runc) runs amd-host-device from a conflist, exactly as on a node without
# Kubernetes.
#
# podman runs INSIDE the test's throwaway host namespace (run_in_host_ns), so
# the container's netns is created there, and the plugin, started by podman
# through CNI, sees that namespace's veth "NICs" and its fake PCI tree.
# Everything podman touches is private to the test:
#   * $WORKDIR/containers.conf (CONTAINERS_CONF: the only config file read),
#     $WORKDIR/storage.conf, storage in $WORKDIR/storage (vfs driver);
#   * CNI configs in $WORKDIR/cni-conf, plugins in $WORKDIR/cni-bin (our
#     binary plus the reference plugins);
#   * a tmpfs over /run and over /var/lib/cni inside the host mount namespace
#     (podman's /run/netns, runc's state, the CNI result cache);
#   * a cgroup parent of its own (/amdhd-<tid>), removed in teardown;
#   * no image: the rootfs is busybox-static in $WORKDIR/rootfs (--rootfs).

load helpers

# Seconds any one podman command may take.
PODMAN_TIMEOUT=${PODMAN_TIMEOUT:-60}

###########################################################################
# podman world
###########################################################################

require_podman() {
    local tool
    for tool in podman runc conmon; do
        command -v "$tool" >/dev/null ||
            skip "needs $tool (apt-get install podman runc; scripts/test.sh installs them)"
    done
    [[ -x /bin/busybox ]] || skip "needs /bin/busybox (apt-get install busybox-static)"
    # The rootfs gets nothing but this one binary: it must be static.
    if ldd /bin/busybox &>/dev/null; then
        skip "/bin/busybox is dynamically linked: needs the busybox-static package"
    fi
}

# Mounts in the host mount namespace what podman and runc need, privately.
podman_host_mounts() {
    # Runtime state (/run/netns, /run/runc, /run/cni...): a tmpfs that dies
    # with the namespace.
    run_in_host_ns mount -t tmpfs -o mode=0755 amdhd-run /run ||
        die "cannot mount a tmpfs over /run in the host ns"
    # libcni caches results in /var/lib/cni (not configurable in podman 4.x).
    run_in_host_ns mkdir -p /var/lib/cni
    run_in_host_ns mount -t tmpfs -o mode=0700 amdhd-cni-cache /var/lib/cni ||
        die "cannot mount a tmpfs over /var/lib/cni in the host ns"

    # basic_setup remounted sysfs (for /sys/class/net), which hides the
    # cgroup filesystems runc needs: mount the same hierarchies again, in the
    # same order, with the same options (cgroup v1, hybrid or v2).
    local src mp fstype opts rest n=0
    while read -r src mp fstype opts rest; do
        [[ $mp == /sys/fs/cgroup || $mp == /sys/fs/cgroup/* ]] || continue
        case $fstype in
        tmpfs | cgroup | cgroup2) ;;
        *) continue ;;
        esac
        run_in_host_ns mkdir -p "$mp" 2>/dev/null || true
        if ! run_in_host_ns mount -t "$fstype" -o "$opts" "$src" "$mp" 2>/dev/null; then
            # e.g. cgroup2 options only the first mount may set (nsdelegate)
            run_in_host_ns mount -t "$fstype" "$src" "$mp" ||
                die "cannot mount $fstype on $mp in the host ns"
        fi
        n=$((n + 1))
    done </proc/self/mounts
    ((n > 0)) || skip "no cgroup filesystem mounted under /sys/fs/cgroup: runc needs one"
}

podman_setup() {
    require_podman

    PODMAN_CTR=c$TID
    PODMAN_CGROUP_PARENT=/amdhd-$TID
    mkdir -p "$WORKDIR"/{cni-bin,cni-conf,storage,run,tmp,home}

    podman_host_mounts

    # The plugins podman may run: ours plus the reference ones.
    local p
    for p in "$CNI_PLUGIN_DIR"/*; do
        ln -s "$p" "$WORKDIR/cni-bin/"
    done
    rm -f "$WORKDIR/cni-bin/amd-host-device"
    ln -s "$PLUGIN" "$WORKDIR/cni-bin/amd-host-device"

    cat >"$WORKDIR/containers.conf" <<EOF
[containers]
# the sandbox may lack CAP_SYS_RESOURCE: never ask for more than we have
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$WORKDIR/cni-bin"]
network_config_dir = "$WORKDIR/cni-conf"

[engine]
# conmon starts the "podman container cleanup" that runs DEL when a container
# stops: it gets only this environment, so the node policy must be in it too.
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "$(node_policy_env)"]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORKDIR/events.log"
tmp_dir = "$WORKDIR/tmp"
EOF
    cat >"$WORKDIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$WORKDIR/storage"
runroot = "$WORKDIR/run"
EOF

    # The container's root: static busybox and nothing else.
    local d
    for d in bin proc sys dev etc tmp run; do
        mkdir -p "$WORKDIR/rootfs/$d"
    done
    cp /bin/busybox "$WORKDIR/rootfs/bin/busybox"
    for p in sh ip sleep cat ls; do
        ln -s busybox "$WORKDIR/rootfs/bin/$p"
    done

    PODMAN_READY=1
    run_podman info --format '{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}'
    if [[ $status -ne 0 ]]; then
        skip "podman cannot run here: $output $stderr"
    fi
    [[ $output == "cni runc" ]] ||
        skip "podman $(podman --version | awk '{print $3}') ignores network_backend=cni / runtime=runc (got: $output)"
}

# Kills whatever is left in our cgroup (conmon, the container) and removes it.
podman_cgroup_cleanup() {
    [[ -n ${PODMAN_CGROUP_PARENT:-} ]] || return 0
    local -a dirs=()
    local d pid
    for d in /sys/fs/cgroup"$PODMAN_CGROUP_PARENT" /sys/fs/cgroup/*"$PODMAN_CGROUP_PARENT"; do
        [[ -d $d ]] && dirs+=("$d")
    done
    [[ ${#dirs[@]} -gt 0 ]] || return 0
    while read -r pid; do
        [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
    done < <(find "${dirs[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        find "${dirs[@]}" -depth -type d -exec rmdir {} + 2>/dev/null
        [[ -n $(find "${dirs[@]}" -maxdepth 0 2>/dev/null) ]] || break
        sleep 0.1
    done
}

podman_teardown() {
    if [[ -n ${PODMAN_READY:-} && -n $HOST_NS_PID ]]; then
        if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
            echo "# ---- podman ps -a"
            pm ps -a 2>&1 | sed 's/^/#   /'
            echo "# ---- podman events"
            sed 's/^/#   /' "$WORKDIR/events.log" 2>/dev/null
        fi
        pm rm -a -f -t 0 &>/dev/null || true
    fi
    podman_cgroup_cleanup
}

setup() {
    basic_setup
    podman_setup
}

teardown() {
    podman_teardown
    basic_teardown
}

# pm ARGS...: podman in the host ns with our private config and storage only.
# The node policy's variable is in podman's environment, where libcni passes
# it on to the plugins (the cleanup podman conmon starts gets it from
# containers.conf's conmon_env_vars).
# fd 3 (bats) is closed so conmon cannot hold it open.
pm() {
    run_in_host_ns env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME="$WORKDIR/home" \
        "$(node_policy_env)" \
        CONTAINERS_CONF="$WORKDIR/containers.conf" \
        CONTAINERS_STORAGE_CONF="$WORKDIR/storage.conf" \
        timeout --kill-after=5 "$PODMAN_TIMEOUT" \
        podman --root "$WORKDIR/storage" --runroot "$WORKDIR/run" --storage-driver vfs \
        --runtime runc --cgroup-manager cgroupfs "$@" 3>&-
}

# run_podman [!] ARGS...: bats `run` of pm, stdout and stderr separate,
# logged. With `!` podman is expected to fail (any non-zero status: podman
# reports a CNI plugin failure as 126 or 127).
run_podman() {
    local -a flags=(--separate-stderr)
    local expect_fail=
    if [[ $1 == '!' ]]; then
        flags+=('!')
        expect_fail=1
        shift
    fi
    local rc=0
    run "${flags[@]}" pm "$@" || rc=$?
    echo "# podman $*"
    echo "#   exit status: $status"
    echo "#   stdout: $output"
    echo "#   stderr: $stderr"
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        die "podman $1 timed out after ${PODMAN_TIMEOUT}s"
    fi
    if [[ -n $expect_fail && $rc -ne 0 ]]; then
        die "podman $1 succeeded, expected it to fail: $output"
    fi
}

assert_podman_ok() {
    [[ $status -eq 0 ]] || die "podman failed ($status): stdout: $output; stderr: $stderr"
}

# write_conflist <name> <plugins-json-array>: $WORKDIR/cni-conf/<name>.conflist
write_conflist() {
    local name=$1 plugins=$2 version=${3:-1.0.0}
    jq -n --arg name "$name" --arg v "$version" --argjson plugins "$plugins" \
        '{cniVersion: $v, name: $name, plugins: $plugins}' >"$WORKDIR/cni-conf/$name.conflist" ||
        die "write_conflist: bad plugins json: $plugins"
}

# Our plugin's entry in a conflist, + extra keys.
amd_plugin_json() {
    local extra=${1:-"{}"}
    jq -cn --argjson extra "$extra" \
        '{type: "amd-host-device", logLevel: "debug"} + $extra'
}

# start_container <network>: podman run -d ... sleep; sets CTR_ID, CTR_PID,
# CTR_NETNS (/proc/<pid>/ns/net, usable with ns_exec / assert_*).
start_container() {
    local net=$1
    run_podman run -d --name "$PODMAN_CTR" --network "$net" \
        --cgroup-parent "$PODMAN_CGROUP_PARENT" \
        --rootfs "$WORKDIR/rootfs" /bin/sleep 1000
    assert_podman_ok
    container_pid
}

# container_pid: refreshes CTR_ID, CTR_PID, CTR_NETNS.
container_pid() {
    run_podman inspect --format '{{.Id}} {{.State.Pid}}' "$PODMAN_CTR"
    assert_podman_ok
    read -r CTR_ID CTR_PID <<<"$output"
    [[ -n $CTR_PID && $CTR_PID != 0 ]] || die "container $PODMAN_CTR has no pid: $output"
    CTR_NETNS=/proc/$CTR_PID/ns/net
}

# ctr_exec CMD...: podman exec in the container (busybox applets).
ctr_exec() {
    run_podman exec "$PODMAN_CTR" "$@"
    assert_podman_ok
}

# assert_ctr_addrs <ifname> <addr/prefix>...: busybox `ip addr` inside the
# container shows <ifname> UP with exactly these global addresses.
assert_ctr_addrs() {
    local ifname=$1
    shift
    ctr_exec /bin/ip addr show
    local all=$output block want got
    block=$(awk -v ifn="$ifname" '
        /^[0-9]+: / { name = $2; sub(/:$/, "", name); sub(/@.*/, "", name); show = (name == ifn) }
        show' <<<"$all")
    [[ -n $block ]] || die "no interface '$ifname' inside the container; ip addr: $all"
    head -n 1 <<<"$block" | grep -Eq '<([^>]*,)?UP[,>]' ||
        die "'$ifname' is not UP inside the container: $block"
    got=$(awk '$1 ~ /^inet6?$/ && / scope global/ { print $2 }' <<<"$block" | sort)
    want=$(printf '%s\n' "$@" | sort)
    [[ $got == "$want" ]] ||
        die "addresses of '$ifname' inside the container: expected [$(echo $want)], got [$(echo $got)]; ip addr: $all"
}

# assert_nic_given_back [mtu]: $NIC back on the host as standard_nic made it
# (assert_nic_home: name, UP, every address with nodad kept, MTU, MAC), and no
# state file left at all (podman's container ids are not $CID).
assert_nic_given_back() {
    assert_nic_home "${1:-1500}"
    assert_no_state_left "after podman rm"
}

###########################################################################
# tests
###########################################################################

@test "podman: a container on an amd-host-device network sees the NIC under its host name with every address; rm -f gives it back" {
    standard_nic
    local net=amdnet-$TID
    write_conflist "$net" "[$(amd_plugin_json "{\"device\":\"$NIC\"}")]"

    run_podman network ls --format '{{.Name}} {{.Driver}}'
    assert_podman_ok
    grep -qx "$net amd-host-device" <<<"$output" || die "podman does not list $net: $output"

    start_container "$net"

    # inside the container (busybox ip): host name, UP, every address
    assert_ctr_addrs "$NIC" "$NIC_V4" "$NIC_V6"
    # the same seen with iproute2 from outside: MAC kept, eth0 (CNI_IFNAME) an
    # alternative name of the NIC, not a link of its own
    assert_addrs "$CTR_NETNS" "$NIC" "$NIC_V4" "$NIC_V6"
    assert_mac "$CTR_NETNS" "$NIC" "$NIC_MAC_ADDR"
    assert_answers_to "$CTR_NETNS" eth0 "$NIC"
    # gone from the host
    assert_no_link host "$NIC"
    # podman passed CNI_IFNAME=eth0: state <cid>-eth0.json
    [[ -f $STATE_DIR/$CTR_ID-eth0.json ]] ||
        die "no state file $STATE_DIR/$CTR_ID-eth0.json: $(ls -la "$STATE_DIR" 2>&1)"
    # podman understood the result
    run_podman inspect --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$PODMAN_CTR"
    assert_podman_ok
    [[ $output == "${NIC_V4%/*}" ]] || die "podman inspect shows IPAddress '$output', expected ${NIC_V4%/*}"

    run_podman rm -f -t 0 "$PODMAN_CTR"
    assert_podman_ok

    assert_nic_given_back
}

@test "podman: stop gives the NIC back, start takes it again (deviceID selector, cniVersion 0.4.0, a route)" {
    standard_nic
    add_route 10.99.0.0/16 10.77.0.1 "$NIC"
    local net=amdnet-$TID
    write_conflist "$net" "[$(amd_plugin_json "{\"deviceID\":\"$PCI\"}")]" 0.4.0

    start_container "$net"
    assert_ctr_addrs "$NIC" "$NIC_V4" "$NIC_V6"
    assert_route "$CTR_NETNS" 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_no_link host "$NIC"

    run_podman stop -t 0 "$PODMAN_CTR"
    assert_podman_ok
    assert_nic_given_back
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"

    run_podman start "$PODMAN_CTR"
    assert_podman_ok
    container_pid
    assert_ctr_addrs "$NIC" "$NIC_V4" "$NIC_V6"
    assert_route "$CTR_NETNS" 10.99.0.0/16 10.77.0.1 "$NIC"
    assert_no_link host "$NIC"

    run_podman rm -f -t 0 "$PODMAN_CTR"
    assert_podman_ok
    assert_nic_given_back
    assert_route host 10.99.0.0/16 10.77.0.1 "$NIC"
}

@test "podman: the shipped examples/chained-tuning.conflist (podInterfaceName cni + tuning): the container sees eth0 tuned; rm -f restores the NIC" {
    standard_nic
    local net=amdnet-$TID example=$REPO/examples/chained-tuning.conflist
    [[ -f $example ]] || die "missing $example"
    # The example as shipped, pointed at our NIC, state dir and log, plus an
    # MTU for tuning to set (something the restore must undo).
    jq --arg name "$net" --arg nic "$NIC" --argjson ours "$(amd_plugin_json)" '
        .name = $name
        | .plugins[0] += ($ours + {device: $nic})
        | (.plugins[] | select(.type == "tuning")) += {mtu: 1400}' "$example" \
        >"$WORKDIR/cni-conf/$net.conflist" || die "cannot rewrite $example"
    jq -e '.plugins[0].podInterfaceName == "cni" and .plugins[1].type == "tuning"' \
        "$WORKDIR/cni-conf/$net.conflist" >/dev/null ||
        die "unexpected example: $(cat "$WORKDIR/cni-conf/$net.conflist")"

    start_container "$net"

    # our NIC is CNI_IFNAME (eth0) in the container, and tuning acted on it
    assert_ctr_addrs eth0 "$NIC_V4" "$NIC_V6"
    assert_mac "$CTR_NETNS" eth0 "$NIC_MAC_ADDR"
    assert_no_link "$CTR_NETNS" "$NIC"
    assert_no_link host "$NIC"
    ctr_exec /bin/ip link show eth0
    grep -q ' mtu 1400 ' <<<"$output" || die "tuning did not set MTU 1400 on eth0: $output"
    local key want path
    while IFS=$'\t' read -r key want; do
        path=/proc/sys/$(sed 's/IFNAME/eth0/; s/\./\//g' <<<"$key")
        ctr_exec /bin/cat "$path"
        [[ $output == "$want" ]] || die "tuning: $key ($path) is '$output' in the container, expected '$want'"
    done < <(jq -r '.plugins[1].sysctl // {} | to_entries[] | "\(.key)\t\(.value)"' "$WORKDIR/cni-conf/$net.conflist")

    run_podman rm -f -t 0 "$PODMAN_CTR"
    assert_podman_ok

    # back under its host name, with the MTU it had before tuning touched it
    assert_nic_given_back 1500
    assert_no_link host eth0
}

@test "podman: foreground run --rm, and a container that exits by itself, give the NIC back" {
    standard_nic
    local net=amdnet-$TID
    write_conflist "$net" "[$(amd_plugin_json "{\"device\":\"$NIC\"}")]"

    # podman run --rm in the foreground: busybox ip addr is the container
    run_podman run --rm --network "$net" --cgroup-parent "$PODMAN_CGROUP_PARENT" \
        --rootfs "$WORKDIR/rootfs" /bin/ip addr show "$NIC"
    assert_podman_ok
    grep -Eq "^[0-9]+: $NIC[@:]" <<<"$output" || die "the container did not see $NIC: $output"
    grep -q "inet ${NIC_V4} " <<<"$output" || die "the container did not see $NIC_V4: $output"
    grep -q "inet6 ${NIC_V6} " <<<"$output" || die "the container did not see $NIC_V6: $output"
    assert_nic_given_back

    # The process exits on its own: conmon's exit command (podman container
    # cleanup) runs DEL.
    run_podman run -d --name "$PODMAN_CTR" --network "$net" --cgroup-parent "$PODMAN_CGROUP_PARENT" \
        --rootfs "$WORKDIR/rootfs" /bin/sleep 1
    assert_podman_ok
    local i
    for i in $(seq 1 100); do
        run_in_host_ns ip link show dev "$NIC" &>/dev/null && break
        sleep 0.1
    done
    assert_nic_given_back
    run_podman ps -a --format '{{.Names}} {{.Status}}'
    assert_podman_ok
    grep -q "^$PODMAN_CTR Exited (0)" <<<"$output" || die "container not exited: $output"
}

@test "podman: a second container asking for the NIC in use fails with the plugin's error; the first keeps it" {
    standard_nic
    local net=amdnet-$TID
    # deviceID: the claim check (state of the first attachment) answers
    write_conflist "$net" "[$(amd_plugin_json "{\"deviceID\":\"$PCI\"}")]"

    start_container "$net"
    local first_id=$CTR_ID first_netns=$CTR_NETNS

    run_podman ! run -d --name "${PODMAN_CTR}b" --network "$net" --cgroup-parent "$PODMAN_CGROUP_PARENT" \
        --rootfs "$WORKDIR/rootfs" /bin/sleep 1000
    # podman relays the plugin's message, which names the device
    grep -q 'amd-host-device' <<<"$stderr" || die "podman's error does not come from amd-host-device: $stderr"
    grep -Eq "$PCI|$NIC" <<<"$stderr" || die "the plugin's error does not name the device ($PCI / $NIC): $stderr"

    # the first container still has the NIC, intact; one state file, the first's
    assert_ctr_addrs "$NIC" "$NIC_V4" "$NIC_V6"
    assert_addrs "$first_netns" "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"
    local files
    files=$(cd "$STATE_DIR" && ls -1 -- *.json 2>/dev/null)
    [[ $files == "$first_id-eth0.json" ]] || die "state files: [$files], expected only $first_id-eth0.json"

    # podman ran DEL for the failed container: nothing moved
    run_podman rm -f -t 0 "${PODMAN_CTR}b"
    assert_podman_ok
    assert_addrs "$first_netns" "$NIC" "$NIC_V4" "$NIC_V6"
    assert_no_link host "$NIC"

    run_podman rm -f -t 0 "$PODMAN_CTR"
    assert_podman_ok
    assert_nic_given_back
}

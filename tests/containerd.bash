# -*- bash -*-
#
# A private containerd (its CRI plugin, the path kubelet drives) for the
# end-to-end tests, loaded after helpers.bash by 820-containerd-cri.bats.
#
#   setup_file:  containerd_setup_file  checks the tools, builds the pause image once
#   setup:       basic_setup; containerd_setup     a containerd for this test
#   a test:      write_cri_conflist ...; containerd_start; run_cri run-pod-sandbox ...
#   teardown:    containerd_teardown; basic_teardown
#
# The daemon runs in the test's throwaway host namespace (its netns and, under
# it, a mount namespace of containerd's own), so containerd, its shims, runc and
# the CNI plugins containerd starts see that world's veth "NICs" and fake PCI
# tree, and nothing it does reaches the machine:
#
#   * `nsenter -n -m -t $HOST_NS_PID unshare -m --propagation private`: the
#     daemon's mount namespace is a private copy of the host namespace's (its
#     sysfs and fake PCI tree included); in it alone, $CTRD/run is bound over
#     /run (the shims' sockets in /run/containerd/s, runc's state, the pods'
#     /run/netns) and $CTRD/var-lib-cni over /var/lib/cni (libcni's result
#     cache, tuning's saved settings), and the cgroup hierarchies that the
#     host namespace's sysfs hides are mounted again;
#   * its config, root, state, socket, log, the CNI bin_dir and conf_dir and
#     the plugin's node policy are under $CTRD ($WORKDIR/containerd);
#   * snapshotter overlayfs (native where $WORKDIR is on an overlay);
#   * sandboxes run under a cgroup parent of their own, /amdhd-ctrd-<tid>;
#   * the sandbox image is built here from tests/pause/pause.c (gcc -static),
#     packed as a one-layer OCI image tarball and imported with ctr: no
#     registry is reachable;
#   * teardown stops and removes every sandbox through CRI (so every NIC is
#     given back by a real DEL), stops the daemon by its pid, then kills by
#     pid whatever is left in its mount namespace (shims) or in the sandboxes'
#     cgroup, and removes the cgroup; the mounts die with the namespace.
#
# The CRI client is tests/cri-client (cargo build -p ahd-cri-client).

CRI_CLIENT=${AHD_CRI_CLIENT_BIN:-$REPO/target/debug/ahd-cri-client}
# Seconds one CRI request (one ctr command) may take.
CRI_TIMEOUT=${CRI_TIMEOUT:-60}
# The sandbox image the test builds; containerd never pulls it.
PAUSE_IMAGE_REF=docker.io/amdhd-test/pause:1
# The reference plugins containerd may run besides ours.
CRI_REFERENCE_PLUGINS=(host-device static tuning loopback)
# A runtime's PATH, not the test runner's.
CRI_PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

CONTAINERD_PID=
CONTAINERD_MNTNS=
CONTAINERD_MNTNS_FD=

###########################################################################
# once per file: tools and the pause image
###########################################################################

# Prints why containerd cannot run here (nothing when it can). bats 1.8 has no
# `skip` in setup_file: the reason is kept and every test skips with it.
_containerd_missing() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "needs root: containerd, network and mount namespaces"
        return 0
    fi
    local tool
    for tool in containerd ctr containerd-shim-runc-v2 runc gcc tar sha256sum jq nsenter unshare; do
        if ! command -v "$tool" >/dev/null; then
            echo "needs $tool (apt-get install containerd runc gcc libc6-dev; scripts/test.sh installs them)"
            return 0
        fi
    done
    local p
    for p in "${CRI_REFERENCE_PLUGINS[@]}"; do
        if [[ ! -x $CNI_PLUGIN_DIR/$p ]]; then
            echo "needs the reference plugin $p in $CNI_PLUGIN_DIR (apt-get install containernetworking-plugins)"
            return 0
        fi
    done
}

# _oci_blob <layout-dir> <file>: stores <file> in the layout by its digest,
# prints "<digest> <size>".
_oci_blob() {
    local digest size
    digest=sha256:$(sha256sum "$2" | cut -d' ' -f1)
    size=$(stat -c %s "$2")
    cp "$2" "$1/blobs/sha256/${digest#sha256:}"
    echo "$digest $size"
}

# build_pause_image <out.tar>: tests/pause/pause.c as a static binary, the one
# file of a one-layer OCI image (entrypoint /pause) named $PAUSE_IMAGE_REF, in
# an OCI image layout tarball as `ctr images import` reads it. Prints why and
# fails when the binary cannot be built.
build_pause_image() {
    local out=$1 d arch
    d=$(mktemp -d "${BATS_FILE_TMPDIR:-/tmp}/pause-image.XXXXXX")
    mkdir -p "$d/rootfs" "$d/oci/blobs/sha256"
    if ! gcc -static -O2 -Wall -o "$d/rootfs/pause" "$REPO/tests/pause/pause.c" 2>"$d/gcc.log"; then
        echo "cannot build a static pause binary (gcc -static; libc6-dev): $(cat "$d/gcc.log")"
        rm -rf "$d"
        return 1
    fi
    case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
    esac

    local layer_digest layer_size config_digest config_size manifest_digest manifest_size
    tar -C "$d/rootfs" --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$d/layer.tar" pause
    read -r layer_digest layer_size < <(_oci_blob "$d/oci" "$d/layer.tar")
    jq -cn --arg arch "$arch" --arg diff "$layer_digest" '{
        created: "1970-01-01T00:00:00Z", architecture: $arch, os: "linux",
        config: {Entrypoint: ["/pause"], Env: ["PATH=/"], WorkingDir: "/"},
        rootfs: {type: "layers", diff_ids: [$diff]},
        history: [{created: "1970-01-01T00:00:00Z", created_by: "tests/pause/pause.c, gcc -static"}]}' \
        >"$d/config.json"
    read -r config_digest config_size < <(_oci_blob "$d/oci" "$d/config.json")
    jq -cn --arg cd "$config_digest" --argjson cs "$config_size" --arg ld "$layer_digest" --argjson ls "$layer_size" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
        layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $ld, size: $ls}]}' \
        >"$d/manifest.json"
    read -r manifest_digest manifest_size < <(_oci_blob "$d/oci" "$d/manifest.json")
    jq -cn --arg md "$manifest_digest" --argjson ms "$manifest_size" --arg arch "$arch" --arg ref "$PAUSE_IMAGE_REF" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                     platform: {architecture: $arch, os: "linux"},
                     annotations: {"io.containerd.image.name": $ref,
                                   "org.opencontainers.image.ref.name": ($ref | sub(".*:"; ""))}}]}' \
        >"$d/oci/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci/oci-layout"
    tar -C "$d/oci" --numeric-owner --owner=0 --group=0 -cf "$out" oci-layout index.json blobs ||
        die "cannot pack the pause image"
    rm -rf "$d"
}

# From setup_file: checks the tools and builds the pause image once (exported,
# so every test of the file imports the same tarball). What is missing is kept
# in CRI_SKIP_REASON, for containerd_setup to skip each test with; a missing
# CRI client (built by this repository) fails instead.
containerd_setup_file() {
    export CRI_SKIP_REASON
    CRI_SKIP_REASON=$(_containerd_missing)
    [[ -z $CRI_SKIP_REASON ]] || return 0
    [[ -x $CRI_CLIENT ]] ||
        die "CRI client not found: $CRI_CLIENT (run 'cargo build -p ahd-cri-client' or set AHD_CRI_CLIENT_BIN)"
    export PAUSE_IMAGE_TAR=$BATS_FILE_TMPDIR/pause-image.tar
    if ! CRI_SKIP_REASON=$(build_pause_image "$PAUSE_IMAGE_TAR"); then
        [[ -n $CRI_SKIP_REASON ]] || CRI_SKIP_REASON="cannot build the pause image"
        return 0
    fi
    CRI_SKIP_REASON=
}

###########################################################################
# per test: a containerd in the test's host namespace
###########################################################################

# After basic_setup: lays out $CTRD (config dirs, the CNI bin_dir with our
# plugin and the reference ones, the node policy). The daemon starts with
# containerd_start, once the test has written its conflist.
containerd_setup() {
    [[ -z ${CRI_SKIP_REASON:-} ]] || skip "$CRI_SKIP_REASON"
    [[ -n ${PAUSE_IMAGE_TAR:-} && -f $PAUSE_IMAGE_TAR ]] ||
        die "no pause image: setup_file must call containerd_setup_file"
    CTRD=$WORKDIR/containerd
    CTRD_SOCK=$CTRD/containerd.sock
    CTRD_LOG=$CTRD/containerd.log
    CRI_CGROUP_PARENT=/amdhd-ctrd-$TID
    CRI_CONF_DIR=$CTRD/cni-conf
    CRI_BIN_DIR=$CTRD/cni-bin
    mkdir -p "$CTRD"/{root,state,opt,run,var-lib-cni} "$CRI_CONF_DIR" "$CRI_BIN_DIR"
    chmod 0755 "$CTRD/run"
    chmod 0700 "$CTRD/var-lib-cni"
    # overlayfs, unless the test's directory is on an overlay itself (a
    # containerised machine), where only the native snapshotter works
    CRI_SNAPSHOTTER=${CRI_SNAPSHOTTER:-overlayfs}
    if [[ $(stat -f -c %T "$CTRD") == overlayfs ]]; then
        CRI_SNAPSHOTTER=native
    fi
    local p
    for p in "${CRI_REFERENCE_PLUGINS[@]}"; do
        ln -s "$CNI_PLUGIN_DIR/$p" "$CRI_BIN_DIR/$p"
    done
    ln -s "$PLUGIN" "$CRI_BIN_DIR/amd-host-device"
    write_cri_policy
}

# write_cri_policy: the node policy containerd points the plugin
# at (AMD_HOST_DEVICE_NODE_POLICY in the daemon's environment, which it passes
# on to CNI plugins): this test's state dir and log; no kubelet checkpoint (a
# path that never exists), so the machine's never counts.
write_cri_policy() {
    POLICY_FILE=$WORKDIR/node.json
    jq -n --arg state "$STATE_DIR" --arg log "$LOG_FILE" --arg kc "$WORKDIR/no-kubelet-checkpoint" \
        '{comment: "node policy of one 820-containerd-cri test", stateDir: $state, logFile: $log,
          logLevel: "debug", kubeletCheckpoint: $kc}' >"$POLICY_FILE" ||
        die "write_cri_policy: cannot write $POLICY_FILE"
    chown 0:0 "$POLICY_FILE"
    chmod 0644 "$POLICY_FILE"
}

# write_cri_conflist <name> <plugins-json-array> [cniVersion]: the one network
# containerd loads (conf_dir, max_conf_num 1), written atomically.
write_cri_conflist() {
    local name=$1 plugins=$2 version=${3:-1.0.0}
    jq -n --arg name "$name" --arg v "$version" --argjson plugins "$plugins" \
        '{cniVersion: $v, name: $name, plugins: $plugins}' >"$CRI_CONF_DIR/.$name.tmp" ||
        die "write_cri_conflist: bad plugins json: $plugins"
    mv "$CRI_CONF_DIR/.$name.tmp" "$CRI_CONF_DIR/10-$name.conflist"
}

# The lines of a shell script that mount again, under the host namespace's own
# sysfs, the cgroup hierarchies the machine has (v1, hybrid or v2), in order.
_cgroup_mount_script() {
    local src mp fstype opts rest
    while read -r src mp fstype opts rest; do
        [[ $mp == /sys/fs/cgroup || $mp == /sys/fs/cgroup/* ]] || continue
        case $fstype in
        tmpfs | cgroup | cgroup2) ;;
        *) continue ;;
        esac
        printf 'mkdir -p %q 2>/dev/null || true\n' "$mp"
        # options only the first mount may set (e.g. nsdelegate): retry without
        printf 'mount -t %q -o %q %q %q 2>/dev/null || mount -t %q %q %q\n' \
            "$fstype" "$opts" "$src" "$mp" "$fstype" "$src" "$mp"
    done </proc/self/mounts
}

_containerd_config() {
    cat <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
oom_score = 0
# Plugins that cannot work here (or are not needed) are not even tried.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CTRD_SOCK"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CTRD/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE_REF"
    # root here lacks CAP_SYS_RESOURCE: without this runc fails with
    # "can't get final child's PID from pipe"
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    systemd_cgroup = false
    stats_collect_period = 10
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "$CRI_SNAPSHOTTER"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CRI_BIN_DIR"
      conf_dir = "$CRI_CONF_DIR"
      max_conf_num = 1
      conf_template = ""
EOF
}

# Starts containerd in the test's host namespace (see the top of this file),
# waits until it answers CRI, imports the pause image and waits until the CRI
# plugin has loaded the conflist (NetworkReady).
containerd_start() {
    [[ -z $CONTAINERD_PID ]] || die "containerd_start: containerd already runs ($CONTAINERD_PID)"
    _containerd_config >"$CTRD/config.toml"
    {
        echo 'set -e'
        printf 'mount --bind %q /run\n' "$CTRD/run"
        echo 'mkdir -p /var/lib/cni'
        printf 'mount --bind %q /var/lib/cni\n' "$CTRD/var-lib-cni"
        _cgroup_mount_script
        printf 'exec containerd --config %q\n' "$CTRD/config.toml"
    } >"$CTRD/start.sh"

    # The daemon's environment is what the CNI plugins get (libcni passes it
    # on): a runtime's PATH and the node policy, nothing of the test runner's.
    # Not in $(...) and fd 3 closed: it is the test's child, and bats must not
    # wait for it.
    nsenter -n -m -t "$HOST_NS_PID" unshare -m --propagation private \
        env -i PATH="$CRI_PATH_ENV" AMD_HOST_DEVICE_NODE_POLICY="$POLICY_FILE" \
        bash "$CTRD/start.sh" </dev/null >>"$CTRD_LOG" 2>&1 3>&- &
    CONTAINERD_PID=$!

    local i
    for i in $(seq 1 300); do
        kill -0 "$CONTAINERD_PID" 2>/dev/null ||
            die "containerd exited at start: $(tail -n 20 "$CTRD_LOG")"
        if [[ -S $CTRD_SOCK ]] && cri version &>/dev/null; then
            break
        fi
        sleep 0.05
    done
    cri version &>/dev/null || die "containerd does not answer CRI on $CTRD_SOCK: $(tail -n 20 "$CTRD_LOG")"
    CONTAINERD_MNTNS=$(readlink "/proc/$CONTAINERD_PID/ns/mnt")
    # An open handle keeps the namespace (so its inode number, which teardown
    # looks for) from being freed and reused until teardown closes it.
    exec {CONTAINERD_MNTNS_FD}<"/proc/$CONTAINERD_PID/ns/mnt"
    [[ $CONTAINERD_MNTNS != "$(readlink "/proc/$HOST_NS_PID/ns/mnt")" ]] ||
        die "containerd runs in the host namespace's mount namespace, not a private one"

    run ctr_in_ns images import --snapshotter "$CRI_SNAPSHOTTER" "$PAUSE_IMAGE_TAR"
    [[ $status -eq 0 ]] || die "ctr images import failed ($status): $output"
    run ctr_in_ns images ls -q
    grep -qx "$PAUSE_IMAGE_REF" <<<"$output" || die "pause image $PAUSE_IMAGE_REF not imported: $output"

    # The CRI plugin loads conf_dir at start (and on every change).
    for i in $(seq 1 200); do
        cri status 2>/dev/null | grep -q '^NetworkReady=true' && return 0
        sleep 0.05
    done
    die "containerd's CRI network never became ready: $(cri status 2>&1)"
}

# cri ARGS...: the CRI client against this test's containerd, in its
# namespaces, bounded by CRI_TIMEOUT. fd 3 closed.
cri() {
    nsenter -n -m -t "$CONTAINERD_PID" \
        "$CRI_CLIENT" --socket "$CTRD_SOCK" --timeout "$CRI_TIMEOUT" "$@" 3>&-
}

# ctr_in_ns ARGS...: ctr in namespace k8s.io against this test's containerd.
ctr_in_ns() {
    nsenter -n -m -t "$CONTAINERD_PID" \
        timeout --kill-after=5 "$CRI_TIMEOUT" ctr --address "$CTRD_SOCK" -n k8s.io "$@" 3>&-
}

# run_cri [!] ARGS...: bats `run` of cri, stdout and stderr separate, logged
# (bats shows it when the test fails). With `!` the request must fail.
run_cri() {
    local -a flags=(--separate-stderr)
    if [[ $1 == '!' ]]; then
        flags+=('!')
        shift
    fi
    run "${flags[@]}" cri "$@"
    echo "# cri $*"
    echo "#   exit status: $status"
    echo "#   stdout: $output"
    echo "#   stderr: $stderr"
}

assert_cri_ok() {
    [[ $status -eq 0 ]] || die "CRI request failed ($status): stdout: $output; stderr: $stderr"
}

# run_sandbox <name>: RunPodSandbox (namespace cri-$TID, a fresh uid, our
# cgroup parent) must succeed; sets SANDBOX_ID, then sandbox_status.
run_sandbox() {
    local name=$1
    SANDBOX_UID=$(cat /proc/sys/kernel/random/uuid)
    run_cri run-pod-sandbox "$name" "cri-$TID" "$SANDBOX_UID" --cgroup-parent "$CRI_CGROUP_PARENT"
    assert_cri_ok
    SANDBOX_ID=$output
    [[ $SANDBOX_ID =~ ^[0-9a-f]{64}$ ]] || die "RunPodSandbox returned '$SANDBOX_ID', not a sandbox id"
    sandbox_status "$SANDBOX_ID"
}

# sandbox_status <id>: PodSandboxStatus; sets SANDBOX_STATUS (the client's
# JSON), SANDBOX_PID, and SANDBOX_NETNS=/proc/<pid>/ns/net (usable with
# ns_exec and the assert_* helpers from this mount namespace).
sandbox_status() {
    run_cri pod-sandbox-status "$1"
    assert_cri_ok
    SANDBOX_STATUS=$output
    SANDBOX_PID=$(jq -r '.pid // empty' <<<"$SANDBOX_STATUS")
    SANDBOX_NETNS=
    if [[ -n $SANDBOX_PID && $SANDBOX_PID != 0 ]]; then
        SANDBOX_NETNS=/proc/$SANDBOX_PID/ns/net
    fi
}

# Every pid whose mount namespace is containerd's (the daemon, its shims).
_containerd_ns_pids() {
    [[ -n $CONTAINERD_MNTNS ]] || return 0
    local d
    for d in /proc/[0-9]*; do
        if [[ $(readlink "$d/ns/mnt" 2>/dev/null) == "$CONTAINERD_MNTNS" ]]; then
            echo "${d#/proc/}"
        fi
    done
    return 0
}

# The cgroup directories of the sandboxes (every hierarchy).
_cri_cgroup_dirs() {
    [[ -n ${CRI_CGROUP_PARENT:-} ]] || return 0
    local d
    for d in /sys/fs/cgroup"$CRI_CGROUP_PARENT" /sys/fs/cgroup/*"$CRI_CGROUP_PARENT"; do
        if [[ -d $d ]]; then
            echo "$d"
        fi
    done
    return 0
}

# What may outlive the daemon: its shims (in its mount namespace) and the
# sandboxes' processes (in their cgroup).
_containerd_leftover_pids() {
    _containerd_ns_pids
    local d
    while read -r d; do
        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done < <(_cri_cgroup_dirs)
    return 0
}

# After a failure, before anything is cleaned up: the sandboxes and their
# network as containerd left them, and libcni's cache.
_containerd_dump() {
    local id rest pid
    echo "# ---- CRI sandboxes"
    cri list-pod-sandboxes 2>&1 | sed 's/^/#   /'
    while read -r id rest; do
        [[ -n $id ]] || continue
        pid=$(cri pod-sandbox-status "$id" 2>/dev/null | jq -r '.pid // empty' 2>/dev/null)
        [[ -n $pid && -e /proc/$pid/ns/net ]] || continue
        echo "# ---- sandbox $id (pid $pid): ip addr, ip route, ip -6 route"
        {
            nsenter --net="/proc/$pid/ns/net" ip addr
            nsenter --net="/proc/$pid/ns/net" ip route
            nsenter --net="/proc/$pid/ns/net" ip -6 route
        } 2>&1 | sed 's/^/#   /'
    done < <(cri list-pod-sandboxes 2>/dev/null)
    echo "# ---- libcni cache (/var/lib/cni of containerd)"
    local f
    while IFS= read -r f; do
        echo "#   ${f#"$CTRD/var-lib-cni"}: $(head -c 2000 "$f")"
    done < <(find "$CTRD/var-lib-cni" -type f 2>/dev/null | sort)
}

# Before basic_teardown: every sandbox stopped and removed through CRI (its
# NIC given back by DEL), containerd stopped by pid, then anything left of it
# (shims in its mount namespace, processes in the sandboxes' cgroup) killed by
# pid and the cgroup removed. Runs after a failure too; never fails itself.
containerd_teardown() {
    if [[ -n $CONTAINERD_PID ]]; then
        local id rest
        if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
            _containerd_dump
        fi
        while read -r id rest; do
            [[ -n $id ]] || continue
            cri stop-pod-sandbox "$id" &>/dev/null || true
            cri remove-pod-sandbox "$id" &>/dev/null || true
        done < <(cri list-pod-sandboxes 2>/dev/null)

        kill -TERM "$CONTAINERD_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$CONTAINERD_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$CONTAINERD_PID" 2>/dev/null || true
        wait "$CONTAINERD_PID" 2>/dev/null || true
    fi

    local pid _
    for _ in 1 2 3; do
        local -a left=()
        mapfile -t left < <(_containerd_leftover_pids | sort -u)
        [[ ${#left[@]} -gt 0 ]] || break
        for pid in "${left[@]}"; do
            kill -KILL "$pid" 2>/dev/null || true
        done
        sleep 0.1
    done

    local -a dirs=()
    mapfile -t dirs < <(_cri_cgroup_dirs)
    if [[ ${#dirs[@]} -gt 0 ]]; then
        local _
        for _ in $(seq 1 20); do
            find "${dirs[@]}" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -n $(_cri_cgroup_dirs) ]] || break
            sleep 0.1
        done
    fi

    if [[ -z ${BATS_TEST_COMPLETED:-} && -n ${CTRD_LOG:-} && -s $CTRD_LOG ]]; then
        echo "# ---- containerd log (last 60 lines) $CTRD_LOG"
        tail -n 60 "$CTRD_LOG" | sed 's/^/#   /'
    fi
    if [[ -n $CONTAINERD_MNTNS_FD ]]; then
        exec {CONTAINERD_MNTNS_FD}<&-
    fi
    CONTAINERD_PID=
    CONTAINERD_MNTNS=
    CONTAINERD_MNTNS_FD=
}

#!/bin/sh
#
# Installs the amd-host-device CNI plugin on a node. Runs in the image built by
# examples/deploy/Dockerfile (busybox sh), as the DaemonSet's containers or by hand:
#
#   install.sh install   copy the plugin into $CNI_BIN_DIR atomically, check that the
#                        reference host-device plugin is there, exit
#   install.sh sleep     keep the DaemonSet pod running; every $CHECK_INTERVAL
#                        seconds, reinstall the plugin if it disappeared from the node
#   install.sh doctor    run the installed plugin's `doctor` (the read-only node check)
#                        with $CNI_BIN_DIR as the runtime's CNI_PATH; its exit status
#                        (1: a check FAILed) is this script's
#
# Environment:
#   CNI_BIN_DIR          the node's CNI bin directory as mounted in the container
#                        (default /host/opt/cni/bin, i.e. hostPath /opt/cni/bin)
#   SRC                  the binary to install (default /amd-host-device)
#   IPAM_SRC             the kvp-ipoib-ipam binary, installed beside it when present
#                        (default /kvp-ipoib-ipam)
#   REQUIRE_HOST_DEVICE  true (default): fail when host-device is missing;
#                        false: only warn (e.g. host-device lives in /usr/lib/cni
#                        on the node, where amd-host-device also looks for it)
#   CHECK_INTERVAL       seconds between checks in "sleep" mode (default 300)
#   POLICY_SRC           a node policy to install (the DaemonSet mounts its ConfigMap
#                        there); unset or missing: the node keeps its own policy, or
#                        the plugin's secure defaults
#   POLICY_DIR           the node's /etc/amd-host-device as mounted in the container
#                        (default /host/etc/amd-host-device)
set -eu

SRC=${SRC:-/amd-host-device}
IPAM_SRC=${IPAM_SRC:-/kvp-ipoib-ipam}
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
REQUIRE_HOST_DEVICE=${REQUIRE_HOST_DEVICE:-true}
CHECK_INTERVAL=${CHECK_INTERVAL:-300}
POLICY_SRC=${POLICY_SRC:-}
POLICY_DIR=${POLICY_DIR:-/host/etc/amd-host-device}
NAME=amd-host-device
DEST=$CNI_BIN_DIR/$NAME

log() { echo "amd-host-device-install: $*"; }
warn() { echo "amd-host-device-install: WARNING: $*" >&2; }
fail() {
    echo "amd-host-device-install: ERROR: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 install|sleep|doctor" >&2
    exit 2
}

# Copy to a temporary name in the same directory, then rename over the old binary:
# a runtime never executes a half-written file, and one that is running the old
# binary keeps its (unlinked) inode.
install_plugin() {
    [ -d "$CNI_BIN_DIR" ] || fail "$CNI_BIN_DIR does not exist: mount the node's CNI bin directory (hostPath /opt/cni/bin) there"
    [ -f "$SRC" ] || fail "$SRC not found in the image"
    copy_into_place "$SRC" "$DEST"
    version=$("$DEST" --version 2>&1) || fail "the installed $DEST does not run: $version"
    log "installed $DEST ($version)"
    # The IPoIB IPAM plugin ships in the same image (Azure KVP addresses); optional.
    if [ -f "$IPAM_SRC" ]; then
        copy_into_place "$IPAM_SRC" "$CNI_BIN_DIR/kvp-ipoib-ipam"
        log "installed $CNI_BIN_DIR/kvp-ipoib-ipam"
    fi
}

# copy_into_place <src> <dest>
copy_into_place() {
    tmp=$CNI_BIN_DIR/.$(basename "$2").tmp.$$
    trap 'rm -f "$tmp"' EXIT
    cp "$1" "$tmp" || fail "cannot write $tmp (is $CNI_BIN_DIR mounted read-only?)"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$2" || fail "cannot rename $tmp to $2"
    trap - EXIT
}

# The plugin trusts a policy only if root owns it and nobody else may write it: install
# it as root, 0644, by rename (a CNI call never reads a half-written policy).
install_policy() {
    if [ -z "$POLICY_SRC" ] || [ ! -f "$POLICY_SRC" ]; then
        log "no node policy to install; the node keeps its own (or the plugin's secure defaults)"
        return 0
    fi
    mkdir -p "$POLICY_DIR" || fail "cannot create $POLICY_DIR"
    chmod 0755 "$POLICY_DIR"
    tmp=$POLICY_DIR/.node.json.tmp.$$
    trap 'rm -f "$tmp"' EXIT
    cp "$POLICY_SRC" "$tmp" || fail "cannot write $tmp"
    chown 0:0 "$tmp" 2>/dev/null || true
    chmod 0644 "$tmp"
    mv -f "$tmp" "$POLICY_DIR/node.json" || fail "cannot rename $tmp to $POLICY_DIR/node.json"
    trap - EXIT
    log "installed the node policy $POLICY_DIR/node.json"
}

check_reference_plugins() {
    if [ -x "$CNI_BIN_DIR/host-device" ]; then
        log "found $CNI_BIN_DIR/host-device"
    else
        msg="host-device is not in $CNI_BIN_DIR (the node's /opt/cni/bin): amd-host-device delegates to the reference host-device plugin and every ADD will fail with code 50. Install the containernetworking plugins there (release tarball from containernetworking/plugins, or your distribution's package)."
        if [ "$REQUIRE_HOST_DEVICE" = true ]; then
            fail "$msg If host-device is in /usr/lib/cni or /usr/libexec/cni on the node, set REQUIRE_HOST_DEVICE=false."
        fi
        warn "$msg"
    fi
    if [ ! -x "$CNI_BIN_DIR/static" ]; then
        warn "static (IPAM) is not in $CNI_BIN_DIR: host-device needs it to give the NIC its addresses in the pod (it is also found in /usr/lib/cni and /usr/libexec/cni on the node)"
    fi
}

case ${1:-install} in
install)
    install_plugin
    install_policy
    check_reference_plugins
    ;;
sleep)
    sleeper=
    trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
    log "watching $DEST (every ${CHECK_INTERVAL}s)"
    while :; do
        if [ ! -x "$DEST" ]; then
            warn "$DEST is missing from the node; installing it (again)"
            # in a subshell: a failed attempt is logged and retried, not fatal
            (install_plugin) || true
        fi
        # in the background, so that TERM is handled at once
        sleep "$CHECK_INTERVAL" &
        sleeper=$!
        wait "$sleeper" || true
    done
    ;;
doctor)
    # The binary just installed, not the image's: the node's own copy is what CNI calls run.
    [ -x "$DEST" ] || fail "$DEST is not installed (run install first)"
    exec "$DEST" doctor --cni-path "$CNI_BIN_DIR"
    ;;
*)
    usage
    ;;
esac

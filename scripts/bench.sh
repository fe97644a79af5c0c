#!/usr/bin/env bash
#
# Benchmarks amd-host-device against the bare reference plugins, on veth "NICs"
# in throwaway namespaces (the technique of tests/helpers.bash: a "host" netns +
# private mount ns with its own sysfs and a fake PCI tree bind-mounted over
# /sys/bus/pci/devices, a pod netns, everything held by `sleep infinity`).
# Nothing here touches the machine's real interfaces.
#
# In one run, interleaved (the order inside each pair alternates every cycle):
#   1. end to end: ADD+DEL of bare `host-device` + `static` carrying the same
#      addresses, vs ADD+DEL of `amd-host-device` selected by deviceID;
#   2. own cost: ADD+DEL of amd-host-device whose delegate is a stub
#      `host-device` (a tiny C program that prints a canned result), vs the
#      stub alone with the same environment and stdin;
#   3. scale: (2) again in a host with 500 extra interfaces (addresses,
#      routes, fake PCI entries) and 1,000 unrelated attachments in the state
#      dir (state files, claims, lock files); and, to tell the two apart, in
#      a host with only the 1,000 attachments;
#   4. peak RSS of the plugin's own process (VERSION; ADD/DEL with the stub
#      delegate) and the size of the release binary; for scale, also the time
#      to start the plugin process (VERSION twice) in the same loop.
# This script installs what is missing, builds, and sets up and tears down the
# worlds. The measuring is done by scripts/bench (amd-host-device-bench, Rust):
# it enters each world's namespaces itself (setns), times every plugin run from
# spawn to wait4 (stdout read through a pipe like a runtime does, monotonic
# clock), so harness overhead stays outside the timed section and is the same for
# both sides; it pins itself to one CPU and every plugin run to another (no
# migrations mid-run), interleaves the series, computes the statistics and writes
# the report. Every cycle also times one durable write (1 KiB temp file, fsync,
# rename, directory fsync) for the floor: two process starts + that write.
#
# Usage:
#   scripts/bench.sh [-n N]              the full report (the 9 series above)
#   scripts/bench.sh --aa                A/A: the binary against a copy of itself
#   scripts/bench.sh --against REV|BIN   the baseline REV (any git revision, built
#                                        in a temporary worktree with the same
#                                        flags) or the binary BIN, against this
#                                        checkout's build
#   common: [--target TRIPLE] [--pin auto|off|CPU] [--rounds R] [--per-round K]
#   (root; on Debian it installs what is missing)
#
# The two comparisons (--aa, --against) run only the clean host with the stub
# delegate: R rounds of K cycles, each cycle the stub alone, A->stub and B->stub
# (ABBA order), VERSION twice with each and one durable write, after WARMUP
# unrecorded cycles. They report B - A per ADD+DEL cycle as the mean of the rounds'
# differences of medians with its 95 % interval (Student t; bootstrap as a check),
# in µs and in % of A's own cost, and the floor of each. A is the baseline (or the
# binary), B this checkout's build (or the copy).
#
# The final measurement, on a quiet machine (nothing else running: check `uptime`):
#   sudo scripts/bench.sh --aa               # A/A: passes when the interval printed
#                                            # for B - A lies inside ±2 %
#   sudo scripts/bench.sh --against f6da2a7  # this checkout against f6da2a7
#   sudo scripts/bench.sh                    # the full report
# How long (measured on this 2-core VM while other builds loaded it, load average
# 5-6): a comparison cycle takes ~35 ms, so the default 10 + 60 x 24 cycles take
# about a minute; --against builds a revision once (~1.5 min, LTO), later runs
# against it reuse the binary; building this checkout adds ~2 min when it is not
# built yet; the full report takes ~30 s at N=12, most of it setting up the scaled
# host. The interval narrows as 1/sqrt(R): four times the ROUNDS halve it.
#
# Env:   N=50            cycles per series of the full report (after WARMUP); -n N
#        WARMUP          untimed cycles first (3 for the full report, 10 for a
#                        comparison)
#        ROUNDS=60, PER_ROUND  rounds, and cycles per round (24 for a comparison,
#                        best a multiple of 4; 10 for the own-cost interval of the
#                        full report)
#        PIN=auto        auto: plugins on the last allowed CPU, this program on the
#                        first; off; or the plugins' CPU number
#        BENCH_TARGET    same as --target: build and benchmark
#                        target/TRIPLE/release/amd-host-device (default
#                        x86_64-unknown-linux-musl, the deployable build, adding
#                        that rustup target if missing; else the host's)
#        AMD_HOST_DEVICE_BIN  benchmark this binary instead of building one
#                        (cargo is still needed for the benchmark program)
#        CNI_PLUGIN_DIR  reference plugins (default /usr/lib/cni)
#        NO_APT=1        never call apt-get
# Output: a markdown report on stdout and in target/bench/results.md (full) or
#         target/bench/compare.md (comparisons); the raw per-cycle figures in
#         target/bench/raw/. Progress goes to stderr.
# The benchmark reports; it does not fail when a target is missed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

N=${N:-50}
WARMUP=${WARMUP:-}
ROUNDS=${ROUNDS:-60}
PER_ROUND=${PER_ROUND:-}
PIN=${PIN:-auto}
MODE=full
AGAINST=
TARGET=${BENCH_TARGET:-}
CNI_DIR=${CNI_PLUGIN_DIR:-/usr/lib/cni}
OUT=$REPO/target/bench
# The PATH a runtime gives a plugin (also RUNTIME_PATH in scripts/bench/src/bench.rs).
RUNTIME_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'bench.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case $1 in
    -n)
        [[ $# -ge 2 ]] || die "-n needs a number"
        N=$2
        shift 2
        ;;
    -n*)
        N=${1#-n}
        shift
        ;;
    --target)
        [[ $# -ge 2 ]] || die "--target needs a target triple"
        TARGET=$2
        shift 2
        ;;
    --target=*)
        TARGET=${1#--target=}
        shift
        ;;
    --aa)
        MODE=aa
        shift
        ;;
    --against)
        [[ $# -ge 2 ]] || die "--against needs a git revision or a binary"
        MODE=against
        AGAINST=$2
        shift 2
        ;;
    --against=*)
        MODE=against
        AGAINST=${1#--against=}
        shift
        ;;
    --pin | --rounds | --per-round)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case $1 in
        --pin) PIN=$2 ;;
        --rounds) ROUNDS=$2 ;;
        --per-round) PER_ROUND=$2 ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see scripts/bench.sh --help)" ;;
    esac
done
if [[ $MODE == full ]]; then
    WARMUP=${WARMUP:-3}
    PER_ROUND=${PER_ROUND:-10}
else
    WARMUP=${WARMUP:-10}
    PER_ROUND=${PER_ROUND:-24}
fi
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, got '$WARMUP'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $ROUNDS -ge 2 ]] || die "ROUNDS must be an integer of at least 2, got '$ROUNDS'"
[[ $PER_ROUND =~ ^[1-9][0-9]*$ ]] || die "PER_ROUND must be a positive integer, got '$PER_ROUND'"
[[ $PIN == auto || $PIN == off || $PIN =~ ^[0-9]+$ ]] || die "PIN must be auto, off or a CPU number, got '$PIN'"

[[ $(id -u) -eq 0 ]] ||
    die "must run as root: it creates network and mount namespaces, veth pairs and mounts sysfs (try: sudo $0)"

###########################################################################
# tools
###########################################################################

# shellcheck source=scripts/packages.sh
source "$REPO/scripts/packages.sh"
ensure_packages containernetworking-plugins iproute2 jq gcc libc6-dev util-linux coreutils findutils

for tool in ip jq nsenter unshare cc find xargs; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install iproute2 jq util-linux gcc libc6-dev findutils)"
done
[[ -x $CNI_DIR/host-device && -x $CNI_DIR/static ]] ||
    die "needs the reference plugins host-device and static in $CNI_DIR (apt-get install containernetworking-plugins)"
unshare -n -m --propagation private true 2>/dev/null ||
    die "'unshare -n -m' failed: needs CAP_SYS_ADMIN (restricted container?)"

###########################################################################
# building: the plugin, the benchmark program, the stub delegate
###########################################################################

if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH=${HOME:-/root}/.cargo/bin:$PATH
fi
command -v cargo >/dev/null || die "needs cargo (rustup) to build the benchmark program (scripts/bench)"

# The deployable build is the static musl one (README, Install): measure that one
# unless told otherwise (a baseline is built the same way).
if [[ -z ${TARGET:-} ]] && command -v rustup >/dev/null; then
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        say "adding the rustup target x86_64-unknown-linux-musl (the deployable build)"
        rustup target add x86_64-unknown-linux-musl >&2 || say "warning: could not add it; measuring the host build"
    fi
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        TARGET=x86_64-unknown-linux-musl
    fi
fi
TARGET_ARGS=()
[[ -n ${TARGET:-} ]] && TARGET_ARGS=(--target "$TARGET")

# build_plugin DIR: `cargo build --release [--target T]` of the plugin in DIR (with
# CARGO_TARGET_DIR as set by the caller); prints the binary's path.
build_plugin() {
    local dir=$1 target_dir
    say "cargo build --release ${TARGET_ARGS[*]} (in $dir)"
    (cd "$dir" && cargo build --release "${TARGET_ARGS[@]}" >&2) || die "cargo build failed in $dir"
    target_dir=${CARGO_TARGET_DIR:-$dir/target}
    echo "$target_dir/${TARGET:+$TARGET/}release/amd-host-device"
}

if [[ -n ${AMD_HOST_DEVICE_BIN:-} ]]; then
    BIN=$AMD_HOST_DEVICE_BIN
else
    BIN=$(build_plugin "$REPO")
fi
[[ -x $BIN ]] || die "plugin binary not found or not executable: $BIN"
BIN=$(readlink -f "$BIN")

# The comparisons' A side. --aa: the binary itself (B is too: both are copied below).
# --against: a binary as given, or a git revision built in a throwaway worktree with
# the same flags; the builds share target/bench/baseline/target, so a second run
# against the same revision only copies.
BASE_SRC=
remove_baseline_worktree() {
    if [[ -n $BASE_SRC && -d $BASE_SRC ]]; then
        git -C "$REPO" worktree remove --force "$BASE_SRC" >/dev/null 2>&1 || rm -rf "$BASE_SRC"
        git -C "$REPO" worktree prune >/dev/null 2>&1 || true
    fi
}
case $MODE in
aa)
    BASE_BIN=$BIN
    LABEL_A="this checkout's build"
    LABEL_B="A/A: a second copy of the same binary"
    ;;
against)
    if [[ -f $AGAINST && -x $AGAINST ]]; then
        BASE_BIN=$(readlink -f "$AGAINST")
        LABEL_A="baseline binary"
    else
        command -v git >/dev/null || die "--against $AGAINST: not a binary, and no git to build it as a revision"
        sha=$(git -C "$REPO" rev-parse --verify --quiet "$AGAINST^{commit}") ||
            die "--against $AGAINST: neither an executable file nor a git revision"
        BASE_BIN=$OUT/baseline/$sha/amd-host-device
        if [[ ! -x $BASE_BIN ]]; then
            # Outside the repository: under it, cargo would take the checkout for a
            # member of this workspace.
            BASE_SRC=$(mktemp -d "${TMPDIR:-/tmp}/amd-host-device-baseline.XXXXXX")/src
            trap 'remove_baseline_worktree; rmdir "${BASE_SRC%/src}" 2>/dev/null' EXIT
            say "git worktree add --detach $BASE_SRC $sha"
            git -C "$REPO" worktree add --detach "$BASE_SRC" "$sha" >&2 || die "cannot check out $AGAINST"
            built=$(CARGO_TARGET_DIR=$OUT/baseline/target build_plugin "$BASE_SRC")
            mkdir -p "$OUT/baseline/$sha"
            cp "$built" "$BASE_BIN"
            remove_baseline_worktree
            rmdir "${BASE_SRC%/src}" 2>/dev/null || true
            trap - EXIT
        fi
        short=$(git -C "$REPO" rev-parse --short "$sha")
        if [[ $sha == "$AGAINST"* ]]; then LABEL_A="baseline $short"; else LABEL_A="baseline $AGAINST = $short"; fi
    fi
    LABEL_B="this checkout"
    ;;
esac
if [[ $MODE != full ]]; then
    # Both sides run from fresh copies made the same way, at paths of the same length:
    # a linker's output and a copied file can sit differently in the page cache, and
    # the comparison must see only the difference of their bytes. For A/A, A and B are
    # two copies of one binary.
    mkdir -p "$OUT/bins/a" "$OUT/bins/b"
    rm -f "$OUT/bins/a/amd-host-device" "$OUT/bins/b/amd-host-device"
    cp "$BASE_BIN" "$OUT/bins/a/amd-host-device"
    cp "$BIN" "$OUT/bins/b/amd-host-device"
    LABEL_A="$LABEL_A, from ${BASE_BIN#"$REPO"/}"
    LABEL_B="$LABEL_B, from ${BIN#"$REPO"/}"
    BASE_BIN=$OUT/bins/a/amd-host-device
    BIN=$OUT/bins/b/amd-host-device
fi

# The benchmark program runs here, so it is built for the host.
say "cargo build --release -p amd-host-device-bench"
cargo build --release -p amd-host-device-bench >&2
HARNESS=$REPO/target/release/amd-host-device-bench

mkdir -p "$OUT/stub-cni" "$OUT/raw"
STUB_DIR=$OUT/stub-cni
STUB=$STUB_DIR/host-device
STUB_SRC=$REPO/scripts/bench/stub-host-device.c
if ! cc -O2 -static -o "$STUB" "$STUB_SRC" 2>"$OUT/cc.log"; then
    say "static link of the stub failed ($(head -c 200 "$OUT/cc.log")); linking dynamically"
    cc -O2 -o "$STUB" "$STUB_SRC" || die "cannot compile the stub host-device"
fi

###########################################################################
# the worlds
###########################################################################

WORK=$(mktemp -d "$OUT/run.XXXXXX")
HOLDERS=()

cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    for pid in "${HOLDERS[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    # The holders are our children: reap them (their namespaces, veths and
    # mounts go with them).
    for pid in "${HOLDERS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn_holder UNSHARE-FLAGS...: a `sleep infinity` in new namespaces; its pid
# in HOLDER. Not in $(...): the holder must be our child so cleanup can reap it.
spawn_holder() {
    unshare "$@" sleep infinity </dev/null &>/dev/null &
    HOLDER=$!
    HOLDERS+=("$HOLDER")
    local i
    for i in $(seq 1 200); do
        if [[ -n $(readlink "/proc/$HOLDER/ns/net" 2>/dev/null) &&
            $(readlink "/proc/$HOLDER/ns/net" 2>/dev/null) != "$(readlink /proc/self/ns/net)" &&
            $(cat "/proc/$HOLDER/comm" 2>/dev/null) == sleep ]]; then
            return 0
        fi
        sleep 0.02
    done
    die "namespace holder $HOLDER never became ready"
}

in_host() {
    local pid=$1
    shift
    nsenter -n -m -t "$pid" "$@"
}

# make_world W: in HOST[W] a host netns + private mount ns with its own sysfs and
# the fake PCI tree $WORK/W/pci; in POD[W] a pod netns, lo up, no IPv6 DAD
# (static IPAM must not wait for it).
declare -A HOST POD
make_world() {
    local w=$1 dir=$WORK/$1
    mkdir -p "$dir/pci" "$dir/drivers/fakenic" "$dir/state"
    chmod 700 "$dir/state"
    spawn_holder -n -m --propagation private
    HOST[$w]=$HOLDER
    in_host "$HOLDER" ip link set lo up
    in_host "$HOLDER" mount -t sysfs sysfs /sys
    in_host "$HOLDER" mount --bind "$dir/pci" /sys/bus/pci/devices
    spawn_holder -n
    POD[$w]=$HOLDER
    nsenter -n -t "$HOLDER" ip link set lo up
    nsenter -n -t "$HOLDER" sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
}

# The NIC every world has: veth nic0 (peer nic0p, UP), UP, these two addresses
# (the benchmark program checks it is so after every DEL, and gives the bare NIC
# its addresses back).
NIC=nic0
NIC_V4=10.66.0.2/24
NIC_V6=2001:db8:66::2/64
PCI=0000:5e:00.1

# make_nic HOST-PID DIR [PCI]: nic0 in that host, with a fake PCI entry if PCI given.
make_nic() {
    local h=$1 dir=$2 pci=${3:-}
    printf '%s\n' \
        "link add $NIC type veth peer name ${NIC}p" \
        "link set ${NIC}p up" \
        "link set $NIC up" \
        "address add $NIC_V4 dev $NIC" \
        "address add $NIC_V6 dev $NIC nodad" |
        in_host "$h" ip -batch - || die "cannot create $NIC"
    if [[ -n $pci ]]; then
        mkdir -p "$dir/pci/$pci/net/$NIC"
        ln -s "$dir/drivers/fakenic" "$dir/pci/$pci/driver"
    fi
}

# E2E_BARE: reference host-device; E2E_AMD: amd-host-device with the real delegate;
# OWN_CLEAN / OWN_BIG: amd-host-device with the stub delegate, BIG with 500 extra
# interfaces and 1,000 unrelated attachments; OWN_STATES (diagnostic): only the
# 1,000 attachments. All are built the same way. A comparison needs only OWN_CLEAN.
if [[ $MODE == full ]]; then
    say "building the namespaces (N=$N, warm-up $WARMUP)"
    WORLDS=(e2e_bare e2e_amd own_clean own_big own_states)
else
    say "building the namespace (comparison: $ROUNDS rounds of $PER_ROUND cycles, warm-up $WARMUP)"
    WORLDS=(own_clean)
fi
has_world() { [[ -n ${HOST[$1]:-} ]]; }
for w in "${WORLDS[@]}"; do
    make_world "$w"
done
if has_world e2e_bare; then make_nic "${HOST[e2e_bare]}" "$WORK/e2e_bare"; fi
for w in e2e_amd own_clean own_big own_states; do
    if has_world "$w"; then make_nic "${HOST[$w]}" "$WORK/$w" "$PCI"; fi
done

if [[ $MODE == full ]]; then
    # 500 extra interfaces in own_big: 250 veth pairs, each end UP with an IPv4
    # address, the A end also with an IPv6 address and a static route, and a fake
    # PCI entry (with driver) for each. Anything that dumps all links, addresses or
    # routes instead of asking for nic0's shows up in the scale ratio.
    say "scale world: 500 extra interfaces"
    {
        for ((k = 0; k < 250; k++)); do
            echo "link add sx${k}a type veth peer name sx${k}b"
            echo "link set sx${k}a up"
            echo "link set sx${k}b up"
            echo "address add 172.20.$k.1/24 dev sx${k}a"
            echo "address add 172.21.$k.1/24 dev sx${k}b"
            echo "address add 2001:db8:100:$k::1/64 dev sx${k}a nodad"
            echo "route add 172.22.$k.0/24 via 172.20.$k.2 dev sx${k}a"
        done
    } >"$WORK/scale.batch"
    in_host "${HOST[own_big]}" ip -batch "$WORK/scale.batch" || die "cannot create the 500 extra interfaces"
    extra_links=$(in_host "${HOST[own_big]}" ip -o link show | grep -c ': sx[0-9]*[ab]@')
    [[ $extra_links -eq 500 ]] || die "expected 500 extra interfaces, found $extra_links"
    extra_pci=()
    extra_pci_dirs=()
    for ((j = 0; j < 500; j++)); do
        printf -v 'extra_pci[j]' '0000:%02x:%02x.%x' $((0x60 + j / 256)) $(((j % 256) / 8)) $((j % 8))
        if ((j % 2 == 0)); then ifn=sx$((j / 2))a; else ifn=sx$((j / 2))b; fi
        extra_pci_dirs+=("$WORK/own_big/pci/${extra_pci[j]}/net/$ifn")
    done
    mkdir -p "${extra_pci_dirs[@]}"
    for ((j = 0; j < 500; j++)); do
        ln -s "$WORK/own_big/drivers/fakenic" "$WORK/own_big/pci/${extra_pci[j]}/driver"
    done
fi

###########################################################################
# configs (the benchmark program reads $WORK/<world>/config.json)
###########################################################################

if has_world e2e_bare; then
    jq -cn --arg dev "$NIC" --arg v4 "$NIC_V4" --arg v6 "$NIC_V6" \
        '{cniVersion: "0.3.1", name: "bench", type: "host-device", device: $dev,
          ipam: {type: "static", addresses: [{address: $v4}, {address: $v6}]}}' >"$WORK/e2e_bare/config.json"
    # The bare world's plugins ignore it; the program sets it for every world alike.
    jq -n '{}' >"$WORK/e2e_bare/node.json"
fi
amd_config() {
    jq -cn --arg pci "$PCI" --arg state "$1" \
        '{cniVersion: "0.3.1", name: "bench", type: "amd-host-device", deviceID: $pci,
          pciBusID: $pci, stateDir: $state, logLevel: "error"}'
}
# The state dir is the node policy's (node.json, which the program points the plugin
# at); the config names it too, to the same value, so builds that predate the node policy
# can be measured the same way.
for w in e2e_amd own_clean own_big own_states; do
    has_world "$w" || continue
    amd_config "$WORK/$w/state" >"$WORK/$w/config.json"
    jq -n --arg state "$WORK/$w/state" '{stateDir: $state}' >"$WORK/$w/node.json"
done

# CNI_ARGS as Multus passes them (also multus_args in scripts/bench/src/bench.rs).
multus_args() {
    printf 'IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-%s' \
        "$1" "$1" "$1"
}

# The plugins' stderr, from the seed runs below and from the measurement.
PLUGIN_ERR=$WORK/plugin-stderr.log
: >"$PLUGIN_ERR"

# populate_states WORLD: 1,000 unrelated attachments in WORLD's state dir: a real state file from an
# ADD with the stub, copied with other container ids, PCI addresses, names and
# MACs, each with its claim symlinks and device lock file, as real ones have.
populate_states() {
    local w=$1
    local h pod st seed_mac c l n_states n_claims n_locks listed
    h=${HOST[$w]}
    pod=${POD[$w]}
    st=$WORK/$w/state
    local -a seed_claims seed_locks
    in_host "$h" env -i PATH="$RUNTIME_PATH" AMD_HOST_DEVICE_NODE_POLICY="$WORK/$w/node.json" \
        CNI_COMMAND=ADD CNI_PATH="$STUB_DIR" CNI_CONTAINERID=seed \
        CNI_NETNS="/proc/$pod/ns/net" CNI_IFNAME=net1 CNI_ARGS="$(multus_args seed)" \
        "$BIN" <"$WORK/$w/config.json" >"$WORK/$w/seed-result.json" 2>>"$PLUGIN_ERR" ||
        die "seed ADD failed: $(cat "$WORK/$w/seed-result.json")"
    [[ -f $st/seed-net1.json ]] || die "seed ADD wrote no state file $st/seed-net1.json"
    cp "$st/seed-net1.json" "$WORK/$w/seed-state.json"
    # What an attachment leaves in the state dir besides its file: claims (hard links
    # to it), lock files. Each copy gets the seed's claims and device lock
    # files, with the PCI address, name and MAC in their names replaced.
    seed_mac=$(jq -r '.host.mac // ""' "$WORK/$w/seed-state.json")
    seed_claims=()
    while IFS= read -r c; do seed_claims+=("$c"); done < <(find "$st" -maxdepth 1 -name 'claim-*' -samefile "$st/seed-net1.json" -printf '%f\n')
    seed_locks=()
    while IFS= read -r l; do
        if [[ $l == *"$PCI"* || $l == *"$NIC"* ]]; then seed_locks+=("$l"); fi
    done < <(find "$st/locks" -maxdepth 1 -type f -printf '%f\n')
    in_host "$h" env -i PATH="$RUNTIME_PATH" AMD_HOST_DEVICE_NODE_POLICY="$WORK/$w/node.json" \
        CNI_COMMAND=DEL CNI_PATH="$STUB_DIR" CNI_CONTAINERID=seed \
        CNI_NETNS="/proc/$pod/ns/net" CNI_IFNAME=net1 CNI_ARGS="$(multus_args seed)" \
        "$BIN" <"$WORK/$w/config.json" >/dev/null 2>>"$PLUGIN_ERR" || die "seed DEL failed"
    [[ ! -e $st/seed-net1.json ]] || die "seed DEL left its state file"
    ((${#seed_claims[@]} > 0)) || die "the seed ADD left no claim in $st"
    rename_ids() { # NAME K PCI MAC -> NAME with the seed's ids replaced by copy K's
        local n=$1 k=$2 p=$3 m=$4
        n=${n//$PCI/$p}
        n=${n//-$NIC/-old$k}
        if [[ -n $seed_mac ]]; then
            n=${n//${seed_mac//:/}/${m//:/}}
            n=${n//$seed_mac/$m}
        fi
        echo "$n"
    }
    # One jq run makes all 1,000 state files (no fork per file): every string equal
    # to our PCI address (pciAddress, selector) becomes another one.
    (
        umask 077
        : >"$WORK/$w/old-claims"
        : >"$WORK/$w/old-locks"
        while IFS=' ' read -r k pci mac json; do
            printf '%s\n' "$json" >"$st/oldpod$k-net1.json"
            for c in "${seed_claims[@]}"; do
                echo "$st/oldpod$k-net1.json $st/$(rename_ids "$c" "$k" "$pci" "$mac")" >>"$WORK/$w/old-claims"
            done
            for l in "${seed_locks[@]}"; do
                echo "$st/locks/$(rename_ids "$l" "$k" "$pci" "$mac")" >>"$WORK/$w/old-locks"
            done
        done < <(
            for ((k = 1; k <= 1000; k++)); do
                printf '%d 0000:%02x:%02x.%x 02:aa:00:00:%02x:%02x\n' "$k" $((0x80 + k / 256)) $(((k % 256) / 8)) $((k % 8)) \
                    $((k / 256)) $((k % 256))
            done | jq -R -r --arg pci "$PCI" --slurpfile s "$WORK/$w/seed-state.json" '
                split(" ") as [$k, $p, $mac]
                | $s[0]
                | walk(if . == $pci then $p else . end)
                | .containerId = "oldpod\($k)"
                | .netns = "/var/run/netns/oldpod\($k)"
                | .host.name = "old\($k)"
                | .host.ifindex = (1000 + ($k | tonumber))
                | .host.mac = $mac
                | .podIfname = "old\($k)"
                | "\($k) \($p) \($mac) \(tojson)"'
        )
        xargs -n 2 ln <"$WORK/$w/old-claims"
        if [[ -s $WORK/$w/old-locks ]]; then xargs touch <"$WORK/$w/old-locks"; fi
    )
    n_states=$(find "$st" -maxdepth 1 -name 'oldpod*-net1.json' | wc -l)
    [[ $n_states -eq 1000 ]] || die "expected 1000 unrelated state files, found $n_states"
    # The copies must parse as this plugin's state: `list` reads them (admin command).
    n_claims=$(find "$st" -maxdepth 1 -type f -name 'claim-*' | wc -l)
    n_locks=$(find "$st/locks" -maxdepth 1 -type f | wc -l)
    if in_host "$h" "$BIN" list --json --state-dir "$st" >"$WORK/$w/list.json" 2>/dev/null; then
        listed=$(jq 'length' "$WORK/$w/list.json" 2>/dev/null || echo '?')
        [[ $listed == 1000 ]] || die "the plugin's 'list' sees $listed attachments in $st, expected 1000"
    else
        say "warning: '$(basename "$BIN") list --json' failed; the copied state files were not checked"
    fi
    say "  $w state dir: $n_states state files, $n_claims claims, $n_locks lock files"
}
if [[ $MODE == full ]]; then
    say "scale worlds: 1,000 unrelated state files"
    populate_states own_big
    populate_states own_states
fi

###########################################################################
# the measurement, the statistics and the report: scripts/bench
###########################################################################

world_args=()
for w in "${WORLDS[@]}"; do
    world_args+=(--world "$w:${HOST[$w]}:${POD[$w]}")
done
mode_args=(--cycles "$N")
REPORT_FILE=results.md
if [[ $MODE != full ]]; then
    mode_args=(--baseline "$BASE_BIN" --rounds "$ROUNDS" --label-a "$LABEL_A" --label-b "$LABEL_B")
    REPORT_FILE=compare.md
fi
t_start=$SECONDS
"$HARNESS" --plugin "$BIN" --cni-dir "$(readlink -f "$CNI_DIR")" --stub-dir "$STUB_DIR" \
    --work "$WORK" --out "$OUT" --repo "$REPO" \
    --nic "$NIC" --addr "$NIC_V4" --addr "$NIC_V6" \
    --warmup "$WARMUP" --per-round "$PER_ROUND" --pin "$PIN" \
    "${mode_args[@]}" "${world_args[@]}" >"$WORK/report.md" ||
    die "the measurement failed (scripts/bench); the worlds are being torn down"
if [[ -s $PLUGIN_ERR ]]; then
    say "the plugins wrote to stderr (first lines):"
    head -n 5 "$PLUGIN_ERR" >&2
fi
say "done in $SECONDS s (measurement $((SECONDS - t_start)) s); report in target/bench/$REPORT_FILE"
cat "$WORK/report.md"

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
# Every ADD+DEL cycle is timed by a small C helper (fork/exec/wait of the
# plugin, stdout read through a pipe like a runtime does, CLOCK_MONOTONIC), so
# harness overhead (nsenter, bash) stays outside the timed section and is the
# same for both sides.
#
# Usage: scripts/bench.sh [-n N] [--target TRIPLE]
#        (root; on Debian it installs what is missing)
# Env:   N=50            cycles per series (after WARMUP untimed ones); -n N
#        WARMUP=3        untimed cycles per series first
#        BENCH_TARGET    same as --target: build and benchmark
#                        target/TRIPLE/release/amd-host-device (default
#                        x86_64-unknown-linux-musl, the deployable build, adding
#                        that rustup target if missing; else the host's)
#        AMD_HOST_DEVICE_BIN  benchmark this binary instead of building one
#        CNI_PLUGIN_DIR  reference plugins (default /usr/lib/cni)
#        NO_APT=1        never call apt-get
# Takes well under a minute for N=50 (plus the release build).
# Output: a markdown table on stdout and in target/bench/results.md; the raw
#         per-cycle figures in target/bench/raw/. Progress goes to stderr.
# The benchmark reports; it does not fail when a target is missed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

N=${N:-50}
WARMUP=${WARMUP:-3}
TARGET=${BENCH_TARGET:-}
CNI_DIR=${CNI_PLUGIN_DIR:-/usr/lib/cni}
OUT=$REPO/target/bench
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
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: scripts/bench.sh [-n N] [--target TRIPLE])" ;;
    esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, got '$WARMUP'"

[[ $(id -u) -eq 0 ]] ||
    die "must run as root: it creates network and mount namespaces, veth pairs and mounts sysfs (try: sudo $0)"

###########################################################################
# tools
###########################################################################

ensure_packages() {
    local -a wanted=(containernetworking-plugins iproute2 jq gcc libc6-dev time util-linux coreutils)
    local -a missing=()
    local p
    command -v dpkg-query >/dev/null || return 0
    for p in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ -n ${NO_APT:-} ]] || ! command -v apt-get >/dev/null; then
        say "missing packages (not installing, NO_APT set or no apt-get): ${missing[*]}"
        return 0
    fi
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "${missing[@]}" >&2
}
ensure_packages

for tool in ip jq nsenter unshare cc awk sort /usr/bin/time; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install iproute2 jq util-linux gcc libc6-dev time)"
done
[[ -x $CNI_DIR/host-device && -x $CNI_DIR/static ]] ||
    die "needs the reference plugins host-device and static in $CNI_DIR (apt-get install containernetworking-plugins)"
unshare -n -m --propagation private true 2>/dev/null ||
    die "'unshare -n -m' failed: needs CAP_SYS_ADMIN (restricted container?)"

if [[ -n ${AMD_HOST_DEVICE_BIN:-} ]]; then
    BIN=$AMD_HOST_DEVICE_BIN
else
    if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        PATH=${HOME:-/root}/.cargo/bin:$PATH
    fi
    command -v cargo >/dev/null || die "needs cargo (rustup) to build the release binary, or set AMD_HOST_DEVICE_BIN"
    # The deployable build is the static musl one (README, Install): measure that one
    # unless told otherwise.
    if [[ -z ${TARGET:-} ]] && command -v rustup >/dev/null; then
        if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
            say "adding the rustup target x86_64-unknown-linux-musl (the deployable build)"
            rustup target add x86_64-unknown-linux-musl >&2 || say "warning: could not add it; measuring the host build"
        fi
        if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
            TARGET=x86_64-unknown-linux-musl
        fi
    fi
    if [[ -n ${TARGET:-} ]]; then
        say "cargo build --release --target $TARGET"
        cargo build --release --target "$TARGET" >&2
        BIN=$REPO/target/$TARGET/release/amd-host-device
    else
        say "cargo build --release"
        cargo build --release >&2
        BIN=$REPO/target/release/amd-host-device
    fi
fi
[[ -x $BIN ]] || die "plugin binary not found or not executable: $BIN"
BIN=$(readlink -f "$BIN")

###########################################################################
# the stub delegate and the timing helper (C, built here)
###########################################################################

mkdir -p "$OUT/stub-cni" "$OUT/raw"

cat >"$OUT/stub-host-device.c" <<'EOF'
/* Minimal stand-in for the reference host-device plugin: reads and discards
 * stdin, prints a valid CNI 0.3.1 result on ADD, nothing otherwise, exits 0.
 * It moves nothing: the NIC stays on the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0)
        ;
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd && strcmp(cmd, "ADD") == 0) {
        const char *ifname = getenv("CNI_IFNAME");
        const char *netns = getenv("CNI_NETNS");
        printf("{\"cniVersion\":\"0.3.1\",\"interfaces\":[{\"name\":\"%s\",\"mac\":\"02:00:00:00:00:01\","
               "\"sandbox\":\"%s\"}],\"ips\":[{\"version\":\"4\",\"interface\":0,"
               "\"address\":\"10.66.0.2/24\"}],\"dns\":{}}\n",
               ifname ? ifname : "", netns ? netns : "");
    } else if (cmd && strcmp(cmd, "VERSION") == 0) {
        printf("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}\n");
    }
    return 0;
}
EOF

cat >"$OUT/cycle.c" <<'EOF'
/* cycle: one ADD+DEL of a CNI plugin, as a runtime runs it, timed.
 *
 * usage: cycle [-v] PLUGIN CONFIG-FILE ADD-RESULT-FILE [VAR=value...]
 * Runs PLUGIN with CNI_COMMAND=ADD, then CNI_COMMAND=DEL (-v: VERSION twice,
 * the cost of starting the process), each with exactly
 * the given environment (like env -i), stdin from CONFIG-FILE and stdout read
 * through a pipe. Times fork..wait of each with CLOCK_MONOTONIC and prints
 *   <add-us> <del-us> <add-maxrss-KiB> <del-maxrss-KiB>
 * (max RSS from wait4: the plugin or any descendant it waited for). The ADD
 * stdout goes to ADD-RESULT-FILE. Exit 1 (plugin stdout on stderr) when either
 * command fails; DEL runs even after a failed ADD. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 16];
static size_t outlen;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int run(const char *plugin, const char *cmd, const char *conf, char **vars, int nvars,
               long long *ns, long *rss)
{
    char cmdvar[64];
    char **envp = calloc(nvars + 2, sizeof *envp);
    char *argv[] = {(char *)plugin, NULL};
    int p[2], fd, status;
    struct rusage ru;
    char junk[4096];
    ssize_t r;

    snprintf(cmdvar, sizeof cmdvar, "CNI_COMMAND=%s", cmd);
    envp[0] = cmdvar;
    memcpy(envp + 1, vars, nvars * sizeof *envp);
    fd = open(conf, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        perror(conf);
        exit(2);
    }
    outlen = 0;
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 0);
        dup2(p[1], 1);
        execve(plugin, argv, envp);
        perror(plugin);
        _exit(127);
    }
    close(p[1]);
    for (;;) {
        if (outlen < sizeof out - 1) {
            r = read(p[0], out + outlen, sizeof out - 1 - outlen);
            if (r <= 0)
                break;
            outlen += (size_t)r;
        } else if (read(p[0], junk, sizeof junk) <= 0) {
            break;
        }
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        exit(2);
    }
    *ns = now_ns() - t0;
    *rss = ru.ru_maxrss;
    out[outlen] = 0;
    close(p[0]);
    close(fd);
    free(envp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    long long add_ns, del_ns;
    long add_rss, del_rss;
    int rc = 0, st;
    const char *first = "ADD", *second = "DEL";

    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        first = second = "VERSION";
        argv++;
        argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: cycle [-v] PLUGIN CONFIG-FILE ADD-RESULT-FILE [VAR=value...]\n");
        return 2;
    }
    st = run(argv[1], first, argv[2], argv + 4, argc - 4, &add_ns, &add_rss);
    FILE *f = fopen(argv[3], "w");
    if (f) {
        fputs(out, f);
        fclose(f);
    }
    if (st != 0) {
        fprintf(stderr, "cycle: %s %s exited %d: %s\n", argv[1], first, st, out);
        rc = 1;
    }
    st = run(argv[1], second, argv[2], argv + 4, argc - 4, &del_ns, &del_rss);
    if (st != 0) {
        fprintf(stderr, "cycle: %s %s exited %d: %s\n", argv[1], second, st, out);
        rc = 1;
    }
    printf("%lld %lld %ld %ld\n", add_ns / 1000, del_ns / 1000, add_rss, del_rss);
    return rc;
}
EOF

build_c() {
    local src=$1 dst=$2
    if ! cc -O2 -static -o "$dst" "$src" 2>"$OUT/cc.log"; then
        say "static link of $(basename "$src") failed ($(head -c 200 "$OUT/cc.log")); linking dynamically"
        cc -O2 -o "$dst" "$src" || die "cannot compile $src"
    fi
}
STUB_DIR=$OUT/stub-cni
STUB=$STUB_DIR/host-device
CYCLE=$OUT/cycle
build_c "$OUT/stub-host-device.c" "$STUB"
build_c "$OUT/cycle.c" "$CYCLE"

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

# The NIC every world has: veth nic0 (peer nic0p, UP), UP, these two addresses.
NIC=nic0
NIC_V4=10.66.0.2/24
NIC_V6=2001:db8:66::2/64
PCI=0000:5e:00.1

nic_batch() {
    printf '%s\n' \
        "link set $NIC up" \
        "address add $NIC_V4 dev $NIC" \
        "address add $NIC_V6 dev $NIC nodad"
}

# make_nic HOST-PID DIR [PCI]: nic0 in that host, with a fake PCI entry if PCI given.
make_nic() {
    local h=$1 dir=$2 pci=${3:-}
    {
        echo "link add $NIC type veth peer name ${NIC}p"
        echo "link set ${NIC}p up"
        nic_batch
    } | in_host "$h" ip -batch - || die "cannot create $NIC"
    if [[ -n $pci ]]; then
        mkdir -p "$dir/pci/$pci/net/$NIC"
        ln -s "$dir/drivers/fakenic" "$dir/pci/$pci/driver"
    fi
}

# nic_ok HOST-PID: nic0 is on that host, UP, with exactly its two global addresses.
nic_ok() {
    in_host "$1" ip -j addr show dev "$NIC" 2>/dev/null |
        jq -e --arg v4 "$NIC_V4" --arg v6 "$NIC_V6" '
            .[0] as $l
            | ($l.flags | index("UP")) != null
              and ([$l.addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | sort)
                  == ([$v4, $v6] | sort)' >/dev/null
}

say "building the namespaces (N=$N, warm-up $WARMUP)"
# E2E_BARE: reference host-device; E2E_AMD: amd-host-device with the real delegate;
# OWN_CLEAN / OWN_BIG: amd-host-device with the stub delegate, BIG with 500 extra
# interfaces and 1,000 unrelated attachments; OWN_STATES (diagnostic): only the
# 1,000 attachments. All are built the same way.
WORLDS=(e2e_bare e2e_amd own_clean own_big own_states)
for w in "${WORLDS[@]}"; do
    make_world "$w"
done
make_nic "${HOST[e2e_bare]}" "$WORK/e2e_bare"
for w in e2e_amd own_clean own_big own_states; do
    make_nic "${HOST[$w]}" "$WORK/$w" "$PCI"
done

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

###########################################################################
# configs and environments
###########################################################################

jq -cn --arg dev "$NIC" --arg v4 "$NIC_V4" --arg v6 "$NIC_V6" \
    '{cniVersion: "0.3.1", name: "bench", type: "host-device", device: $dev,
      ipam: {type: "static", addresses: [{address: $v4}, {address: $v6}]}}' >"$WORK/bare.json"
amd_config() {
    jq -cn --arg pci "$PCI" --arg state "$1" \
        '{cniVersion: "0.3.1", name: "bench", type: "amd-host-device", deviceID: $pci,
          pciBusID: $pci, stateDir: $state, logLevel: "error"}'
}
for w in e2e_amd own_clean own_big own_states; do
    amd_config "$WORK/$w/state" >"$WORK/$w/config.json"
done

multus_args() {
    printf 'IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-%s' \
        "$1" "$1" "$1"
}

mkdir -p "$WORK/data" "$WORK/results"
PLUGIN_ERR=$WORK/plugin-stderr.log
: >"$PLUGIN_ERR"

# timed_cycle SERIES HOST-PID PLUGIN CONFIG CNI_PATH IFNAME POD-PID CID RECORD
#   One timed ADD+DEL inside that host; appends the figures to data/SERIES
#   when RECORD is 1; checks the ADD result is a CNI result.
timed_cycle() {
    local series=$1 h=$2 plugin=$3 conf=$4 cni_path=$5 ifname=$6 pod=$7 cid=$8 record=$9
    local res=$WORK/results/$series.json line
    local -a mode=()
    [[ $series == version ]] && mode=(-v)
    if ! line=$(in_host "$h" "$CYCLE" "${mode[@]}" "$plugin" "$conf" "$res" \
        "PATH=$RUNTIME_PATH" "CNI_PATH=$cni_path" "CNI_CONTAINERID=$cid" \
        "CNI_NETNS=/proc/$pod/ns/net" "CNI_IFNAME=$ifname" "CNI_ARGS=$(multus_args "$cid")" \
        2>>"$PLUGIN_ERR"); then
        tail -n 20 "$PLUGIN_ERR" >&2
        die "$series: ADD+DEL failed (cycle $cid)"
    fi
    if [[ $series == version ]]; then
        jq -e '.supportedVersions | length >= 1' "$res" >/dev/null 2>&1 ||
            die "$series: VERSION printed no usable result: $(head -c 300 "$res")"
    else
        jq -e '(has("code") | not) and (.ips | length) >= 1 and (.interfaces | length) >= 1' "$res" >/dev/null 2>&1 ||
            die "$series: ADD printed no usable result: $(head -c 300 "$res")"
    fi
    if [[ $record == 1 ]]; then
        echo "$line" >>"$WORK/data/$series"
    fi
}

cycle_bare() { # RECORD CID
    timed_cycle bare "${HOST[e2e_bare]}" "$CNI_DIR/host-device" "$WORK/bare.json" "$CNI_DIR" "$NIC" "${POD[e2e_bare]}" "$2" "$1"
    # host-device DEL leaves the NIC DOWN without addresses: put them back (untimed).
    nic_batch | in_host "${HOST[e2e_bare]}" ip -batch - || die "bare: cannot restore $NIC after DEL"
}
cycle_amd() {
    timed_cycle amd "${HOST[e2e_amd]}" "$BIN" "$WORK/e2e_amd/config.json" "$CNI_DIR" net1 "${POD[e2e_amd]}" "$2" "$1"
    nic_ok "${HOST[e2e_amd]}" || die "amd: $NIC not restored after DEL"
}
cycle_stub() { # RECORD CID WORLD
    timed_cycle "stub_${3#own_}" "${HOST[$3]}" "$STUB" "$WORK/$3/config.json" "$STUB_DIR" net1 "${POD[$3]}" "$2" "$1"
}
cycle_own() { # RECORD CID WORLD
    timed_cycle "$3" "${HOST[$3]}" "$BIN" "$WORK/$3/config.json" "$STUB_DIR" net1 "${POD[$3]}" "$2" "$1"
    nic_ok "${HOST[$3]}" || die "$3: $NIC not left as it was after DEL"
}
cycle_version() { # RECORD CID: the plugin started twice (VERSION), same host and env
    timed_cycle version "${HOST[own_clean]}" "$BIN" "$WORK/own_clean/config.json" "$STUB_DIR" net1 "${POD[own_clean]}" "$2" "$1"
}

# Sanity: the plugin answers VERSION, and the worlds start where they should.
env -i CNI_COMMAND=VERSION "$BIN" <"$WORK/e2e_amd/config.json" | jq -e '.supportedVersions' >/dev/null ||
    die "$BIN does not answer VERSION"
for w in "${WORLDS[@]}"; do
    nic_ok "${HOST[$w]}" || die "$w: $NIC not set up"
done

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
    in_host "$h" env -i PATH="$RUNTIME_PATH" CNI_COMMAND=ADD CNI_PATH="$STUB_DIR" CNI_CONTAINERID=seed \
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
    in_host "$h" env -i PATH="$RUNTIME_PATH" CNI_COMMAND=DEL CNI_PATH="$STUB_DIR" CNI_CONTAINERID=seed \
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
say "scale worlds: 1,000 unrelated state files"
populate_states own_big
populate_states own_states

###########################################################################
# the measurement: every series interleaved, cycle by cycle
###########################################################################

# Series (data/<name>: add-us del-us add-maxrss-KiB del-maxrss-KiB per cycle):
#   bare       reference host-device + static, end to end      (host e2e_bare)
#   amd        amd-host-device -> host-device + static         (host e2e_amd)
#   stub_clean the stub host-device alone                      (host own_clean)
#   own_clean  amd-host-device -> stub                         (host own_clean)
#   stub_big   the stub alone, scaled host                     (host own_big)
#   own_big    amd-host-device -> stub, scaled host            (host own_big)
#   stub_states / own_states: the same, host with only the 1,000 state files
#   version    amd-host-device VERSION twice: process start-up  (host own_clean)
# Within each pair the order alternates (bare/amd every cycle, stub/amd+stub
# ABBA), and the order of the three stub worlds rotates, so drift and warm
# caches hit every side alike.
TOTAL=$((WARMUP + N))
say "measuring: $WARMUP warm-up + $N timed cycles of each of 9 series, interleaved"
t_start=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
for ((i = 1; i <= TOTAL; i++)); do
    rec=0
    ((i > WARMUP)) && rec=1
    cid=$(printf 'bench%04d' "$i")
    if ((i % 2)); then
        cycle_bare "$rec" "$cid"
        cycle_amd "$rec" "$cid"
    else
        cycle_amd "$rec" "$cid"
        cycle_bare "$rec" "$cid"
    fi
    cycle_version "$rec" "$cid"
    case $((i % 3)) in
    0) worlds=(own_clean own_big own_states) ;;
    1) worlds=(own_big own_states own_clean) ;;
    *) worlds=(own_states own_clean own_big) ;;
    esac
    for w in "${worlds[@]}"; do
        if (((i / 2) % 2)); then
            cycle_stub "$rec" "$cid" "$w"
            cycle_own "$rec" "$cid" "$w"
        else
            cycle_own "$rec" "$cid" "$w"
            cycle_stub "$rec" "$cid" "$w"
        fi
    done
    if ((i % 10 == 0 || i == TOTAL)); then
        say "  cycle $i/$TOTAL ($((SECONDS - t_start)) s)"
    fi
done
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
MEASURE_S=$((SECONDS - t_start))
for w in e2e_amd own_clean own_big own_states; do
    left=$(find "$WORK/$w/state" -maxdepth 1 -name 'bench*.json' | wc -l)
    [[ $left -eq 0 ]] || die "$w: $left state files of the benchmark left behind"
done

# Diagnostic for the scale ratio: the two filtered route dumps a capture makes (main
# table, output interface nic0; IPv4, then IPv6), made by iproute2 with the same kernel
# filters, DUMP_REPS times in each host. Whatever they grow by on the scaled host is the
# kernel walking the whole table, which no request can narrow further.
DUMP_REPS=200
printf 'route show dev %s table main\n' $(seq "$DUMP_REPS" | sed "s/.*/$NIC/") >"$WORK/dumps.batch"
route_dumps_us() { # HOST-PID -> microseconds per IPv4 + IPv6 pair of dumps
    local h=$1 t0 t1
    in_host "$h" ip -4 -batch "$WORK/dumps.batch" >/dev/null # warm
    t0=$(date +%s%N)
    in_host "$h" ip -4 -batch "$WORK/dumps.batch" >/dev/null
    in_host "$h" ip -6 -batch "$WORK/dumps.batch" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000 / DUMP_REPS))
}
dumps_clean_us=$(route_dumps_us "${HOST[own_clean]}")
dumps_big_us=$(route_dumps_us "${HOST[own_big]}")

###########################################################################
# peak RSS (GNU time, %M = max RSS in KiB of the plugin, or of anything it
# waited for: the stub is far smaller) and binary size
###########################################################################

say "peak RSS and binary size"
RSS_RUNS=5
rss_run() { # CMD CID -> KiB
    local cmd=$1 cid=$2 f=$WORK/rss.out
    in_host "${HOST[own_clean]}" /usr/bin/time -f %M -o "$f" env -i PATH="$RUNTIME_PATH" CNI_COMMAND="$cmd" \
        CNI_PATH="$STUB_DIR" CNI_CONTAINERID="$cid" CNI_NETNS="/proc/${POD[own_clean]}/ns/net" CNI_IFNAME=net1 \
        CNI_ARGS="$(multus_args "$cid")" "$BIN" <"$WORK/own_clean/config.json" >"$WORK/rss-stdout" 2>>"$PLUGIN_ERR" ||
        die "$cmd under /usr/bin/time failed: $(cat "$WORK/rss-stdout")"
    tail -n 1 "$f"
}
rss_version=0 rss_add=0 rss_del=0
for ((k = 1; k <= RSS_RUNS; k++)); do
    v=$(rss_run VERSION "rss$k")
    ((v > rss_version)) && rss_version=$v
    v=$(rss_run ADD "rss$k")
    ((v > rss_add)) && rss_add=$v
    v=$(rss_run DEL "rss$k")
    ((v > rss_del)) && rss_del=$v
done
nic_ok "${HOST[own_clean]}" || die "own_clean: $NIC not left as it was after the RSS runs"
BIN_SIZE=$(stat -c %s "$BIN")
LINKAGE=""
if command -v file >/dev/null; then
    case $(file -b "$BIN") in
    *static-pie*) LINKAGE="static-pie" ;;
    *statically*) LINKAGE="static" ;;
    *dynamically*) LINKAGE="dynamic" ;;
    esac
fi
STRIPPED="?"
if command -v readelf >/dev/null; then
    if readelf -S "$BIN" 2>/dev/null | grep -q '\.symtab'; then STRIPPED=no; else STRIPPED=yes; fi
elif grep -q '^strip *= *true' Cargo.toml; then
    STRIPPED="yes (profile.release strip = true)"
fi

###########################################################################
# statistics and the report
###########################################################################

# stats SERIES -> "n median p90 min max add-median del-median add-maxrss-max" (ms, KiB)
stats() {
    local f=$WORK/data/$1
    local total add del
    total=$(awk '{ print $1 + $2 }' "$f" | sort -n | quantiles)
    add=$(awk '{ print $1 }' "$f" | sort -n | quantiles)
    del=$(awk '{ print $2 }' "$f" | sort -n | quantiles)
    local rss
    rss=$(awk 'BEGIN { m = 0 } { if ($3 > m) m = $3; if ($4 > m) m = $4 } END { print m }' "$f")
    echo "$total ${add#* } ${del#* } $rss" | awk '{ print $1, $2, $3, $4, $5, $6, $10, $14 }'
}
# sorted numbers (us) -> "n median p90 min max" (ms); p90 = nearest rank
quantiles() {
    awk '{ a[NR] = $1 }
        END {
            n = NR
            med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            k = int(0.9 * n); if (k < 0.9 * n) k++; if (k < 1) k = 1
            printf "%d %.3f %.3f %.3f %.3f\n", n, med / 1000, a[k] / 1000, a[1] / 1000, a[n] / 1000
        }'
}
# paired SERIES-A SERIES-B -> median over cycles of (B - A) total, ms
paired() {
    paste -d ' ' "$WORK/data/$1" "$WORK/data/$2" | awk '{ print ($5 + $6) - ($1 + $2) }' | sort -n | quantiles |
        awk '{ print $2 }'
}
declare -A S
for s in bare amd stub_clean own_clean stub_big own_big stub_states own_states version; do
    S[$s]=$(stats "$s")
    cp "$WORK/data/$s" "$OUT/raw/$s.tsv"
done
field() { # SERIES INDEX(1=n 2=median 3=p90 4=min 5=max 6=add-median 7=del-median 8=rss)
    local -a a
    read -r -a a <<<"${S[$1]}"
    echo "${a[$(($2 - 1))]}"
}
calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }
met() { # VALUE OP LIMIT
    if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo yes; else echo "**no**"; fi
}

e2e_ratio=$(calc %.3f "$(field amd 2) / $(field bare 2)")
e2e_ratio_p90=$(calc %.3f "$(field amd 3) / $(field bare 3)")
own_cost=$(calc %.2f "$(field own_clean 2) - $(field stub_clean 2)")
own_cost_paired=$(calc %.2f "$(paired stub_clean own_clean)")
own_cost_big=$(calc %.2f "$(field own_big 2) - $(field stub_big 2)")
scale_ratio=$(calc %.3f "$(field own_big 2) / $(field own_clean 2)")
scale_growth_us=$(calc %.0f "($(field own_big 2) - $(field own_clean 2)) * 1000")
dumps_growth_us=$((dumps_big_us - dumps_clean_us))
states_ratio=$(calc %.3f "$(field own_states 2) / $(field own_clean 2)")
own_ratio=$(calc %.3f "($(field own_big 2) - $(field stub_big 2)) / ($(field own_clean 2) - $(field stub_clean 2))")
mib() { calc %.2f "$1 / 1024"; }
rss_version_mib=$(mib "$rss_version")
rss_add_mib=$(mib "$rss_add")
rss_del_mib=$(mib "$rss_del")
bin_mib=$(calc %.2f "$BIN_SIZE / 1048576")

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev="$rev+dirty"; fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cnp=$(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)

row() { # SERIES LABEL
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$(field "$1" 1)" "$(field "$1" 2)" \
        "$(field "$1" 3)" "$(field "$1" 4)" "$(field "$1" 5)" "$(field "$1" 6)" "$(field "$1" 7)" \
        "$(mib "$(field "$1" 8)")"
}

REPORT=$WORK/results.md
{
    echo "## amd-host-device benchmark"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), ${cpu:-?}, $(nproc) cores, kernel $(uname -r);" \
        "commit $rev; binary \`${BIN#"$REPO"/}\`${LINKAGE:+ ($LINKAGE)}; containernetworking-plugins $cnp."
    echo "$N timed ADD+DEL cycles per series after $WARMUP untimed, all nine series interleaved cycle by cycle" \
        "(order alternating) in $MEASURE_S s; each in its own throwaway host + pod netns on veth \"NICs\";" \
        "1-min load average $LOAD_BEFORE before, $LOAD_AFTER after (this run itself adds ~1)."
    echo
    echo "| metric | value | target | met? |"
    echo "|---|---|---|---|"
    echo "| end to end: amd-host-device / bare host-device+static, median ADD+DEL | $e2e_ratio | ≤ 1.05 | $(met "$e2e_ratio" '<=' 1.05) |"
    echo "| own cost per ADD+DEL cycle: median(amd→stub) − median(stub alone) | $own_cost ms | ≤ 2.0 ms | $(met "$own_cost" '<=' 2.0) |"
    echo "| scale: median amd→stub cycle, host with 500 extra interfaces + 1,000 unrelated state files / clean host | $scale_ratio | ≤ 1.05 | $(met "$scale_ratio" '<=' 1.05) |"
    echo "| peak RSS, VERSION (max of $RSS_RUNS) | $rss_version_mib MiB | ≤ 5 MiB | $(met "$rss_version_mib" '<=' 5) |"
    echo "| peak RSS, ADD with the stub delegate (max of $RSS_RUNS) | $rss_add_mib MiB | ≤ 5 MiB | $(met "$rss_add_mib" '<=' 5) |"
    echo "| release binary size (stripped: $STRIPPED) | $bin_mib MiB ($BIN_SIZE bytes) | ≤ 3 MiB | $(met "$bin_mib" '<=' 3) |"
    echo
    echo "| ADD+DEL cycle | n | median ms | p90 ms | min ms | max ms | ADD median ms | DEL median ms | max RSS MiB (incl. children) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    row bare "bare host-device + static"
    row amd "amd-host-device → host-device + static"
    row stub_clean "stub host-device alone"
    row own_clean "amd-host-device → stub"
    row stub_big "stub alone, scaled host"
    row own_big "amd-host-device → stub, scaled host"
    row stub_states "stub alone, host with the 1,000 state files only"
    row own_states "amd-host-device → stub, host with the 1,000 state files only"
    row version "amd-host-device VERSION + VERSION (process start-up only)"
    echo
    echo "Also: end-to-end p90 ratio $e2e_ratio_p90; own cost as the median of per-cycle differences" \
        "$own_cost_paired ms, of which starting the plugin process twice (VERSION + VERSION) ≈ $(field version 2) ms;" \
        "own cost on the scaled host $own_cost_big ms (ratio of own costs $own_ratio, noisier than the cycle ratio" \
        "above); scale ratio with the 1,000 state files only (no extra interfaces): $states_ratio; peak RSS of DEL with the stub $rss_del_mib MiB."
    echo "Scale diagnostic: on the scaled host an amd→stub cycle takes $scale_growth_us µs longer (median)." \
        "iproute2 making the same two kernel-filtered route dumps (main table, dev $NIC, IPv4 + IPv6; $DUMP_REPS" \
        "times each, ip's start-up amortised) takes $dumps_clean_us µs per pair on the clean host and" \
        "$dumps_big_us µs on the scaled one (+$dumps_growth_us µs): the kernel walks the whole main table to" \
        "find one interface's routes."
    echo "Times are wall clock from fork to wait of the plugin process, stdout read through a pipe; nsenter and" \
        "the between-cycle restore of the bare NIC (host-device DEL leaves it DOWN without addresses) are outside" \
        "the timed section. Peak RSS is GNU time's %M, which also covers children the plugin waited for" \
        "(the stub is ~1 MiB); the table's RSS column is wait4's ru_maxrss, so it includes host-device + static" \
        "on the end-to-end rows. Raw figures: \`target/bench/raw/*.tsv\` (add-us del-us add-KiB del-KiB)."
} >"$REPORT"
cp "$REPORT" "$OUT/results.md"
if [[ -s $PLUGIN_ERR ]]; then
    say "the plugins wrote to stderr (first lines):"
    head -n 5 "$PLUGIN_ERR" >&2
fi
say "done in $SECONDS s; report in target/bench/results.md"
cat "$REPORT"

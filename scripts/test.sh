#!/usr/bin/env bash
#
# Runs every check of amd-host-device:
#   cargo fmt --check, cargo clippy (-D warnings, every feature), cargo test,
#   cargo build --features test-faults (the crash-injection points the
#   end-to-end suite needs; never in a deployable build), cargo build -p
#   ahd-cri-client (the CRI client of tests/820-containerd-cri.bats), and, as
#   root, the end-to-end bats suite in tests/; then, on a full run, part of
#   that suite again with the deployable build (static musl, release: its own
#   allocator and memcpy, which no debug build has), see DEPLOYABLE_TESTS.
#
# Usage: scripts/test.sh [bats arguments]   (default: tests/)
# Env:   AMD_HOST_DEVICE_BIN  plugin binary the bats suite uses
#                             (default target/debug/amd-host-device)
#        NO_APT=1             never call apt-get
#
# The last line is "N passed, M failed" (what CI reads); exit status is
# non-zero when anything failed.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH=${HOME:-/root}/.cargo/bin:$PATH
fi

PASSED=0
FAILED=0
FAILED_STEPS=()
E2E_NOTE=""

say() { printf 'test.sh: %s\n' "$*"; }
header() { printf '\n==================== %s ====================\n' "$*"; }

# step <name> <command...>: one check; counts 1 pass or 1 fail.
step() {
    local name=$1
    shift
    header "$name"
    if "$@"; then
        PASSED=$((PASSED + 1))
        say "$name: ok"
        return 0
    else
        FAILED=$((FAILED + 1))
        FAILED_STEPS+=("$name")
        say "$name: FAILED"
        return 1
    fi
}

# shellcheck source=scripts/packages.sh
source scripts/packages.sh

# containerd: 820-containerd-cri.bats; protobuf-compiler: its CRI client's build (k8s-cri
# runs protoc); gcc + libc6-dev: its static pause image.
TEST_PACKAGES=(bats bats-assert bats-support containernetworking-plugins jq iproute2 util-linux
    podman runc busybox-static python3-yaml containerd protobuf-compiler gcc libc6-dev)

# cargo test, counting the individual Rust tests.
cargo_tests() {
    local log rc=0
    log=$(mktemp)
    cargo test --workspace --all-targets 2>&1 | tee "$log" || rc=$?
    local p f
    p=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$log")
    f=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }' "$log")
    rm -f "$log"
    say "cargo test: $p passed, $f failed"
    CARGO_TEST_PASSED=$p
    CARGO_TEST_FAILED=$f
    return "$rc"
}

run_bats() {
    local -a args=()
    if command -v parallel >/dev/null; then
        args+=(--jobs 2)
    fi
    if [[ $# -eq 0 ]]; then
        set -- tests/
    fi
    local log rc=0
    log=$(mktemp)
    bats --tap "${args[@]}" "$@" 2>&1 | tee "$log" || rc=$?
    BATS_PASSED=$(grep -E '^ok [0-9]+' "$log" | grep -vcE '# (skip|SKIP)' || true)
    BATS_SKIPPED=$(grep -E '^ok [0-9]+' "$log" | grep -cE '# (skip|SKIP)' || true)
    BATS_FAILED=$(grep -cE '^not ok [0-9]+' "$log" || true)
    rm -f "$log"
    say "bats: $BATS_PASSED passed, $BATS_FAILED failed, $BATS_SKIPPED skipped"
    if [[ $rc -ne 0 && $BATS_FAILED -eq 0 ]]; then
        # bats itself failed (syntax error, missing file...): count it.
        BATS_FAILED=1
    fi
    [[ $rc -eq 0 && $BATS_FAILED -eq 0 ]]
}

# The end-to-end tests run a second time with the deployable build: the plugin's own
# story (ADD/DEL, every CNI version, many pods at once, the protocol, a chain), none of
# which needs the crash points only a test-faults build has.
DEPLOYABLE_TARGET=x86_64-unknown-linux-musl
DEPLOYABLE_TESTS=(tests/100-add-del.bats tests/200-versions.bats tests/600-concurrency.bats
    tests/700-protocol.bats tests/720-chain-check.bats)

build_deployable() {
    if command -v rustup >/dev/null &&
        ! rustup target list --installed 2>/dev/null | grep -qx "$DEPLOYABLE_TARGET"; then
        rustup target add "$DEPLOYABLE_TARGET" || return 1
    fi
    cargo build --release --target "$DEPLOYABLE_TARGET" --bin amd-host-device
}

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

if [[ $IS_ROOT -eq 1 ]]; then
    ensure_packages "${TEST_PACKAGES[@]}"
fi

step "cargo fmt --check" cargo fmt --all -- --check || true
step "cargo clippy" cargo clippy --workspace --all-targets --all-features -- -D warnings || true

CARGO_TEST_PASSED=0
CARGO_TEST_FAILED=0
header "cargo test"
if cargo_tests; then
    say "cargo test: ok"
else
    FAILED_STEPS+=("cargo test")
    say "cargo test: FAILED"
    # a failure that is not a failing test (e.g. a compile error) still counts
    [[ $CARGO_TEST_FAILED -eq 0 ]] && CARGO_TEST_FAILED=1
fi
PASSED=$((PASSED + CARGO_TEST_PASSED))
FAILED=$((FAILED + CARGO_TEST_FAILED))

BUILD_OK=1
step "cargo build --features test-faults" cargo build --features test-faults || BUILD_OK=0
# The CRI client 820-containerd-cri.bats drives containerd with (a test-only member).
step "cargo build -p ahd-cri-client" cargo build -p ahd-cri-client || true

BATS_PASSED=0
BATS_FAILED=0
BATS_SKIPPED=0
if [[ $IS_ROOT -ne 1 ]]; then
    E2E_NOTE="end-to-end tests (bats tests/) SKIPPED: not running as root; they need to create network and mount namespaces, veth pairs and mount sysfs (run: sudo scripts/test.sh)"
elif ! command -v bats >/dev/null; then
    E2E_NOTE="end-to-end tests FAILED to run: bats is not installed"
    FAILED=$((FAILED + 1))
    FAILED_STEPS+=("bats (not installed)")
elif [[ $BUILD_OK -ne 1 && -z ${AMD_HOST_DEVICE_BIN:-} ]]; then
    E2E_NOTE="end-to-end tests not run: cargo build failed"
else
    header "bats (end-to-end)"
    if ! run_bats "$@"; then
        FAILED_STEPS+=("bats")
    fi
    PASSED=$((PASSED + BATS_PASSED))
    FAILED=$((FAILED + BATS_FAILED))
    TOTAL_BATS=($BATS_PASSED $BATS_FAILED $BATS_SKIPPED)
    if [[ $# -eq 0 ]] && step "cargo build --release --target $DEPLOYABLE_TARGET" build_deployable; then
        header "bats with the deployable build (${DEPLOYABLE_TESTS[*]})"
        if ! AMD_HOST_DEVICE_BIN=$PWD/target/$DEPLOYABLE_TARGET/release/amd-host-device \
            run_bats "${DEPLOYABLE_TESTS[@]}"; then
            FAILED_STEPS+=("bats with the deployable build")
        fi
        PASSED=$((PASSED + BATS_PASSED))
        FAILED=$((FAILED + BATS_FAILED))
        BATS_PASSED=$((TOTAL_BATS[0] + BATS_PASSED))
        BATS_FAILED=$((TOTAL_BATS[1] + BATS_FAILED))
        BATS_SKIPPED=$((TOTAL_BATS[2] + BATS_SKIPPED))
    fi
fi

header "summary"
[[ -n $E2E_NOTE ]] && say "$E2E_NOTE"
say "cargo test: $CARGO_TEST_PASSED passed, $CARGO_TEST_FAILED failed"
say "bats: $BATS_PASSED passed, $BATS_FAILED failed, $BATS_SKIPPED skipped"
if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
    say "failed: ${FAILED_STEPS[*]}"
fi
say "$PASSED passed, $FAILED failed"
echo "$PASSED passed, $FAILED failed"

[[ $FAILED -eq 0 && ${#FAILED_STEPS[@]} -eq 0 ]]

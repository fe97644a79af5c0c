#!/usr/bin/env bats
#
# Hostile network configs. A NetworkAttachmentDefinition is namespaced and often
# a tenant's to write, while the plugin runs as root on the node: every key that
# touches the node (a path it writes or reads, the program it runs, a guard) is
# the node policy's to decide. A NAD that tries to decide one is refused with
# code 7 before anything is captured, moved or created (DEL and GC, which give
# NICs back, use the node's value instead and log it), and nothing it injects
# becomes a log line of its own.
#
# One @test per hostile row, each checking (expect_hostile_refused): the code
# and message, the NIC still on the host with its addresses and not in the pod,
# no state dir, nothing at the path the NAD named, no line of stderr or of the
# log that is not one timestamped event, and the stand-in secret never shown.
# Then the positive controls: the same keys work where the policy's
# nadMayOverride allows them (the policy's own allowDefaultRouteDevice is in
# 500-recovery.bats).

load helpers

setup() {
    basic_setup
    standard_nic
    # Stand-ins for the node's /etc: a cron dir a log line could land in, and a
    # secret a pool "lookup" could read out.
    ETC=$WORKDIR/etc
    mkdir -p "$ETC/cron.d"
    SECRET="root:\$6\$secret-$TID:19000:0:99999:7:::"
    printf '%s\n' "$SECRET" >"$ETC/shadow"
    chmod 0600 "$ETC/shadow"
    SHADOW_SUM=$(sha256sum "$ETC/shadow")
    CRON_LINE="* * * * * root touch $ETC/pwned"
}

# refused_key <key>: the message for a NAD key the node decides.
refused_key() {
    echo "\"$1\" may not be set by a network config on this node (node policy $POLICY_FILE)"
}

# nad <jq-expression>: the Multus config of $NIC transformed by jq.
nad() {
    multus_config | jq -c "$1"
}

# The route that makes $NIC the host's way out (a high metric; the host ns is the test's own).
default_route_nic() {
    run_in_host_ns ip route add default via 10.77.0.1 dev "$NIC" metric 4242 ||
        die "cannot add a default route via $NIC"
}

# fake_delegate <name>: a plugin <name> in $WORKDIR/cni that records that it ran
# ($WORKDIR/<name>-ran) and then does host-device's job.
fake_delegate() {
    mkdir -p "$WORKDIR/cni"
    printf '#!/bin/sh\ntouch %q\nexec %q "$@"\n' "$WORKDIR/$1-ran" "$CNI_PLUGIN_DIR/host-device" >"$WORKDIR/cni/$1"
    chmod +x "$WORKDIR/cni/$1"
}

# fake_ipam <name>: an IPAM plugin <name> in $WORKDIR/cni that records each
# command it ran for in $WORKDIR/<name>-ran and gives 10.55.0.2/24 on ADD.
fake_ipam() {
    mkdir -p "$WORKDIR/cni"
    {
        echo '#!/bin/sh'
        printf 'echo "$CNI_COMMAND" >>%q\n' "$WORKDIR/$1-ran"
        echo 'cat >/dev/null'
        echo '[ "$CNI_COMMAND" = ADD ] || exit 0'
        echo "echo '{\"cniVersion\": \"0.3.1\", \"ips\": [{\"version\": \"4\", \"address\": \"10.55.0.2/24\"}]}'"
    } >"$WORKDIR/cni/$1"
    chmod +x "$WORKDIR/cni/$1"
}

# kvp_ipam <pool>: the user's IPAM block, kvp-ipoib-ipam reading <pool>.
kvp_ipam() {
    jq -cn --arg pool "$1" '{type: "kvp-ipoib-ipam", poolFile: $pool}'
}

# assert_no_leak [injected]: neither stdout, stderr nor the log shows the secret;
# every line of stderr and of the log is one event, none starting with <injected>;
# the secret file is as it was.
assert_no_leak() {
    local log="" text
    [[ ! -e $LOG_FILE ]] || log=$(cat "$LOG_FILE")
    for text in "$output" "$stderr" "$log"; do
        [[ $text != *"secret-$TID"* ]] || die "the secret leaked: $text"
    done
    assert_one_event_per_line stderr "$stderr" "${1:-}"
    assert_one_event_per_line "the log $LOG_FILE" "$log" "${1:-}"
    [[ $(sha256sum "$ETC/shadow") == "$SHADOW_SUM" ]] || die "the secret file changed"
}

# expect_hostile_refused <code> <message part> <config> [path] [injected]: ADD of
# <config> is refused and nothing happened (assert_refused_untouched), nothing
# exists at <path>, nothing leaked (assert_no_leak).
expect_hostile_refused() {
    local code=$1 message=$2 config=$3 path=${4:-} injected=${5:-}
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_refused_untouched "$code" "$message"
    if [[ -n $path ]] && [[ -e $path || -L $path ]]; then
        die "the NAD's $path was created: $(ls -la "$path")"
    fi
    assert_no_leak "$injected"
}

# allowed_add_del <config> <check...>: ADD succeeds, the check command holds,
# DEL gives the NIC back home.
allowed_add_del() {
    local config=$1
    shift
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    "$@"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
}

assert_file_exists() {
    [[ -f $1 ]] || die "no file $1: $(ls -la "$(dirname "$1")" 2>&1)"
}

###########################################################################
# hostile rows

@test "hostile: logFile in a cron dir → 7, no file there" {
    expect_hostile_refused 7 "$(refused_key logFile)" "$(nad ".logFile = \"$ETC/cron.d/x\"")" "$ETC/cron.d/x"
}

@test "hostile: stateDir outside the policy → 7, no dir there" {
    expect_hostile_refused 7 "$(refused_key stateDir)" "$(nad ".stateDir = \"$ETC/amd-state\"")" "$ETC/amd-state"
}

@test "hostile: kvpPoolFile at a secret file (addressSource kvp) → 7, nothing read out" {
    expect_hostile_refused 7 "$(refused_key kvpPoolFile)" "$(nad ".addressSource = \"kvp\" | .kvpPoolFile = \"$ETC/shadow\"")"
}

@test "hostile: delegate another plugin (bridge) → 7, it never runs" {
    fake_delegate bridge
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" expect_hostile_refused 7 "is not allowed by the node policy $POLICY_FILE" \
        "$(nad '.delegate = "bridge"')" "$WORKDIR/bridge-ran"
}

@test "hostile: delegate a path (/bin/sh) → 7" {
    expect_hostile_refused 7 "must be a plugin name, not a path" "$(nad '.delegate = "/bin/sh"')"
}

@test "hostile: a name with a newline and a crontab line → 7, no line starts with it" {
    expect_hostile_refused 7 '"name"' "$(nad ".name = \"x$TID\\n$CRON_LINE\"")" "$ETC/pwned" "$CRON_LINE"
    [[ $stderr == *"x$TID\\n$CRON_LINE"* ]] || die "the refusal is not on stderr, escaped: $stderr"
}

@test "hostile: allowDefaultRouteDevice true from the NAD on the default route's NIC → 7, NIC and route stay" {
    default_route_nic
    expect_hostile_refused 7 "$(refused_key allowDefaultRouteDevice)" "$(nad '.allowDefaultRouteDevice = true')"
    assert_route host default 10.77.0.1 "$NIC"
}

@test "hostile: logLevel on a node whose nadMayOverride is empty → 7" {
    write_policy '{"nadMayOverride": []}'
    expect_hostile_refused 7 "$(refused_key logLevel)" "$(multus_config)"
}

@test "hostile: stateDir outside the policy on CHECK and STATUS → 7, no dir there; DEL and GC ignore it (logged) and never touch it" {
    local cmd config
    config=$(nad ".cniVersion = \"1.1.0\" | .stateDir = \"$ETC/amd-state\"")
    for cmd in CHECK STATUS; do
        run_plugin "$cmd" "$CID" "$POD_NETNS" net1 "$config"
        assert_cni_error 7
        assert_msg_contains "$(refused_key stateDir)"
        [[ ! -e $ETC/amd-state && ! -e $STATE_DIR ]] || die "$cmd created a state dir"
    done
    # A DEL that fails blocks the pod's deletion: it looks where the node keeps
    # state instead (nothing there), and so does GC.
    for cmd in DEL GC; do
        run_plugin "$cmd" "$CID" "$POD_NETNS" net1 "$config"
        assert_plugin_ok_silent
        [[ ! -e $ETC/amd-state ]] || die "$cmd created the NAD's state dir"
        grep -qF "$cmd ignores a value of the network config and goes on as the node decides: $(refused_key stateDir)" "$LOG_FILE" ||
            die "$cmd did not log that it ignored stateDir: $(cat "$LOG_FILE" 2>&1)"
        assert_one_event_per_line "the log" "$(cat "$LOG_FILE")"
    done
    assert_nic_home
}

@test "hostile: ipam.poolFile at a secret file, to kvp-ipoib-ipam → 7, nothing read out" {
    kvp_setup
    run_bare_plugin "$KVP_IPAM" ADD "$CID" "$POD_NETNS" net1 \
        "$(jq -cn --argjson ipam "$(kvp_ipam "$ETC/shadow")" '{cniVersion: "1.0.0", name: "ib-net", type: "host-device", ipam: $ipam}')"
    assert_cni_error 7
    assert_msg_contains "$(refused_key ipam.poolFile)"
    assert_no_leak
}

@test "hostile: ipam.poolFile at a secret file, through amd-host-device → 7 before anything moves" {
    # amd-host-device checks kvp-ipoib-ipam's pool against the policy itself, before it
    # captures anything or hands the ipam to host-device (on a node that lets NADs use it).
    write_policy '{"ipamTypes": ["static", "kvp-ipoib-ipam"]}'
    kvp_setup
    CNI_PLUGIN_DIR=$KVP_CNI_DIR run_plugin ADD "$CID" "$POD_NETNS" net1 "$(nad ".ipam = $(kvp_ipam "$ETC/shadow")")"
    assert_cni_error 7
    assert_msg_contains "$(refused_key ipam.poolFile)"
    assert_nic_home
    assert_no_link pod "$NIC"
    [[ ! -e $STATE_DIR ]] || die "the state dir was created: $(ls -la "$STATE_DIR")"
    assert_no_leak
}

@test "hostile: an ipam type the policy does not list (a plugin next to host-device) → 7, it never runs" {
    fake_ipam my-ipam
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" expect_hostile_refused 7 \
        "\"ipam\" type \"my-ipam\" is not allowed by the node policy $POLICY_FILE (allowed: static)" \
        "$(nad '.ipam = {"type": "my-ipam"}')" "$WORKDIR/my-ipam-ran"
}

@test "hostile: the reference IPAMs are not allowed by default (host-local, dhcp) → 7, host-local leaves no lease" {
    expect_hostile_refused 7 '"ipam" type "host-local" is not allowed' \
        "$(nad ".ipam = {type: \"host-local\", subnet: \"10.55.0.0/24\", dataDir: \"$WORKDIR/leases\"}")" "$WORKDIR/leases"
    expect_hostile_refused 7 '"ipam" type "dhcp" is not allowed' "$(nad '.ipam = {"type": "dhcp"}')"
}

@test "hostile: an ipam type that is a path (../../../bin/sh) → 7" {
    write_policy '{"ipamTypes": ["static", "host-local"]}'
    expect_hostile_refused 7 '"ipam" type "../../../bin/sh" is not allowed' "$(nad '.ipam = {"type": "../../../bin/sh"}')"
}

@test "hostile: ipam.dataDir in /etc (host-local allowed) → 7, no lease dir there, in any spelling Go accepts" {
    write_policy '{"ipamTypes": ["static", "host-local"]}'
    local key
    for key in dataDir DataDir DATADIR; do
        expect_hostile_refused 7 "$(refused_key "ipam.$key")" \
            "$(nad ".ipam = {type: \"host-local\", subnet: \"10.55.0.0/24\", \"$key\": \"$ETC/leases\"}")" "$ETC/leases"
    done
}

@test "hostile: ipam.resolvConf at a secret file (host-local allowed) → 7, nothing read out" {
    write_policy '{"ipamTypes": ["static", "host-local"]}'
    # Were it let through, host-local's leases would go to its default dir: a private one.
    private_var_lib
    expect_hostile_refused 7 "$(refused_key ipam.resolvConf)" \
        "$(nad ".ipam = {type: \"host-local\", subnet: \"10.55.0.0/24\", resolvConf: \"$ETC/shadow\"}")"
    run_in_host_ns test ! -e /var/lib/cni/networks || die "host-local ran: $(run_in_host_ns ls -R /var/lib/cni/networks)"
}

@test "hostile: ipam.daemonSocketPath (dhcp allowed) → 7" {
    write_policy '{"ipamTypes": ["static", "dhcp"]}'
    expect_hostile_refused 7 "$(refused_key ipam.daemonSocketPath)" \
        "$(nad ".ipam = {type: \"dhcp\", daemonSocketPath: \"$WORKDIR/evil.sock\"}")" "$WORKDIR/evil.sock"
}

###########################################################################
# positive controls: the policy allows what the NADs above were refused

@test "allowed: the node's own stateDir and logFile named in the NAD are no override" {
    allowed_add_del "$(nad ".stateDir = \"$STATE_DIR\" | .logFile = \"$LOG_FILE\"")" \
        assert_file_exists "$(state_file "$CID" net1)"
}

@test "allowed: nadMayOverride stateDir, the NAD's state dir is used" {
    allow_nad_keys stateDir
    allowed_add_del "$(nad ".stateDir = \"$WORKDIR/nad-state\"")" assert_file_exists "$WORKDIR/nad-state/$CID-net1.json"
    [[ ! -e $STATE_DIR ]] || die "the node's state dir was used"
}

@test "allowed: nadMayOverride logFile, the NAD's log gets the lines" {
    allow_nad_keys logFile
    allowed_add_del "$(nad ".logFile = \"$WORKDIR/nad.log\"")" assert_file_exists "$WORKDIR/nad.log"
    [[ ! -e $LOG_FILE ]] || die "the node's log file was written: $(cat "$LOG_FILE")"
    assert_one_event_per_line "the log" "$(cat "$WORKDIR/nad.log")"
}

@test "allowed: nadMayOverride kvpPoolFile, the NAD's pool gives the address (kvpPoolFile and ipam.poolFile)" {
    write_policy '{"nadMayOverride": ["logLevel", "podInterfaceName", "kvpPoolFile"], "ipamTypes": ["static", "kvp-ipoib-ipam"]}'
    kvp_setup
    make_pool "$POOL" "NUMPAIRS:1|${NIC_MAC_ADDR//:/}:172.16.9.9"
    allowed_add_del "$(nad ".addressSource = \"kvp\" | .kvpPoolFile = \"$POOL\"")" assert_addrs pod "$NIC" 172.16.9.9/16
    CNI_PLUGIN_DIR=$KVP_CNI_DIR allowed_add_del "$(nad ".ipam = $(kvp_ipam "$POOL")")" assert_addrs pod "$NIC" 172.16.9.9/16
}

@test "allowed: nadMayOverride allowDefaultRouteDevice, the default route's NIC moves; DEL brings NIC and route back" {
    allow_nad_keys allowDefaultRouteDevice
    default_route_nic
    allowed_add_del "$(nad '.allowDefaultRouteDevice = true')" assert_route pod default 10.77.0.1 "$NIC"
    assert_route host default 10.77.0.1 "$NIC"
}

@test "allowed: a NAD may keep the default-route guard on where the node lets the NIC go → 104" {
    write_policy '{"allowDefaultRouteDevice": true}'
    default_route_nic
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$(nad '.allowDefaultRouteDevice = false')"
    assert_cni_error 104
    assert_nic_home
    assert_route host default 10.77.0.1 "$NIC"
    [[ ! -e $(state_file "$CID" net1) ]] || die "a refused ADD left state"
}

@test "allowed: a delegate the policy lists runs; the first listed is the default" {
    fake_delegate my-dev
    write_policy '{"delegates": ["my-dev", "host-device"]}'
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" allowed_add_del "$(multus_config)" assert_file_exists "$WORKDIR/my-dev-ran"
    rm "$WORKDIR/my-dev-ran"
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" allowed_add_del "$(nad '.delegate = "host-device"')" true
    [[ ! -e $WORKDIR/my-dev-ran ]] || die "my-dev ran for a NAD that named host-device"
}

@test "allowed: an ipam type the policy lists runs (ADD and DEL)" {
    fake_ipam my-ipam
    write_policy '{"ipamTypes": ["static", "my-ipam"]}'
    PLUGIN_CNI_PATH="$WORKDIR/cni:$CNI_PLUGIN_DIR" allowed_add_del "$(nad '.ipam = {"type": "my-ipam"}')" \
        assert_addrs pod "$NIC" 10.55.0.2/24
    [[ $(cat "$WORKDIR/my-ipam-ran") == $'ADD\nDEL' ]] || die "my-ipam ran for: $(cat "$WORKDIR/my-ipam-ran")"
}

@test "allowed: nadMayOverride ipam.dataDir, host-local keeps its lease there and DEL releases it" {
    write_policy '{"ipamTypes": ["static", "host-local"], "nadMayOverride": ["logLevel", "podInterfaceName", "ipam.dataDir"]}'
    local config
    config=$(nad ".ipam = {type: \"host-local\", subnet: \"10.55.0.0/24\", dataDir: \"$WORKDIR/leases\"}")
    run_plugin ADD "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok
    assert_addrs pod "$NIC" "$(jq -r '.ips[0].address' <<<"$output")"
    [[ -n $(find "$WORKDIR/leases" -name '10.55.0.*') ]] || die "no lease in $WORKDIR/leases: $(ls -R "$WORKDIR/leases" 2>&1)"
    run_plugin DEL "$CID" "$POD_NETNS" net1 "$config"
    assert_plugin_ok_silent
    assert_nic_home
    [[ -z $(find "$WORKDIR/leases" -name '10.55.0.*') ]] || die "the lease was not released: $(ls -R "$WORKDIR/leases")"
}

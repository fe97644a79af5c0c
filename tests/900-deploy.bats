#!/usr/bin/env bats
# -*- bats -*-
#
# The deployment files (examples/deploy/) and the example manifests: they parse,
# and they agree with each other. No root, no namespaces, no container engine:
#
#   * every YAML under examples/ parses (PyYAML) and every JSON config (jq);
#   * the DaemonSet's image is the one the Dockerfile documents (its "# image:"
#     line, the single source of truth), tagged with Cargo.toml's version, and the
#     README builds and pushes that same image;
#   * the binary ends up at /opt/cni/bin/amd-host-device: the hostPath, the mount,
#     CNI_BIN_DIR, install.sh and the Dockerfile's paths all say so;
#   * the NADs are amd-host-device at cniVersion 0.3.1 for amd.com/nic and
#     amd.com/vnic, the same in nads.yaml as in examples/nad-amd-*.yaml;
#   * install.sh itself works (run against a temporary "CNI bin dir").

load helpers

DEPLOY=$REPO/examples/deploy
BIN_PATH=/opt/cni/bin/amd-host-device

# Nothing heavy: no namespaces, no root. (Replaces helpers' basic_setup.)
setup() {
    TMP=${BATS_TEST_TMPDIR:-$(mktemp -d)}
}

teardown() {
    :
}

# A python3 with PyYAML: Debian's (python3-yaml) first, since CI's python3 on
# PATH may be a pyenv build without it.
find_python_yaml() {
    local py
    for py in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
        [[ -n $py && -x $py ]] || continue
        if "$py" -c 'import yaml' 2>/dev/null; then
            PY=$py
            return 0
        fi
    done
    skip "needs python3 with PyYAML (apt-get install python3-yaml)"
}

# yaml_docs <file>: the file's YAML documents as one JSON array (empty documents dropped).
yaml_docs() {
    [[ -n ${PY:-} ]] || find_python_yaml
    "$PY" -c '
import json, sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
print(json.dumps(docs))' "$1"
}

# The image the Dockerfile documents: its one "# image: <ref>" line.
dockerfile_image() {
    local lines
    lines=$(sed -n 's/^# image: *\([^ ]*\) *$/\1/p' "$DEPLOY/Dockerfile")
    [[ -n $lines ]] || die "no '# image: <ref>' line in $DEPLOY/Dockerfile"
    [[ $(wc -l <<<"$lines") -eq 1 ]] || die "more than one '# image:' line in the Dockerfile: $lines"
    echo "$lines"
}

cargo_version() {
    sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -1
}

daemonset() {
    yaml_docs "$DEPLOY/daemonset.yaml" | jq -c '.[] | select(.kind == "DaemonSet")'
}

# check_nad <nad-json> <where>: one NetworkAttachmentDefinition as Multus needs it.
check_nad() {
    local nad=$1 where=$2 config
    assert_json .apiVersion k8s.cni.cncf.io/v1 "$nad"
    assert_json .kind NetworkAttachmentDefinition "$nad"
    config=$(jq -r '.spec.config' <<<"$nad")
    jq -e 'type == "object"' <<<"$config" >/dev/null 2>&1 || die "$where: spec.config is not a JSON object: $config"
    assert_json .type amd-host-device "$config"
    assert_json .cniVersion 0.3.1 "$config"
    # the workload learns which NIC and RDMA device it got (device-info, via Multus)
    assert_json '.capabilities.CNIDeviceInfoFile' true "$config"
    [[ $(jq -r .name <<<"$config") == $(jq -r .metadata.name <<<"$nad") ]] ||
        die "$where: config name $(jq -r .name <<<"$config") differs from metadata.name $(jq -r .metadata.name <<<"$nad")"
    # Multus injects the device: a NAD that names one would hand every pod the same NIC
    jq -e 'has("deviceID") or has("pciBusID") or has("device") or has("hwaddr") | not' <<<"$config" >/dev/null ||
        die "$where: the NAD's config selects a device itself: $config"
    local rn
    rn=$(jq -r '.metadata.annotations["k8s.v1.cni.cncf.io/resourceName"] // empty' <<<"$nad")
    [[ $rn == amd.com/nic || $rn == amd.com/vnic ]] ||
        die "$where: resourceName annotation is '$rn', expected amd.com/nic or amd.com/vnic"
}

# A NAD as a comparable value: spec.config parsed.
normalised_nad() {
    jq -cS '.spec.config |= fromjson' <<<"$1"
}

###########################################################################
# parsing

@test "every YAML file under examples/ (and examples/deploy/) parses and is a Kubernetes object" {
    find_python_yaml
    local f n=0 docs
    while IFS= read -r f; do
        docs=$(yaml_docs "$f") || die "$f does not parse as YAML"
        jq -e 'length > 0' <<<"$docs" >/dev/null || die "$f holds no document"
        jq -e 'all(.[]; (.apiVersion | type) == "string" and (.kind | type) == "string"
                        and (.metadata.name | type) == "string")' <<<"$docs" >/dev/null ||
            die "$f: a document lacks apiVersion, kind or metadata.name: $docs"
        n=$((n + 1))
    done < <(find "$REPO/examples" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
    # nad-amd-nic, nad-amd-vnic, pod-two-nics, deploy/daemonset, deploy/nads
    ((n >= 5)) || die "found only $n YAML files under examples/"
}

@test "every JSON config under examples/ parses and uses the amd-host-device type" {
    local f n=0
    while IFS= read -r f; do
        jq -e 'type == "object"' "$f" >/dev/null 2>&1 || die "$f is not a JSON object"
        jq -e '[.type, (.plugins // [])[].type] | index("amd-host-device")' "$f" >/dev/null ||
            die "$f does not use the amd-host-device plugin"
        n=$((n + 1))
    done < <(find "$REPO/examples" -type f \( -name '*.json' -o -name '*.conflist' \) | sort)
    ((n >= 3)) || die "found only $n JSON configs under examples/"
}

@test "kubectl apply -f examples/deploy/ sees exactly the node policy ConfigMap, the DaemonSet and the two NADs" {
    find_python_yaml
    local all='[]' f
    # kubectl apply -f <dir> reads .json, .yaml and .yml files
    while IFS= read -r f; do
        all=$(jq -c --argjson more "$(yaml_docs "$f")" '. + $more' <<<"$all")
    done < <(find "$DEPLOY" -maxdepth 1 -type f \( -name '*.json' -o -name '*.yaml' -o -name '*.yml' \) | sort)
    assert_json '[.[].kind] | sort | join(",")' \
        ConfigMap,DaemonSet,NetworkAttachmentDefinition,NetworkAttachmentDefinition "$all"
}

###########################################################################
# image

@test "the DaemonSet runs the image the Dockerfile documents, tagged with Cargo.toml's version; the README builds and pushes it" {
    find_python_yaml
    local image version ds
    image=$(dockerfile_image)
    version=$(cargo_version)
    [[ -n $version ]] || die "cannot read the package version from Cargo.toml"
    [[ ${image##*:} == "$version" ]] || die "image tag ${image##*:} is not Cargo.toml's version $version"
    grep -qF "org.opencontainers.image.version=\"$version\"" "$DEPLOY/Dockerfile" ||
        die "the Dockerfile's version label is not $version"

    ds=$(daemonset)
    [[ -n $ds ]] || die "no DaemonSet in daemonset.yaml"
    local images
    images=$(jq -r '.spec.template.spec | [(.initContainers // [])[], .containers[]] | .[].image' <<<"$ds" | sort -u)
    [[ $images == "$image" ]] || die "DaemonSet images [$(echo $images)] differ from the Dockerfile's '# image: $image'"

    # the build command in the Dockerfile's header and in the README, and the push
    grep -qF -- "docker build -f examples/deploy/Dockerfile -t $image ." "$DEPLOY/Dockerfile" ||
        die "the Dockerfile's header does not build $image"
    grep -qF -- "docker build -f examples/deploy/Dockerfile -t $image ." "$DEPLOY/README.md" ||
        die "examples/deploy/README.md does not build $image"
    grep -qF -- "docker push $image" "$DEPLOY/README.md" || die "examples/deploy/README.md does not push $image"
    # no other tag of the image anywhere in the deploy files
    local other
    other=$(grep -ho "${image%:*}:[A-Za-z0-9._-]*" "$DEPLOY"/* | sort -u | grep -vxF "$image" || true)
    [[ -z $other ]] || die "other tags of the image in examples/deploy/: $other"
}

@test "the Dockerfile builds a static musl binary and copies only files that exist (and that its dockerignore lets through)" {
    local df=$DEPLOY/Dockerfile
    grep -qE '^FROM [^ ]*rust:[^ ]*(bookworm|alpine)[^ ]* AS build' "$df" || die "no rust bookworm/alpine build stage"
    grep -qE '^RUN rustup target add x86_64-unknown-linux-musl' "$df" || die "the musl target is not added"
    grep -qE 'cargo build --release --locked --target x86_64-unknown-linux-musl' "$df" || die "no musl release build"
    grep -qF 'target/x86_64-unknown-linux-musl/release/amd-host-device /out/amd-host-device' "$df" ||
        die "the build stage does not pick the musl binary"
    # the final stage is small and holds /amd-host-device and /install.sh
    local last_from
    last_from=$(grep -E '^FROM ' "$df" | tail -1)
    [[ $last_from == *busybox* || $last_from == *alpine* ]] || die "final stage is not busybox/alpine: $last_from"
    grep -qxF 'COPY --from=build /out/amd-host-device /amd-host-device' "$df" || die "/amd-host-device not in the image"
    grep -qE '^COPY (--chmod=0755 )?examples/deploy/install.sh /install.sh$' "$df" || die "/install.sh not in the image"
    grep -qxF 'ENTRYPOINT ["/install.sh"]' "$df" || die "the entrypoint is not /install.sh"

    # every context source exists, and Dockerfile.dockerignore re-includes it
    local line src n=0
    while read -r line; do
        for src in $line; do
            [[ -e $REPO/$src ]] || die "the Dockerfile copies $src, which is not in the repository"
            grep -qxF "!$src" "$DEPLOY/Dockerfile.dockerignore" ||
                die "Dockerfile.dockerignore does not let $src through"
            n=$((n + 1))
        done
    done < <(grep -E '^COPY ' "$df" | grep -v -- '--from=' | sed -E 's/^COPY( --[a-z]+=[^ ]+)* //; s/ [^ ]+$//')
    ((n == 6)) || die "expected 6 context sources (Cargo.toml Cargo.lock src scripts/bench tests/cri-client install.sh), found $n"
}

###########################################################################
# where the binary goes

@test "the binary lands at /opt/cni/bin/amd-host-device: hostPath, mounts, CNI_BIN_DIR, install.sh and the Dockerfile agree" {
    find_python_yaml
    local ds vol hostdir
    ds=$(daemonset)
    vol=$(jq -r '[.spec.template.spec.volumes[] | select(.hostPath.path == "/opt/cni/bin")] |
                 if length == 1 then .[0].name else error("expected one hostPath /opt/cni/bin volume") end' <<<"$ds") ||
        die "no single hostPath volume for /opt/cni/bin: $(jq -c .spec.template.spec.volumes <<<"$ds")"
    hostdir=$(jq -r --arg v "$vol" '.spec.template.spec.volumes[] | select(.name == $v) | .hostPath.path' <<<"$ds")

    # install.sh installs $SRC (default /amd-host-device) as $CNI_BIN_DIR/amd-host-device
    grep -qxF 'NAME=amd-host-device' "$DEPLOY/install.sh" || die "install.sh does not install as amd-host-device"
    grep -qxF 'DEST=$CNI_BIN_DIR/$NAME' "$DEPLOY/install.sh" || die "install.sh's destination is not \$CNI_BIN_DIR/\$NAME"
    grep -qxF 'SRC=${SRC:-/amd-host-device}' "$DEPLOY/install.sh" || die "install.sh's source is not /amd-host-device"
    [[ $hostdir/amd-host-device == "$BIN_PATH" ]] || die "installs to $hostdir/amd-host-device, not $BIN_PATH"

    # each container: runs /install.sh (the Dockerfile's copy), mounts the volume where CNI_BIN_DIR says
    local c name mount bindir cmd
    while IFS= read -r c; do
        name=$(jq -r .name <<<"$c")
        cmd=$(jq -r '(.command // ["/install.sh"])[0]' <<<"$c")
        [[ $cmd == /install.sh ]] || die "container $name runs $cmd, not /install.sh"
        mount=$(jq -r --arg v "$vol" '[.volumeMounts[]? | select(.name == $v)][0].mountPath // empty' <<<"$c")
        [[ -n $mount ]] || die "container $name does not mount the $vol volume"
        bindir=$(jq -r '[.env[]? | select(.name == "CNI_BIN_DIR")][0].value // "/host/opt/cni/bin"' <<<"$c")
        [[ $mount == "$bindir" ]] || die "container $name mounts $hostdir at $mount but CNI_BIN_DIR is $bindir"
        jq -e --arg v "$vol" '[.volumeMounts[] | select(.name == $v)][0].readOnly != true' <<<"$c" >/dev/null ||
            die "container $name mounts the CNI bin dir read-only"
    done < <(jq -c '.spec.template.spec | (.initContainers // [])[], .containers[]' <<<"$ds")

    # the init containers install, then check the node; the long-running one watches
    assert_json '[.spec.template.spec.initContainers[].args[0]] | join(",")' install,doctor "$ds"
    assert_json '[.spec.template.spec.containers[].args[0]] | join(",")' sleep "$ds"
    # the default install.sh uses without CNI_BIN_DIR is the same mount point
    grep -qxF 'CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}' "$DEPLOY/install.sh" ||
        die "install.sh's default CNI_BIN_DIR is not /host/opt/cni/bin"
}

@test "the DaemonSet runs on every node and is well formed" {
    find_python_yaml
    local ds
    ds=$(daemonset)
    assert_json .apiVersion apps/v1 "$ds"
    [[ -n $(jq -r '.metadata.namespace // empty' <<<"$ds") ]] || die "the DaemonSet has no namespace"
    # tolerates every taint
    jq -e '.spec.template.spec.tolerations | any(.operator == "Exists" and (has("key") | not) and (has("effect") | not))' \
        <<<"$ds" >/dev/null || die "the DaemonSet does not tolerate every taint: $(jq -c .spec.template.spec.tolerations <<<"$ds")"
    # the selector selects the pods it creates
    jq -e '.spec.selector.matchLabels as $m | .spec.template.metadata.labels as $l
           | ($m | length) > 0 and all($m | to_entries[]; $l[.key] == .value)' <<<"$ds" >/dev/null ||
        die "selector.matchLabels do not match the template's labels"
    # pods of a DaemonSet must stay running: the main container must not be the one-shot install
    assert_json '.spec.template.spec.restartPolicy // "Always"' Always "$ds"
    jq -e '.spec.template.spec.volumes[] | select(.hostPath.path == "/opt/cni/bin") |
           .hostPath.type == "Directory" or .hostPath.type == "DirectoryOrCreate"' <<<"$ds" >/dev/null ||
        die "the /opt/cni/bin hostPath has no directory type"
}

@test "the doctor init container checks the node after the install, seeing it as the plugin does" {
    find_python_yaml
    local ds doctor policy path mount
    ds=$(daemonset)
    doctor=$(jq -c '.spec.template.spec.initContainers[] | select(.name == "doctor")' <<<"$ds")
    [[ -n $doctor ]] || die "no doctor init container"
    assert_json '.spec.template.spec.initContainers | map(.name) | index("doctor") > index("install")' true "$ds"
    assert_json '.args | join(" ")' doctor "$doctor"
    # the host's links, routes and pods' netns
    assert_json '.spec.template.spec.hostNetwork' true "$ds"
    assert_json '.spec.template.spec.hostPID' true "$ds"
    jq -e '.securityContext.capabilities.add | index("SYS_ADMIN")' <<<"$doctor" >/dev/null ||
        die "doctor cannot enter a pod's netns without SYS_ADMIN: $(jq -c .securityContext <<<"$doctor")"

    # mount_of <path>: the host path mounted at <path> in the doctor container (the same, or nothing)
    mount_of() {
        local vol
        vol=$(jq -r --arg p "$1" '[.volumeMounts[] | select(.mountPath == $p)][0].name // empty' <<<"$doctor")
        [[ -n $vol ]] || return 0
        jq -r --arg v "$vol" '.spec.template.spec.volumes[] | select(.name == $v) | .hostPath.path' <<<"$ds"
    }
    # the node's paths at their own paths: the policy file, the plugins, the policy's
    # stateDir (under its mounted parent, read-write), kubelet's checkpoint, the netns
    policy=$(yaml_docs "$DEPLOY/daemonset.yaml" | jq -r '.[] | select(.kind == "ConfigMap") | .data["node.json"]')
    for path in /etc/amd-host-device /opt/cni/bin /var/lib/kubelet/device-plugins /run/netns /var/run/netns; do
        mount=$(mount_of "$path")
        [[ $mount == "$path" || ($path == /var/run/netns && $mount == /run/netns) ]] ||
            die "doctor does not see the node's $path at $path (mounted: ${mount:-nothing})"
    done
    path=$(jq -r '.stateDir' <<<"$policy")
    [[ $(mount_of "$(dirname "$path")") == "$(dirname "$path")" ]] ||
        die "doctor does not see the parent of the policy's stateDir $path"
    jq -e --arg p "$(dirname "$path")" '[.volumeMounts[] | select(.mountPath == $p)][0].readOnly != true' \
        <<<"$doctor" >/dev/null || die "the state dir's parent is read-only: doctor would report it unwritable"
    [[ $(jq -r '.kubeletCheckpoint // "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"' <<<"$policy") == \
        /var/lib/kubelet/device-plugins/* ]] || die "the policy's checkpoint is not under the mounted device-plugins dir"
    # read-only where doctor only reads
    for path in /etc/amd-host-device /var/lib/kubelet/device-plugins /run/netns; do
        jq -e --arg p "$path" '[.volumeMounts[] | select(.mountPath == $p)][0].readOnly == true' <<<"$doctor" >/dev/null ||
            die "doctor mounts $path writable"
    done
}

###########################################################################
# NADs

@test "nads.yaml: the amd.com/nic and amd.com/vnic NADs, amd-host-device at 0.3.1, the same as examples/nad-amd-*.yaml" {
    find_python_yaml
    local docs nad i rn example
    docs=$(yaml_docs "$DEPLOY/nads.yaml")
    assert_json 'length' 2 "$docs"
    assert_json '[.[].metadata.annotations["k8s.v1.cni.cncf.io/resourceName"]] | sort | join(",")' \
        amd.com/nic,amd.com/vnic "$docs"
    assert_json '[.[].metadata.name] | unique | length' 2 "$docs"
    for i in 0 1; do
        nad=$(jq -c ".[$i]" <<<"$docs")
        check_nad "$nad" "nads.yaml document $i"
        rn=$(jq -r '.metadata.annotations["k8s.v1.cni.cncf.io/resourceName"]' <<<"$nad")
        example=$REPO/examples/nad-amd-${rn#amd.com/}.yaml
        [[ -f $example ]] || die "no $example for $rn"
        [[ $(normalised_nad "$nad") == $(normalised_nad "$(yaml_docs "$example" | jq -c '.[0]')") ]] ||
            die "nads.yaml's $rn NAD differs from $example:
$(normalised_nad "$nad")
$(normalised_nad "$(yaml_docs "$example" | jq -c '.[0]')")"
    done
}

@test "examples/nad-amd-*.yaml: each one NAD for its resource, amd-host-device at 0.3.1" {
    find_python_yaml
    local f docs rn n=0
    for f in "$REPO"/examples/nad-amd-*.yaml; do
        docs=$(yaml_docs "$f")
        assert_json 'length' 1 "$docs"
        check_nad "$(jq -c '.[0]' <<<"$docs")" "$f"
        rn=$(jq -r '.[0].metadata.annotations["k8s.v1.cni.cncf.io/resourceName"]' <<<"$docs")
        [[ $(basename "$f") == "nad-amd-${rn#amd.com/}.yaml" ]] || die "$f is for $rn"
        n=$((n + 1))
    done
    ((n == 2)) || die "expected nad-amd-nic.yaml and nad-amd-vnic.yaml, found $n files"
}

@test "examples/pod-two-nics.yaml: lists a NAD that nads.yaml defines, as many times as it requests amd.com/nic" {
    find_python_yaml
    local pod nads networks count req lim name ns
    pod=$(yaml_docs "$REPO/examples/pod-two-nics.yaml" | jq -c '.[0]')
    nads=$(yaml_docs "$DEPLOY/nads.yaml")
    networks=$(jq -r '.metadata.annotations["k8s.v1.cni.cncf.io/networks"]' <<<"$pod")
    ns=$(jq -r '.metadata.namespace // "default"' <<<"$pod")
    count=0
    for name in ${networks//,/ }; do
        jq -e --arg n "$name" --arg ns "$ns" \
            'any(.[]; .metadata.name == $n and (.metadata.namespace // "default") == $ns
                      and .metadata.annotations["k8s.v1.cni.cncf.io/resourceName"] == "amd.com/nic")' \
            <<<"$nads" >/dev/null || die "the pod's network '$name' is not an amd.com/nic NAD of nads.yaml in namespace $ns"
        count=$((count + 1))
    done
    req=$(jq -r '[.spec.containers[].resources.requests["amd.com/nic"] // 0] | add' <<<"$pod")
    lim=$(jq -r '[.spec.containers[].resources.limits["amd.com/nic"] // 0] | add' <<<"$pod")
    [[ $count -eq 2 && $req -eq $count && $lim -eq $count ]] ||
        die "the pod lists $count networks but requests $req / limits $lim amd.com/nic"
}

###########################################################################
# install.sh, run for real against a temporary CNI bin dir

# run_install <mode> [VAR=value...]: install.sh under busybox sh (the image's shell)
# when available, else sh; CNI_BIN_DIR=$TMP/bin and SRC=$TMP/src/amd-host-device.
run_install() {
    local mode=$1
    shift
    local shell=sh
    command -v busybox >/dev/null && shell="busybox sh"
    # shellcheck disable=SC2086
    run --separate-stderr env CNI_BIN_DIR="$TMP/bin" SRC="$TMP/src/amd-host-device" "$@" \
        timeout 20 $shell "$DEPLOY/install.sh" "$mode"
    echo "# install.sh $mode: status $status"
    echo "#   stdout: $output"
    echo "#   stderr: $stderr"
}

# A stand-in for the real binary that answers --version.
fake_binary() {
    mkdir -p "$TMP/src" "$TMP/bin"
    printf '#!/bin/sh\n[ "$1" = --version ] && echo "amd-host-device %s (fake)"\n' "${1:-0.1.0}" >"$TMP/src/amd-host-device"
    chmod 0644 "$TMP/src/amd-host-device" # install.sh must set the mode itself
}

assert_installed() {
    local dest=$TMP/bin/amd-host-device
    [[ -f $dest ]] || die "$dest not installed: $(ls -la "$TMP/bin")"
    [[ $(stat -c %a "$dest") == 755 ]] || die "$dest has mode $(stat -c %a "$dest"), expected 755"
    cmp -s "$dest" "$TMP/src/amd-host-device" || die "$dest differs from the source"
    [[ -z $(find "$TMP/bin" -name '.amd-host-device.tmp.*') ]] || die "temporary files left: $(ls -la "$TMP/bin")"
}

@test "install.sh: valid sh, executable, is what the image runs" {
    [[ -x $DEPLOY/install.sh ]] || die "install.sh is not executable (git must record mode 755)"
    sh -n "$DEPLOY/install.sh" || die "install.sh: sh syntax error"
    if command -v busybox >/dev/null; then
        busybox sh -n "$DEPLOY/install.sh" || die "install.sh: busybox sh syntax error"
    fi
    fake_binary
    run_install bogus
    [[ $status -eq 2 && $stderr == *usage:* ]] || die "an unknown mode is not a usage error"
}

@test "install.sh install: without host-device it installs, then fails with a clear message (warns with REQUIRE_HOST_DEVICE=false)" {
    fake_binary
    run_install install
    [[ $status -eq 1 ]] || die "expected exit 1 without host-device, got $status"
    [[ $stderr == *"ERROR: host-device is not in $TMP/bin"* && $stderr == *REQUIRE_HOST_DEVICE=false* ]] ||
        die "stderr does not explain the missing host-device: $stderr"
    assert_installed

    run_install install REQUIRE_HOST_DEVICE=false
    [[ $status -eq 0 ]] || die "REQUIRE_HOST_DEVICE=false should only warn, got $status"
    [[ $stderr == *"WARNING: host-device is not in"* ]] || die "no warning: $stderr"
    assert_installed
}

@test "install.sh install: with host-device and static, installs atomically (new inode, no temp files) and reports the version" {
    fake_binary 0.1.0
    touch "$TMP/bin/host-device" "$TMP/bin/static"
    chmod 0755 "$TMP/bin/host-device" "$TMP/bin/static"
    run_install install
    [[ $status -eq 0 ]] || die "install failed: $stderr"
    [[ -z $stderr ]] || die "unexpected warnings: $stderr"
    [[ $output == *"installed $TMP/bin/amd-host-device (amd-host-device 0.1.0 (fake))"* ]] || die "$output"
    [[ $output == *"found $TMP/bin/host-device"* ]] || die "$output"
    assert_installed

    # an upgrade replaces the file by rename: a process running the old one keeps its inode
    local old_inode
    old_inode=$(stat -c %i "$TMP/bin/amd-host-device")
    exec 4<"$TMP/bin/amd-host-device"
    fake_binary 0.2.0
    run_install install
    [[ $status -eq 0 ]] || die "reinstall failed: $stderr"
    [[ $output == *"(amd-host-device 0.2.0 (fake))"* ]] || die "$output"
    assert_installed
    [[ $(stat -c %i "$TMP/bin/amd-host-device") != "$old_inode" ]] || die "the binary was overwritten in place"
    grep -q 0.1.0 <&4 || die "the old binary's content changed under an open descriptor"
    exec 4<&-
}

@test "install.sh install: a missing CNI bin dir or a binary that does not run is an error" {
    fake_binary
    run_install install CNI_BIN_DIR="$TMP/nope"
    [[ $status -eq 1 && $stderr == *"$TMP/nope does not exist"* ]] || die "missing dir: $status $stderr"

    printf 'not a program\n' >"$TMP/src/amd-host-device"
    run_install install
    [[ $status -eq 1 && $stderr == *"does not run"* ]] || die "a broken binary was accepted: $status $stderr"
    [[ -z $(find "$TMP/bin" -name '.amd-host-device.tmp.*') ]] || die "temporary files left"
}

@test "install.sh doctor: runs the installed binary's doctor with the CNI bin dir as CNI_PATH, and exits as it does" {
    fake_binary
    run_install doctor
    [[ $status -eq 1 && $stderr == *"is not installed"* ]] || die "doctor before install: $status $stderr"
    mkdir -p "$TMP/bin"
    printf '#!/bin/sh\necho "ran: $*"\nexit ${DOCTOR_EXIT:-0}\n' >"$TMP/bin/amd-host-device"
    chmod 0755 "$TMP/bin/amd-host-device"
    run_install doctor
    [[ $status -eq 0 && $output == "ran: doctor --cni-path $TMP/bin" ]] || die "$status $output $stderr"
    run_install doctor DOCTOR_EXIT=1
    [[ $status -eq 1 ]] || die "a FAILing doctor did not fail the container: $status"
}

@test "install.sh sleep: reinstalls the binary when it disappears, exits 0 on TERM" {
    fake_binary
    local shell=sh pid i
    command -v busybox >/dev/null && shell="busybox sh"
    # shellcheck disable=SC2086
    env CNI_BIN_DIR="$TMP/bin" SRC="$TMP/src/amd-host-device" CHECK_INTERVAL=0.2 \
        $shell "$DEPLOY/install.sh" sleep </dev/null >"$TMP/sleep.log" 2>&1 3>&- &
    pid=$!
    for i in $(seq 1 50); do
        [[ -e $TMP/bin/amd-host-device ]] && break
        sleep 0.1
    done
    assert_installed
    rm "$TMP/bin/amd-host-device"
    for i in $(seq 1 50); do
        [[ -e $TMP/bin/amd-host-device ]] && break
        sleep 0.1
    done
    assert_installed
    kill -TERM "$pid"
    local rc=0
    wait "$pid" || rc=$?
    [[ $rc -eq 0 ]] || die "sleep mode exited $rc on TERM: $(cat "$TMP/sleep.log")"
    grep -q "is missing from the node; installing it" "$TMP/sleep.log" || die "$(cat "$TMP/sleep.log")"
}

@test "install.sh install: the ConfigMap's node policy is installed root-owned 0644 by rename, and the plugin accepts it" {
    find_python_yaml
    fake_binary
    local policy=$TMP/src/node.json dest=$TMP/etc/amd-host-device/node.json
    yaml_docs "$DEPLOY/daemonset.yaml" |
        jq -er '.[] | select(.kind == "ConfigMap") | .data["node.json"]' >"$policy" ||
        die "no ConfigMap with a node.json in daemonset.yaml"
    run_install install REQUIRE_HOST_DEVICE=false POLICY_SRC="$policy" POLICY_DIR="$TMP/etc/amd-host-device"
    [[ $status -eq 0 ]] || die "install failed: $stderr"
    [[ $output == *"installed the node policy $dest"* ]] || die "$output"
    cmp -s "$policy" "$dest" || die "the installed policy differs"
    [[ $(stat -c '%a %u' "$dest") == "644 0" ]] || die "policy is $(stat -c '%a %u' "$dest"), expected 644 0"
    [[ -z $(find "$TMP/etc/amd-host-device" -name '.node.json.tmp.*') ]] || die "temporary files left"
    # The plugin reads it without complaint (list reads the policy, then its state dir).
    run --separate-stderr env AMD_HOST_DEVICE_NODE_POLICY="$dest" "$PLUGIN" list
    [[ $stderr != *"node policy"* ]] || die "the plugin refuses the shipped policy: $stderr"
}

@test "install.sh install: without a node policy to install, the node keeps its own" {
    fake_binary
    run_install install REQUIRE_HOST_DEVICE=false POLICY_SRC="$TMP/none.json" POLICY_DIR="$TMP/etc/amd-host-device"
    [[ $status -eq 0 ]] || die "install failed: $stderr"
    [[ $output == *"no node policy to install"* ]] || die "$output"
    [[ ! -e $TMP/etc/amd-host-device ]] || die "a policy dir was made: $(ls -la "$TMP/etc")"
}

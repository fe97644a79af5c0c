# Sourced by scripts/test.sh, demo.sh and bench.sh: installing the Debian packages a
# script needs on a fresh machine.

# ensure_packages <package>...: installs those that are missing (one `apt-get update`
# first), waiting for a dpkg lock another apt run holds instead of failing. With NO_APT
# set, or without apt-get, only says what is missing. Progress goes to stderr.
ensure_packages() {
    local -a missing=()
    local p
    command -v dpkg-query >/dev/null || return 0
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ -n ${NO_APT:-} ]] || ! command -v apt-get >/dev/null; then
        echo "missing packages (not installing): ${missing[*]}" >&2
        return 0
    fi
    echo "installing ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=600 update >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "${missing[@]}" >&2
}

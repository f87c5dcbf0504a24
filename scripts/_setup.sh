# Shared set-up for scripts/serve and scripts/test (sourced, not run).
#
# ensure_debian_packages PKG...  installs missing Debian packages (as root), or says how.
# ensure_venv                    makes .venv if it is missing, on the fastest Python here.
#
# Which Python: Debian's /usr/bin/python3 when it is 3.11 or newer, else the first python3 on
# PATH. On this project's machines the default python3 is a pyenv build that costs ~20% more CPU
# per proxied request than Debian's (docs/performance.md), and the gateway is CPU-bound.
# TRIO_GATEWAY_PYTHON=/path/to/python overrides the choice. An existing .venv is kept as it is.

ensure_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing Debian packages: ${missing[*]} (install them with apt-get as root)" >&2
        return 1
    fi
    echo "installing ${missing[*]} with apt-get" >&2
    # -o DPkg::Lock::Timeout waits for another apt run instead of failing at once.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        "${missing[@]}" >/dev/null
}

_debian_python_usable() {
    [ -x /usr/bin/python3 ] \
        && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

ensure_venv() {
    [ -x .venv/bin/python ] && return 0
    local python="${TRIO_GATEWAY_PYTHON:-}"
    if [ -z "$python" ]; then
        python=python3
        if _debian_python_usable; then
            # Debian splits venv/ensurepip into python3-venv.
            if /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null \
                || ensure_debian_packages python3-venv; then
                python=/usr/bin/python3
            fi
        fi
    fi
    echo "creating .venv with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))" >&2
    "$python" -m venv .venv
}

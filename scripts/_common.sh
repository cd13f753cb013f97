# Shared by scripts/main and scripts/test (sourced, not run).

# Install Debian packages that are missing (as root only).
#   ensure_debian_packages redis-server python3-venv
ensure_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        case "$pkg" in
            python3-venv) /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("$pkg") ;;
            # The server programs are not on PATH: /usr/lib/postgresql/<version>/bin.
            postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=("$pkg") ;;
            # The tests use the node programs in /usr/lib/rabbitmq/bin, not the /usr/sbin wrappers.
            rabbitmq-server) [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=("$pkg") ;;
            # The package is gnupg; its programs gpg and gpg-agent sign and encrypt digests.
            gnupg) { command -v gpg && command -v gpg-agent; } >/dev/null || missing+=("$pkg") ;;
            *) command -v "$pkg" >/dev/null || missing+=("$pkg") ;;
        esac
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$(basename "$0"): installing ${missing[*]} with apt-get." >&2
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        without_service_starts env DEBIAN_FRONTEND=noninteractive \
            apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
    fi
    case " $* " in *" rabbitmq-server "*) no_system_rabbitmq ;; esac
}

# Run a command (an apt-get install) with service starts refused, as Debian's
# policy-rc.d protocol allows: packages such as rabbitmq-server would otherwise start
# a system service (a RabbitMQ node and an epmd listening on every address). An existing
# policy-rc.d is left as it is.
without_service_starts() {
    local policy=/usr/sbin/policy-rc.d status=0
    if [ -e "$policy" ]; then
        "$@" || status=$?
        return $status
    fi
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    "$@" || status=$?
    rm -f "$policy"
    return $status
}

# The tests start private RabbitMQ nodes on loopback; the package's system node and the
# epmd socket it enables must not run (they listen on every address): disable both for
# later boots and stop them if they run now.
no_system_rabbitmq() {
    if command -v systemctl >/dev/null; then
        systemctl disable --now rabbitmq-server.service epmd.socket epmd.service >/dev/null 2>&1 || true
    fi
    if [ -x /etc/init.d/rabbitmq-server ]; then
        update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
        invoke-rc.d rabbitmq-server stop >/dev/null 2>&1 || true
    fi
    # An epmd on the standard port 4369 is the system one (private nodes use their own port).
    if command -v epmd >/dev/null && epmd -names >/dev/null 2>&1; then
        epmd -kill >/dev/null 2>&1 || true
    fi
}

# As root: re-run this script as the unprivileged USER from a copy of the checkout in its
# home (IntelMQ refuses to run as root; setuptools writes into the tree it installs from).
# The environment is cleaned: IntelMQ takes any INTELMQ_* variable as a bot parameter.
#   rerun_as_user USER SRC ARGS...
rerun_as_user() {
    local user=$1 src=$2 home work
    shift 2
    id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
    home=$(getent passwd "$user" | cut -d: -f6)
    # One work folder per checkout path, so that several checkouts can be used side by side.
    work="$home/intelmq-nsm/$(printf %s "$src" | sha256sum | cut -c1-12)"
    rm -rf "$work/src"
    mkdir -p "$work/src"
    tar -C "$src" --exclude=./.git --exclude=./.venv --exclude='*/__pycache__' --exclude='*.egg-info' \
        --exclude=./build -cf - . | tar -C "$work/src" -xf -
    chown -R "$user": "$work"
    exec runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 \
        PATH=/usr/local/bin:/usr/bin:/bin CI="${CI:-}" NSM_VENV="$work/venv" NSM_CHAOS_SEED="${NSM_CHAOS_SEED:-}" NSM_TEST_WORKERS="${NSM_TEST_WORKERS:-}" \
        NSM_REQUIRE_RABBITMQ="${NSM_REQUIRE_RABBITMQ:-}" \
        bash "$work/src/scripts/$(basename "$0")" "$@"
}

# Create (or reuse) the virtual environment VENV with the package and EXTRAS installed from
# SRC. It is rebuilt only when the declared dependencies change; the package itself is
# reinstalled every time, so that the entry points of new bots are registered.
#   ensure_venv VENV SRC EXTRAS
ensure_venv() {
    local venv=$1 src=$2 extras=$3 python=/usr/bin/python3 stamp
    [ -x "$python" ] || python=$(command -v python3)
    stamp=$(cat "$src/setup.py" "$src/pyproject.toml" <(echo "$extras") | sha256sum | cut -d' ' -f1)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.nsm-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "$(basename "$0"): installing intelmq-nsm[$extras] into $venv." >&2
        rm -rf "$venv"
        "$python" -m venv "$venv"
        # wheel: Debian's venv has an old setuptools that needs it for the editable
        # reinstall below, which skips build isolation to stay fast.
        "$venv/bin/pip" install -q --disable-pip-version-check wheel
        "$venv/bin/pip" install -q --disable-pip-version-check -e "$src[$extras]"
        echo "$stamp" > "$venv/.nsm-stamp"
    else
        "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$src"
    fi
}

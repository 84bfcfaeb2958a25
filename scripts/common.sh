# Shared by scripts/run and scripts/test: a venv with the project, and redis-server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ensure_redis_server() {
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "installing redis-server from Debian's packages"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
    fi
}

ensure_venv() {  # $1: extras, e.g. "[dev]"; installs only when pyproject.toml changed
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))." >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ] && ! "$python" -m venv .venv; then
        echo "Could not create .venv: on Debian, apt-get install python3-venv" >&2
        rm -rf .venv
        exit 1
    fi
    local stamp=".venv/.installed${1:-}"
    local wanted
    wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q -e ".${1:-}"
        echo "$wanted" > "$stamp"
    fi
}

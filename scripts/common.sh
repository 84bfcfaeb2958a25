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

ensure_venv() {  # $1: extras, e.g. "[dev]"
    local python="${PYTHON:-python3}"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".${1:-}"
}

#!/usr/bin/env bash
# Creates .venv and installs houqin into it with pinned versions (constraints.txt).
# Usage: scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "houqin needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
        # Debian's python3 ships venv separately.
        rm -rf .venv
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        else
            echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)" >&2
            exit 1
        fi
        "$python" -m venv .venv
    fi
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
stamp=".venv/.installed$extras"
# Reinstall only when the dependency files changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".$extras"
    touch "$stamp"
fi

#!/usr/bin/env bash
# Runs the demo campus: devices.yaml, embedded SQLite, the API on http://127.0.0.1:8000 (Ctrl-C stops it).
# Extra arguments go to `houqin demo` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/houqin demo "$@"

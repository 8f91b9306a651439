#!/bin/sh
# Before `houqin run` on PostgreSQL: bring the schema up to date, then let Grafana's reader role read the
# tables (again after every upgrade, so new tables are readable). Anything else runs as given.
set -eu
if [ "${1:-}" = run ] && [ -n "${HOUQIN_DATABASE_URL:-}" ]; then
    houqin db upgrade
    if [ -n "${HOUQIN_GRAFANA_DB_ROLE:-}" ]; then
        houqin db grant-reader "$HOUQIN_GRAFANA_DB_ROLE"
    fi
fi
exec houqin "$@"

#!/bin/bash
# Run once by the postgres image on an empty data directory: the login Grafana's SQL panels use. houqin
# grants it read access to its tables at each start (`houqin db grant-reader`), never to password hashes.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader="$GRAFANA_DB_USER" -v password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
SQL

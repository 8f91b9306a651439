#!/bin/bash
# Run once by the influxdb:2 image after its setup: map the InfluxQL database name to the bucket, so
# Grafana's InfluxQL panels (and houqin's own InfluxQL reads) find the readings.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}" --hide-headers | cut -f 1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen --default \
    --bucket-id "${bucket_id}" --org "${DOCKER_INFLUXDB_INIT_ORG}" --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"

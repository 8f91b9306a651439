# houqin: one process that collects, bills, schedules and serves the API (`houqin run`).
# Built by docker-compose.yml; slim, runs as an unprivileged user, healthy when /readyz answers 200.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY houqin houqin
COPY collectors collectors
COPY rules rules
COPY api api
COPY grafana grafana
COPY assembly assembly
# The versions the test suite passed with; only what houqin itself needs is installed.
RUN pip install --no-cache-dir --root-user-action=ignore --prefix=/install -c constraints.txt .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/houqin --create-home houqin
COPY --from=build /install /usr/local
COPY devices.yaml /etc/houqin/devices.yaml
COPY docker/houqin-entrypoint.sh /usr/local/bin/houqin-entrypoint
ENV HOUQIN_INVENTORY=/etc/houqin/devices.yaml \
    HOUQIN_DATA_DIR=/var/lib/houqin/data \
    HOUQIN_API_HOST=0.0.0.0 \
    HOUQIN_API_PORT=8000 \
    PYTHONUNBUFFERED=1
USER houqin
WORKDIR /var/lib/houqin
RUN mkdir -p /var/lib/houqin/data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
ENTRYPOINT ["houqin-entrypoint"]
CMD ["run"]

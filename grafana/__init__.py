"""Grafana dashboards as code, generated dashboard JSON, provisioning files and the publisher.
Imports only ``houqin``."""

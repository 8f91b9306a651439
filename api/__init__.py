"""The HTTP API (FastAPI): routers by domain under ``/api/v1``, auth, schemas. Imports only ``houqin``."""

"""The few endpoints of Grafana's HTTP API that publishing uses, over httpx (houqin's HTTP client everywhere).

houqin once used the ``grafana-client`` package here; it pulls ``niquests`` and ``urllib3-future``, which
installs itself over the ``urllib3`` that ``influxdb-client`` needs. Eight documented endpoints do not
justify that: see https://grafana.com/docs/grafana/latest/developers/http_api/ (folder, data_source,
dashboard).
"""

from __future__ import annotations

from typing import Any

import httpx


class GrafanaError(Exception):
    """Grafana answered with an error status; ``message`` is its own explanation."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code} {message}")
        self.status_code = status_code
        self.message = message


class GrafanaUnreachableError(Exception):
    """No answer from Grafana (refused, timed out, not HTTP)."""


class GrafanaHttpApi:
    """A service-account token's view of one Grafana: folders, data sources and dashboards by uid."""

    def __init__(self, url: str, token: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GrafanaHttpApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            answer = self._client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise GrafanaUnreachableError(str(error) or type(error).__name__) from None
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if answer.status_code >= 400:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise GrafanaError(answer.status_code, str(message or answer.reason_phrase))
        return payload

    def get_folder(self, uid: str) -> Any:
        return self._call("GET", f"/api/folders/{uid}")

    def create_folder(self, title: str, uid: str) -> Any:
        return self._call("POST", "/api/folders", {"title": title, "uid": uid})

    def update_folder(self, uid: str, title: str) -> Any:
        # overwrite: staff may have renamed it; houqin's title wins without knowing their version.
        return self._call("PUT", f"/api/folders/{uid}", {"title": title, "overwrite": True})

    def get_datasource(self, uid: str) -> Any:
        return self._call("GET", f"/api/datasources/uid/{uid}")

    def create_datasource(self, datasource: dict[str, Any]) -> Any:
        return self._call("POST", "/api/datasources", datasource)

    def update_datasource(self, uid: str, datasource: dict[str, Any]) -> Any:
        return self._call("PUT", f"/api/datasources/uid/{uid}", datasource)

    def get_dashboard(self, uid: str) -> Any:
        return self._call("GET", f"/api/dashboards/uid/{uid}")

    def save_dashboard(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/api/dashboards/db", body)

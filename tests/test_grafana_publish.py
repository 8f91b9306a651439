"""`houqin grafana publish` against a local HTTP server that answers like Grafana's HTTP API and checks the
requests follow it: token auth, folders by uid, data sources created once then updated by uid, dashboards
saved into the folder with overwrite and a null id. Twice in a row: the second run creates nothing and
saves no dashboard; a dashboard edited by hand in Grafana is put back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from assembly.cli import app
from grafana.generate import dashboards

TOKEN = "glsa_test_token"


class FakeGrafana:
    """The state and rules of the endpoints houqin uses, from Grafana's HTTP API reference."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.problems: list[str] = []

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            return self.folder(method, parts[2:], body)
        if parts[:2] == ["api", "datasources"]:
            return self.datasource(method, parts[2:], body)
        if parts[:2] == ["api", "dashboards"]:
            return self.dashboard(method, parts[2:], body)
        return 404, {"message": "Not found"}

    def folder(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 1:
            found = self.folders.get(rest[0])
            return (200, found) if found else (404, {"message": "folder not found", "status": "not-found"})
        if method == "POST" and not rest:
            if not body.get("title"):
                return 400, {"message": "folder title cannot be empty"}
            if body.get("uid") in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            folder = {"id": len(self.folders) + 1, "uid": body["uid"], "title": body["title"], "version": 1}
            self.folders[body["uid"]] = folder
            return 200, folder
        if method == "PUT" and len(rest) == 1 and rest[0] in self.folders:
            folder = self.folders[rest[0]]
            if not body.get("overwrite") and body.get("version") != folder["version"]:
                return 412, {"message": "the folder has been changed by someone else", "status": "version-mismatch"}
            folder.update(title=body["title"], version=folder["version"] + 1)
            return 200, folder
        return 404, {"message": "Not found"}

    def datasource(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 2 and rest[0] == "uid":
            found = self.datasources.get(rest[1])
            if found is None:
                return 404, {"message": "Data source not found"}
            return 200, {key: value for key, value in found.items() if key != "secureJsonData"}
        if method == "POST" and not rest:
            missing = [key for key in ("name", "type", "access", "url") if not body.get(key)]
            if missing:
                return 400, {"message": f"missing {missing}"}
            if body.get("uid") in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            stored = {**body, "id": len(self.datasources) + 1, "version": 1}
            self.datasources[body["uid"]] = stored
            return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource added"}
        if method == "PUT" and len(rest) == 2 and rest[0] == "uid":
            stored = self.datasources.get(rest[1])
            if stored is None:
                return 404, {"message": "Data source not found"}
            if body.get("uid", rest[1]) != rest[1]:
                self.problems.append("a data source update changed its uid")
            stored.update(body, version=stored["version"] + 1)
            return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource updated"}
        return 404, {"message": "Not found"}

    def dashboard(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 2 and rest[0] == "uid":
            found = self.dashboards.get(rest[1])
            if found is None:
                return 404, {"message": "Dashboard not found"}
            return 200, {"dashboard": found["dashboard"], "meta": {"folderUid": found["folderUid"]}}
        if method == "POST" and rest == ["db"]:
            dashboard = body.get("dashboard") or {}
            if not dashboard.get("title"):
                return 400, {"message": "Dashboard title cannot be empty"}
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            if dashboard.get("id") is not None:
                self.problems.append("a dashboard was posted with an id (new and moved dashboards need null)")
            stored = self.dashboards.get(dashboard["uid"])
            if stored is not None and not body.get("overwrite"):
                return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
            version = stored["dashboard"]["version"] + 1 if stored else 1
            saved = {**dashboard, "id": stored["dashboard"]["id"] if stored else len(self.dashboards) + 1,
                     "version": version}  # fmt: skip
            self.dashboards[dashboard["uid"]] = {"dashboard": saved, "folderUid": body["folderUid"]}
            return 200, {"id": saved["id"], "uid": saved["uid"], "status": "success", "version": version}
        return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, answer = 401, {"message": "invalid API key"}
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if (
                    method in ("POST", "PUT")
                    and self.headers.get("Content-Type", "").split(";")[0] != "application/json"
                ):
                    fake.problems.append(f"{method} {self.path} without a JSON content type")
                status, answer = fake.handle(method, self.path.split("?")[0], body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_PUT(self) -> None:
            self._answer("PUT")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


SITE = {
    "HOUQIN_INFLUX__URL": "http://influx.campus:8086",
    "HOUQIN_INFLUX__TOKEN": "influx-token",
    "HOUQIN_INFLUX__BUCKET": "campus",
    "HOUQIN_DATABASE_URL": "postgresql+asyncpg://houqin:pw@db.campus:5432/houqin",
}


def publish(url: str, *extra: str, token: str = TOKEN) -> Any:
    arguments = ["grafana", "publish", "--url", url, "--token", token, "--postgres-user", "grafana",
                 "--postgres-password", "reader-pw", *extra]  # fmt: skip
    return CliRunner().invoke(app, arguments, env=SITE)


def test_publishing_twice_creates_once_and_then_changes_nothing(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    first = publish(url)
    assert first.exit_code == 0, first.output
    assert set(fake.folders) == {"houqin"}
    assert set(fake.datasources) == {"houqin-influxdb", "houqin-postgres"}
    assert set(fake.dashboards) == {dashboard["uid"] for dashboard in dashboards().values()}
    assert all(saved["folderUid"] == "houqin" for saved in fake.dashboards.values())
    influx, postgres = fake.datasources["houqin-influxdb"], fake.datasources["houqin-postgres"]
    assert influx["url"] == "http://influx.campus:8086" and influx["jsonData"]["dbName"] == "campus"
    assert influx["secureJsonData"] == {"httpHeaderValue1": "Token influx-token"}
    assert postgres["url"] == "db.campus:5432" and postgres["user"] == "grafana"
    assert postgres["secureJsonData"] == {"password": "reader-pw"}

    fake.requests.clear()
    second = publish(url)
    assert second.exit_code == 0, second.output
    writes = [request for request in fake.requests if request[0] != "GET"]
    assert ("POST", "/api/dashboards/db") not in writes and not [w for w in writes if w[0] == "POST"], writes
    assert "unchanged: folder houqin, dashboard" in second.output
    assert all(saved["dashboard"]["version"] == 1 for saved in fake.dashboards.values())
    assert len(fake.datasources) == 2 and len(fake.folders) == 1
    assert fake.problems == []


def test_a_dashboard_edited_in_grafana_is_put_back(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    assert publish(url).exit_code == 0
    fake.dashboards["houqin-water"]["dashboard"]["title"] = "Water (edited by hand)"
    fake.folders["houqin"]["title"] = "renamed"
    again = publish(url)
    assert again.exit_code == 0, again.output
    assert fake.dashboards["houqin-water"]["dashboard"]["title"] == "Water"
    assert fake.dashboards["houqin-water"]["dashboard"]["version"] == 2
    assert fake.folders["houqin"]["title"] == "houqin 后勤"
    assert "updated: folder houqin" in again.output and "dashboard houqin-water" in again.output
    assert fake.problems == []


def test_a_bad_token_or_missing_settings_fail_with_a_message(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    refused = publish(url, token="wrong")
    assert refused.exit_code != 0 and "refused" in refused.output
    assert fake.dashboards == {}
    embedded = CliRunner().invoke(app, ["grafana", "publish", "--url", url, "--token", TOKEN], env={})
    assert embedded.exit_code != 0 and "Grafana needs InfluxDB" in embedded.output
    unreachable = publish("http://127.0.0.1:9")
    assert unreachable.exit_code != 0 and "cannot reach Grafana" in unreachable.output

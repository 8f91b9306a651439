"""``houqin grafana publish``: the folder, data sources and dashboards put into a running Grafana over its
HTTP API, for sites whose Grafana is not provisioned from files. Create or update, keyed by uid: a second
run with nothing changed writes nothing, and what staff changed by hand in a houqin dashboard is
overwritten (the code is the source; the dashboard's version history in Grafana keeps their edit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grafana.http_api import GrafanaError, GrafanaHttpApi

FOLDER_UID = "houqin"
FOLDER_TITLE = "houqin 后勤"
# What Grafana adds to a stored dashboard or data source; not part of what houqin defines.
_DASHBOARD_NOISE = ("id", "version")
_SECRET = "secureJsonData"  # noqa: S105 - the key under which Grafana keeps secrets


@dataclass
class PublishReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"{what}: {', '.join(names)}"
            for what, names in (("created", self.created), ("updated", self.updated), ("unchanged", self.unchanged))
            if names
        ]


def _stored(fetch: Callable[[str], Any], uid: str) -> Any:
    """What Grafana holds under ``uid``, or None when it holds nothing there."""
    try:
        return fetch(uid)
    except GrafanaError as error:
        if error.status_code == 404:
            return None
        raise


class GrafanaPublisher:
    def __init__(self, api: GrafanaHttpApi, folder_uid: str = FOLDER_UID, folder_title: str = FOLDER_TITLE) -> None:
        self.api = api
        self.folder_uid = folder_uid
        self.folder_title = folder_title

    def publish(self, datasources: list[dict[str, Any]], dashboards: list[dict[str, Any]]) -> PublishReport:
        report = PublishReport()
        self._folder(report)
        for datasource in datasources:
            self._datasource(datasource, report)
        for dashboard in dashboards:
            self._dashboard(dashboard, report)
        return report

    def _folder(self, report: PublishReport) -> None:
        name = f"folder {self.folder_uid}"
        folder = _stored(self.api.get_folder, self.folder_uid)
        if folder is None:
            self.api.create_folder(self.folder_title, uid=self.folder_uid)
            report.created.append(name)
            return
        if folder.get("title") == self.folder_title:
            report.unchanged.append(name)
            return
        self.api.update_folder(self.folder_uid, title=self.folder_title)
        report.updated.append(name)

    def _datasource(self, wanted: dict[str, Any], report: PublishReport) -> None:
        uid = wanted["uid"]
        name = f"data source {uid}"
        stored = _stored(self.api.get_datasource, uid)
        if stored is None:
            self.api.create_datasource(wanted)
            report.created.append(name)
            return
        # Grafana never returns secrets, so a data source with secrets is always written again: a changed
        # token must reach Grafana, and an unchanged one costs one idempotent PUT.
        public = {key: value for key, value in wanted.items() if key != _SECRET}
        if _SECRET not in wanted and all(stored.get(key) == value for key, value in public.items()):
            report.unchanged.append(name)
            return
        self.api.update_datasource(uid, {**wanted, "id": stored.get("id")})
        report.updated.append(name)

    def _dashboard(self, wanted: dict[str, Any], report: PublishReport) -> None:
        uid = wanted["uid"]
        name = f"dashboard {uid}"
        stored = _stored(self.api.get_dashboard, uid)
        if stored is not None:
            current = {key: value for key, value in stored["dashboard"].items() if key not in _DASHBOARD_NOISE}
            mine = {key: value for key, value in wanted.items() if key not in _DASHBOARD_NOISE}
            if current == mine and stored.get("meta", {}).get("folderUid") == self.folder_uid:
                report.unchanged.append(name)
                return
        body = {
            "dashboard": {**wanted, "id": None},
            "folderUid": self.folder_uid,
            "overwrite": True,
            "message": "published by houqin",
        }
        self.api.save_dashboard(body)
        (report.updated if stored is not None else report.created).append(name)

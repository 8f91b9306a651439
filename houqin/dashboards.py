"""The Grafana dashboards houqin ships, by uid: what the dashboards-as-code build and what the web pages
link to, named once so that a link cannot point at a dashboard that is not there."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DashboardRef:
    uid: str
    title: str
    title_zh: str

    def url(self, grafana_url: str) -> str:
        """Where a browser opens it in the Grafana at ``grafana_url``."""
        return f"{grafana_url.rstrip('/')}/d/{self.uid}"


CAMPUS_ENERGY = DashboardRef("houqin-campus-energy", "Campus energy", "校园能耗")
DORM_ELECTRICITY = DashboardRef("houqin-dorm-electricity", "Dorm electricity", "宿舍用电")
WATER = DashboardRef("houqin-water", "Water", "用水")
DEVICE_HEALTH = DashboardRef("houqin-device-health", "Device health", "设备状态")
REPAIR_ORDERS = DashboardRef("houqin-repair-orders", "Repair orders", "报修工单")
LIGHTING_BROADCAST = DashboardRef("houqin-lighting-broadcast", "Lighting and broadcast", "照明与广播")

SHIPPED: tuple[DashboardRef, ...] = (
    CAMPUS_ENERGY, DORM_ELECTRICITY, WATER, DEVICE_HEALTH, REPAIR_ORDERS, LIGHTING_BROADCAST,
)  # fmt: skip

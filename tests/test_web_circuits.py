"""A room with circuits in the student's page (phone and desktop, in Chromium, against ``houqin demo`` run on
an inventory with circuits): every circuit with its power and its month; staff lock the room and the page
shows the sockets and the AC off and the lights (cut for nothing) on; staff unlock it and they come back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.live_demo import houqin_serving, served_url
from tests.test_circuits import INVENTORY
from tests.test_web_pages import DESKTOP, PHONE, Demo, Visit, browser, playwright

__all__ = ["browser", "playwright"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("web-circuits")
    inventory = data / "devices.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    env = {"HOUQIN_INVENTORY": str(inventory)}  # the demo campus's schedules are left out: no zones for them
    with houqin_serving("demo", "--port", "0", "--history-days", "0", data=data, env=env, pipe_stderr=True) as process:
        url = served_url(process, log=data / "houqin.log")
        logins = json.loads((data / "data" / "demo" / "demo-logins.json").read_text())
        yield Demo(url, logins)


def circuits(visit: Visit) -> dict[str, str]:
    items = visit.page.get_by_test_id("circuits").locator("li")
    return {items.nth(i).get_attribute("data-circuit") or "": items.nth(i).inner_text() for i in range(items.count())}


def test_the_student_sees_each_circuit_and_a_lock_keeps_the_lights(browser: Browser, demo: Demo) -> None:
    opened: list[Visit] = []
    try:
        phone = Visit(browser, demo, PHONE)
        opened.append(phone)
        phone.sign_in("student")  # the first room of the inventory: R101
        shown = circuits(phone)
        assert list(shown) == ["lights", "sockets", "ac"]
        assert all("供电中" in text for text in shown.values()), shown
        assert shown["lights"].startswith("照明") and "不计费" in shown["lights"] and shown["ac"].startswith("空调")
        phone.shoot("student-circuits")

        demo.post("staff", "/api/v1/rooms/R101/lock", {"reason": "查获电热毯"})
        deadline = time.monotonic() + 10
        while True:
            phone.page.reload()
            phone.page.get_by_test_id("circuits").wait_for()
            shown = circuits(phone)
            if "已断电" in shown["sockets"]:
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.5)
        assert "已断电" in shown["ac"] and "供电中" in shown["lights"], shown
        desktop = Visit(browser, demo, DESKTOP)
        opened.append(desktop)
        desktop.sign_in("student")
        assert "供电中" in circuits(desktop)["lights"]
        desktop.shoot("student-circuits-locked")
        staff = Visit(browser, demo, DESKTOP)
        opened.append(staff)
        staff.sign_in("staff").goto(f"{demo.url}/app/staff/rooms/R101")
        staff.page.get_by_test_id("circuits").wait_for()
        seen = circuits(staff)
        assert "已断电" in seen["sockets"] and "供电中" in seen["lights"], seen
        staff.shoot("staff-room-circuits")

        demo.post("staff", "/api/v1/rooms/R101/unlock", {"reason": "已没收"})
        phone.page.reload()
        phone.page.get_by_test_id("circuits").wait_for()
        assert all("供电中" in text for text in circuits(phone).values())
        wallet = demo.get("student", "/api/v1/rooms/R101/wallet")
        assert isinstance(wallet, dict) and [c["id"] for c in wallet["circuits"]] == ["lights", "sockets", "ac"]
    finally:
        for visit in opened:
            visit.close()


def test_another_room_s_circuits_are_not_the_student_s(demo: Demo) -> None:
    answer = httpx.get(f"{demo.url}/api/v1/rooms/R102/wallet", headers=demo.headers("student"), timeout=10)
    assert answer.status_code in {403, 404}, answer.text
    own = demo.get("student1", "/api/v1/rooms/R102")
    assert isinstance(own, dict) and [c["energy_field"] for c in own["circuits"]] == [
        "energy_lights",
        "energy_sockets",
        "energy_ac",
    ]

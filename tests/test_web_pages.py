"""The web pages in a real browser: Debian's Chromium, driven by Playwright, against a live ``houqin demo``
(simulated campus, embedded broker, SQLite). Screenshots of every page at phone and desktop size go to
``test-artifacts/screenshots`` (``HOUQIN_TEST_ARTIFACTS`` moves them)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from houqin.inventory import load_inventory
from tests.conftest import DEMO_INVENTORY, ROOT
from tests.images import png
from tests.live_demo import houqin_serving, served_url

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("HOUQIN_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


@dataclass
class Demo:
    url: str
    logins: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        if who not in self.tokens:
            answer = httpx.post(f"{self.url}/api/v1/auth/token", data={"username": who, "password": self.logins[who]})
            self.tokens[who] = answer.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, path: str) -> object:
        answer = httpx.get(f"{self.url}{path}", headers=self.headers(who), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, who: str, path: str, body: dict[str, object]) -> dict[str, object]:
        answer = httpx.post(f"{self.url}{path}", json=body, headers=self.headers(who), timeout=10)
        assert answer.status_code < 300, answer.text
        result: dict[str, object] = answer.json()
        return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("web-demo")
    with houqin_serving("demo", "--port", "0", data=data, pipe_stderr=True) as process:
        url = served_url(process, log=data / "houqin.log")
        logins = json.loads((data / "data" / "demo" / "demo-logins.json").read_text())
        yield Demo(url, logins)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is not installed (scripts/test.sh installs it)"
    # Chromium's sandbox needs an unprivileged user; the tests may run as root.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield browser
    browser.close()


# WCAG 2 contrast of every visible piece of text against the background it is drawn on: at least 4.5:1,
# or 3:1 for large text (24 px, or 18.7 px bold).
CONTRAST = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (node) => {
    for (let at = node; at; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] === 1)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const failures = [];
  for (const node of document.querySelectorAll("body *")) {
    if (node.closest("svg, dialog:not([open])")) continue;
    const own = [...node.childNodes].some((child) => child.nodeType === 3 && child.textContent.trim());
    if (!own || !node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    if (style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const colour = rgb(style.color).slice(0, 3);
    const [a, b] = [luminance(colour), luminance(background(node))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const text = node.textContent.trim().slice(0, 30);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${node.tagName}.${node.className} "${text}" ${ratio.toFixed(2)}`);
  }
  return failures;
}"""


class Visit:
    """One browser context as one user at one screen size, failing on any script error in the page."""

    def __init__(self, browser: Browser, demo: Demo, size: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=size, locale="zh-CN", timezone_id="Asia/Shanghai")
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.demo = demo
        self.phone = size == PHONE
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def sign_in(self, who: str) -> Page:
        """Through the sign-in form, with the keyboard only."""
        page = self.page
        page.goto(f"{self.demo.url}/app/")
        page.get_by_label("账号").focus()
        page.keyboard.type(who)
        page.keyboard.press("Tab")
        page.keyboard.type(self.demo.logins[who])
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/app/(student|worker|staff)/.*"))
        page.locator("main h1").first.wait_for()  # the page has asked the API and drawn what it answered
        return page

    def shoot(self, name: str) -> None:
        """A screenshot as an artifact; on a phone the page must not scroll sideways."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_load_state("networkidle")
        size = "phone" if self.phone else "desktop"
        self.page.screenshot(path=ARTIFACTS / f"{name}-{size}.png", full_page=True)
        assert self.page.evaluate(CONTRAST) == [], f"{name}: text below the contrast WCAG asks for"
        if self.phone:
            overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow} px on a phone"

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors
        foreign = {url for url in self.requests if urlsplit(url).netloc not in {urlsplit(self.demo.url).netloc, ""}}
        assert not {url for url in foreign if not url.startswith(("blob:", "data:"))}, foreign


@pytest.fixture
def visits(browser: Browser, demo: Demo) -> Iterator[list[Visit]]:
    opened: list[Visit] = []
    yield opened
    for visit in opened:
        visit.close()


def visit(visits: list[Visit], browser: Browser, demo: Demo, size: dict[str, int]) -> Visit:
    opened = Visit(browser, demo, size)
    visits.append(opened)
    return opened


def fen(text: str) -> int:
    match = re.fullmatch(r"(-?)¥(\d+)\.(\d\d)", text.strip())
    assert match, text
    return (-1 if match.group(1) else 1) * (int(match.group(2)) * 100 + int(match.group(3)))


def test_a_student_tops_up_20_yuan_and_sees_the_balance_rise(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("student")
    assert page.url.endswith("/app/student/rooms/D1-101")
    balance = page.get_by_test_id("balance")
    before = fen(balance.inner_text())
    phone.shoot("student-balance")
    page.get_by_role("button", name="¥20.00", exact=True).click()
    page.get_by_role("button", name="充值 ¥20.00").click()
    dialog = page.get_by_role("dialog")
    assert "D1-101" in dialog.inner_text() and "¥20.00" in dialog.inner_text()
    phone.shoot("student-sandbox-payment")
    dialog.get_by_role("button", name="确认支付").click()
    # The new balance shows without a reload, and it is what the ledger says.
    page.wait_for_function(
        "expected => document.querySelector('[data-testid=balance]').textContent.trim() === expected",
        arg=f"¥{(before + 2000) / 100:.2f}",
    )
    wallet = demo.get("student", "/api/v1/rooms/D1-101/wallet")
    assert isinstance(wallet, dict) and wallet["balance_fen"] == before + 2000
    ledger = demo.get("student", "/api/v1/rooms/D1-101/ledger?limit=1")
    assert isinstance(ledger, list) and ledger[0]["kind"] == "topup" and ledger[0]["amount_fen"] == 2000
    phone.shoot("student-topped-up")

    # A custom amount outside the tariff's limits is refused before anything is ordered.
    page.get_by_label("其他金额（元）").fill("0.5")
    page.get_by_role("button", name="充值 ¥0.50").click()
    assert "金额需在" in page.get_by_role("alert").inner_text()

    for tab, name in (("用电", "student-usage"), ("账单", "student-ledger"), ("报修", "student-reports")):
        page.get_by_role("link", name=tab, exact=True).click()
        page.wait_for_url(re.compile(r".*/(usage|ledger|reports)$"))
        page.get_by_role("heading", level=2).first.wait_for()
        phone.shoot(name)
    assert page.get_by_role("heading", name="我的报修").is_visible()

    desktop = visit(visits, browser, demo, DESKTOP)
    desktop.sign_in("student")
    desktop.page.get_by_test_id("balance").wait_for()
    desktop.shoot("student-balance")


def test_a_student_reports_a_problem_with_a_photo(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("student")
    page.get_by_role("link", name="报修", exact=True).click()
    page.get_by_label("类别").select_option("plumbing")
    page.get_by_label("问题").fill("卫生间水龙头一直滴水")
    page.get_by_label("详细描述（选填）").fill("关紧以后还在滴")
    page.get_by_label("照片（选填）").set_input_files(
        files=[{"name": "tap.png", "mimeType": "image/png", "buffer": png(4, 4)}]
    )
    page.get_by_role("button", name="提交报修").click()
    report = page.get_by_role("link", name=re.compile("卫生间水龙头一直滴水"))
    report.click()
    page.get_by_role("img", name=re.compile("student")).wait_for()
    phone.shoot("student-report")
    orders = demo.get("staff", "/api/v1/repairs?category=plumbing")
    assert isinstance(orders, list)
    mine = next(order for order in orders if order["title"] == "卫生间水龙头一直滴水")
    assert mine["room"] == "D1-101" and mine["reporter"] == "student"
    photos = demo.get("staff", f"/api/v1/repairs/{mine['id']}/photos")
    assert isinstance(photos, list) and [p["content_type"] for p in photos] == ["image/png"]


def test_a_student_who_edits_the_url_to_another_room_gets_an_error_page(
    browser: Browser, demo: Demo, visits: list[Visit]
) -> None:
    other = demo.get("staff", "/api/v1/rooms/D1-102")
    assert isinstance(other, dict)
    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("student")
    page.get_by_test_id("balance").wait_for()
    for path in ("", "/ledger", "/usage"):
        page.goto(f"{demo.url}/app/student/rooms/D1-102{path}")
        alert = page.get_by_role("alert")
        assert "无权查看此房间" in alert.inner_text()
        assert page.get_by_test_id("balance").count() == 0
        assert "D1-102" not in page.locator("main").inner_text()
    phone.shoot("student-other-room")
    # In English too, and the way back leads to the student's own room.
    page.get_by_role("button", name="English").click()
    assert "This is not your room" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="My room").click()
    page.get_by_test_id("balance").wait_for()
    assert page.url.endswith("/app/student/rooms/D1-101")
    page.get_by_role("button", name="中文").click()
    page.get_by_test_id("balance").wait_for()
    # A student who opens the staff pages is told they are not theirs, and sees no staff data.
    page.goto(f"{demo.url}/app/staff/orders")
    assert "此页面不适用于你的账号" in page.get_by_role("alert").inner_text()
    assert page.locator("table").count() == 0


def test_a_worker_resolves_an_order_and_the_staff_board_shows_it(
    browser: Browser, demo: Demo, visits: list[Visit]
) -> None:
    order = demo.post("staff", "/api/v1/repairs", {
        "title": "D1-101 插座不通电", "category": "electrical", "room": "D1-101", "device": "d1-101-meter",
        "description": "书桌旁的插座没有电", "priority": "high",
    })  # fmt: skip
    demo.post("staff", f"/api/v1/repairs/{order['id']}/assign", {"username": "worker"})

    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("worker")
    card = page.get_by_role("link", name=re.compile("D1-101 插座不通电"))
    phone.shoot("worker-orders")
    card.click()
    page.get_by_role("heading", name="D1-101 插座不通电").wait_for()
    page.get_by_role("heading", name="设备读数").wait_for()
    phone.shoot("worker-order")
    page.get_by_role("button", name="开始处理").click()
    page.get_by_text("处理中").first.wait_for()
    page.get_by_label("备注").fill("更换了插座面板")
    page.get_by_label("照片（选填）").set_input_files(
        files=[{"name": "socket.png", "mimeType": "image/png", "buffer": png(4, 4)}]
    )
    page.get_by_role("button", name="添加记录").click()
    page.get_by_text("更换了插座面板").wait_for()
    page.get_by_label("备注").fill("已通电测试")
    page.get_by_role("button", name="处理完成").click()
    page.locator(".badge-resolved").first.wait_for()
    phone.shoot("worker-resolved")

    desktop = visit(visits, browser, demo, DESKTOP)
    staff = desktop.sign_in("staff")
    staff.get_by_role("navigation").get_by_role("link", name="工单", exact=True).click()
    staff.get_by_label("状态").select_option("resolved")
    staff.get_by_role("button", name="筛选").click()
    staff.wait_for_url(re.compile(r".*status=resolved.*"))
    row = staff.locator(f"tr[data-order='{order['number']}']")
    assert "已完成" in row.inner_text() and "worker" in row.inner_text()
    desktop.shoot("staff-board")
    events = demo.get("staff", f"/api/v1/repairs/{order['id']}/events")
    assert isinstance(events, list)
    assert [e["kind"] for e in events][-4:] == ["started", "photo", "note", "resolved"]


def _simulated_outputs(demo: Demo, zone: str) -> dict[tuple[str, str], bool]:
    """What the zone's simulated controllers hold, output by output, by their own account."""
    inventory = load_inventory(DEMO_INVENTORY)
    held = {}
    details = demo.get("staff", f"/api/v1/zones/{zone}")
    assert isinstance(details, dict)
    for output in details["outputs"]:
        device = inventory.devices[output["device"]]
        state_field = inventory.model_of(device).commands[output["command"]].state_field
        simulated = demo.get("staff", f"/api/v1/simulation/devices/{device.id}")
        assert isinstance(simulated, dict) and state_field
        held[(device.id, output["command"])] = bool(simulated["state"][state_field])
    return held


def test_staff_override_changes_the_zone_in_the_simulator(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    zone = "dorm-1-corridors"
    desktop = visit(visits, browser, demo, DESKTOP)
    page = desktop.sign_in("staff")
    page.get_by_role("link", name="区域与时间表").click()
    page.get_by_role("link", name="Dorm 1 corridor lighting").click()
    page.get_by_role("heading", name="手动控制").wait_for()
    before = _simulated_outputs(demo, zone)
    assert len(set(before.values())) == 1, before  # the schedule holds the whole zone one way
    wanted = not next(iter(before.values()))
    page.get_by_label("动作").select_option("on" if wanted else "off")
    page.get_by_label("原因").fill("晚自习延长")
    page.get_by_role("button", name="保持").click()
    page.get_by_role("button", name="结束手动控制").wait_for()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(_simulated_outputs(demo, zone).values()) != {wanted}:
        time.sleep(0.25)
    assert set(_simulated_outputs(demo, zone).values()) == {wanted}
    page.reload()
    assert page.get_by_test_id("zone-state").inner_text() == ("开灯" if wanted else "关灯")
    assert "手动控制" in page.locator(".zone-now").inner_text()
    desktop.shoot("staff-zone")
    # Ending it hands the zone back to its schedule, in the simulator too.
    page.get_by_role("button", name="结束手动控制").click()
    page.get_by_role("button", name="结束手动控制").wait_for(state="detached")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(_simulated_outputs(demo, zone).values()) != {not wanted}:
        time.sleep(0.25)
    assert set(_simulated_outputs(demo, zone).values()) == {not wanted}


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_student_and_worker_page_renders(
    browser: Browser, demo: Demo, visits: list[Visit], size: dict[str, int]
) -> None:
    screen = visit(visits, browser, demo, size)
    page = screen.page
    page.goto(f"{demo.url}/app/")
    page.get_by_label("账号").wait_for()
    screen.shoot("sign-in")
    page.get_by_label("账号").fill("student")
    page.get_by_label("密码").fill("not the password")
    page.get_by_role("button", name="登录").click()
    assert "账号或密码不正确" in page.get_by_role("alert").inner_text()
    screen.shoot("sign-in-refused")
    screen.sign_in("student")
    student_pages = (
        ("", "student-balance", "充值"),
        ("/usage", "student-usage", "用电情况"),
        ("/ledger", "student-ledger", "账单明细"),
        ("/reports", "student-reports", "我的报修"),
    )
    for suffix, name, heading in student_pages:
        page.goto(f"{demo.url}/app/student/rooms/D1-101{suffix}")
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        screen.shoot(name)
    page.get_by_role("button", name="退出").click()
    page.wait_for_url(re.compile(r".*/app/$"))
    screen.sign_in("worker")
    page.get_by_role("heading", name="指派给我").wait_for()
    screen.shoot("worker-orders")
    cards = page.locator("main a.link-card")
    if cards.count():
        cards.first.click()
        page.get_by_role("heading", name="处理进度").wait_for()
        screen.shoot("worker-order")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_staff_page_renders(browser: Browser, demo: Demo, visits: list[Visit], size: dict[str, int]) -> None:
    screen = visit(visits, browser, demo, size)
    page = screen.sign_in("staff")
    assert page.url.endswith("/app/staff/overview")  # staff land on the campus at a glance
    page.get_by_test_id("overview-at").wait_for()
    # The demo made its history at its first start: yesterday is there, hour by hour, and the energy page
    # has last month's figures.
    seen = demo.get("staff", "/api/v1/overview")
    assert isinstance(seen, dict) and all(kwh and kwh > 0 for kwh in seen["yesterday_kwh"]), seen["yesterday_kwh"]
    assert page.locator(".chart path.line.previous").count() == 1
    for section, name, ready in (
        ("总览", "staff-overview", ".tiles .tile"),
        ("能耗", "staff-energy", "#campus-energy"),
        ("工单", "staff-orders", "table"),
        ("宿舍", "staff-rooms", "table tbody tr"),
        ("设备", "staff-devices", "table tbody tr"),
        ("区域与时间表", "staff-zones", "table tbody tr"),
        ("校历", "staff-calendar", "table.calendar"),
        ("数据看板", "staff-dashboards", "main p, main ul"),
    ):
        page.get_by_role("navigation").get_by_role("link", name=section, exact=True).click()
        page.get_by_role("heading", level=1, name=section, exact=True).wait_for()
        page.locator(ready).first.wait_for()
        link = page.get_by_role("navigation").get_by_role("link", name=section, exact=True)
        assert link.get_attribute("aria-current") == "page"
        screen.shoot(name)
    page.goto(f"{demo.url}/app/staff/rooms/D1-101")
    page.get_by_test_id("balance").wait_for()
    screen.shoot("staff-room")
    page.goto(f"{demo.url}/app/staff/devices/d1-101-meter")
    page.get_by_role("heading", name="最新读数").wait_for()
    screen.shoot("staff-device")
    page.goto(f"{demo.url}/app/staff/zones/dorm-1-corridors")
    page.locator(".timeline .segment").first.wait_for()
    assert page.get_by_label("亮度（%）").is_hidden()  # only for dimming
    screen.shoot("staff-zone")
    page.goto(f"{demo.url}/app/staff/zones/teaching-bells")
    page.get_by_role("heading", name="时间线预览").wait_for()
    page.locator(".timeline-area > *").first.wait_for()
    screen.shoot("staff-zone-broadcast")
    page.goto(f"{demo.url}/app/")
    page.get_by_role("main").wait_for()


def test_the_emergency_broadcast_asks_for_confirmation(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    desktop = visit(visits, browser, demo, DESKTOP)
    page = desktop.sign_in("staff")
    page.goto(f"{demo.url}/app/staff/zones")
    page.get_by_label("节目或文本编号").fill("fire-drill")
    page.get_by_role("button", name="发布紧急广播").click()
    dialog = page.get_by_role("dialog")
    assert "fire-drill" in dialog.inner_text()
    desktop.shoot("staff-emergency-confirm")
    dialog.get_by_role("button", name="取消").click()
    assert demo.get("staff", "/api/v1/broadcast/emergency") == []
    page.get_by_role("button", name="发布紧急广播").click()
    page.get_by_role("dialog").get_by_role("button", name="发布紧急广播").click()
    page.get_by_role("heading", name="正在进行的紧急广播").wait_for()
    active = demo.get("staff", "/api/v1/broadcast/emergency")
    assert isinstance(active, list) and [e["programme"] for e in active] == ["fire-drill"]
    page.get_by_role("button", name="结束").click()
    page.get_by_role("heading", name="正在进行的紧急广播").wait_for(state="detached")


def test_pages_and_assets_come_from_houqin_alone(demo: Demo) -> None:
    """No CDN: every page and asset is served by houqin under a policy that forbids loading from elsewhere."""
    web = ROOT / "api" / "web"
    assets = sorted(path for path in web.rglob("*") if path.is_file())
    assert {path.suffix for path in assets} <= {".html", ".js", ".css", ".svg"}
    for path in assets:
        text = path.read_text(encoding="utf-8")
        links = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert links <= {"http://www.w3.org/2000/svg"}, (path, links)
    pages = ["/app/", "/app/student/", "/app/worker/orders/1", "/app/staff/zones"]
    served_assets = [f"/app/static/{path.name}" for path in assets if path.parent.name == "static"]
    for address in pages + served_assets:
        served = httpx.get(f"{demo.url}{address}")
        assert served.status_code == 200, address
        policy = served.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert served.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/app/static/worker.js">' in httpx.get(f"{demo.url}/app/worker/").text
    assert httpx.get(f"{demo.url}/").headers["location"] == "/app/"
    assert httpx.get(f"{demo.url}/app/nowhere/at-all").status_code == 404


def test_a_kettle_trips_a_room_the_student_sees_why_and_staff_lock_and_unlock(
    browser: Browser, demo: Demo, visits: list[Visit]
) -> None:
    """The demo's D1-102 (student1): a kettle (the simulated fault) trips the room by the power policy; the
    student's page says why and when power returns; staff lock the room from its page and unlock it."""
    deadline = time.monotonic() + 30  # a reading without the kettle first: where the room's power stood
    while not demo.get("staff", "/api/v1/devices/d1-102-meter")["last_seen"]:  # type: ignore[index]
        assert time.monotonic() < deadline, "the meter of D1-102 was never read"
        time.sleep(0.5)
    fault = {"device": "d1-102-meter", "fault": "illegal_appliance", "active": True}
    demo.post("staff", "/api/v1/simulation/faults", fault)
    try:
        deadline = time.monotonic() + 60  # the policy's 10 s, the meter's 15 s poll, the command
        while (wallet := demo.get("student1", "/api/v1/rooms/D1-102/wallet"))["state"] != "tripped":  # type: ignore[index]
            assert time.monotonic() < deadline, wallet
            time.sleep(0.5)
    finally:
        demo.post("staff", "/api/v1/simulation/faults", {**fault, "active": False})
    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("student1")
    note = page.get_by_test_id("power-note")
    assert "大功率电器" in note.inner_text() and "自动恢复供电" in note.inner_text()
    phone.shoot("student-appliance-trip")

    desktop = visit(visits, browser, demo, DESKTOP)
    staff = desktop.sign_in("staff")
    staff.goto(f"{demo.url}/app/staff/rooms/D1-102")
    staff.get_by_role("heading", name="锁定断电").wait_for()
    assert "违规电器跳闸" in staff.get_by_role("table").first.inner_text()
    staff.get_by_label("原因", exact=True).fill("查获电热毯")
    staff.get_by_role("button", name="锁定", exact=True).click()
    staff.get_by_role("heading", name="解锁供电").wait_for()
    desktop.shoot("staff-room-locked")
    page.reload()
    assert "宿管已锁定本宿舍用电：查获电热毯" in page.get_by_test_id("power-note").inner_text()
    staff.get_by_label("原因", exact=True).fill("已没收，学生已签字")
    staff.get_by_role("button", name="解锁", exact=True).click()
    staff.get_by_role("heading", name="锁定断电").wait_for()
    wallet = demo.get("staff", "/api/v1/rooms/D1-102/wallet")
    assert isinstance(wallet, dict) and wallet["locked"] is False and wallet["state"] != "locked"


def test_staff_write_preview_change_and_delete_a_curfew_schedule(
    browser: Browser, demo: Demo, visits: list[Visit]
) -> None:
    """A dated curfew (in 2030, so the running demo is not cut) written in the page, previewed before it is
    saved, refused while an entry is impossible, changed into a night limit, and deleted."""
    desktop = visit(visits, browser, demo, DESKTOP)
    page = desktop.sign_in("staff")
    page.goto(f"{demo.url}/app/staff/zones/dorm-1-power")
    assert "30 间宿舍" in page.get_by_test_id("zone-rooms").inner_text()
    page.get_by_role("button", name="新建时间表").click()
    editor = page.locator("form.schedule-editor")
    editor.get_by_label("名称", exact=True).fill("期末熄灯")
    entry = editor.locator("fieldset.entry").first
    entry.get_by_label("时间", exact=True).fill("23:30")
    entry.get_by_label("持续到").fill("06:30")
    entry.get_by_label("仅这些日期").fill("2030-01-07")
    editor.get_by_label("日期", exact=True).fill("2030-01-07")
    editor.get_by_role("button", name="预览当天").click()
    editor.locator(".timeline .seg-off").wait_for()
    assert "23:30–00:00 熄灯断电" in editor.locator("ol.segments").inner_text()
    assert demo.get("staff", "/api/v1/schedules?zone=dorm-1-power") == []  # a preview saves nothing
    desktop.shoot("staff-schedule-editor")

    entry.get_by_label("时间", exact=True).fill("25:00")
    editor.get_by_role("button", name="保存").click()
    editor.locator(".problem", has_text="25:00").wait_for()  # the server's message names the entry
    assert demo.get("staff", "/api/v1/schedules?zone=dorm-1-power") == []
    entry.get_by_label("时间", exact=True).fill("23:30")
    editor.get_by_role("button", name="保存").click()
    saved = page.locator("li.schedule[data-schedule='期末熄灯']")
    saved.wait_for()

    saved.get_by_role("button", name="编辑").click()
    entry = page.locator("form.schedule-editor fieldset.entry").first
    entry.get_by_label("动作").select_option("limit")
    entry.get_by_label("功率上限（W）").fill("300")
    page.locator("form.schedule-editor").get_by_role("button", name="保存").click()
    page.locator("li.schedule", has_text="限功率 300 W").wait_for()
    [stored] = demo.get("staff", "/api/v1/schedules?zone=dorm-1-power")  # type: ignore[misc]
    assert stored["entries"] == [{"at": "23:30", "until": "06:30", "action": "limit", "limit_w": 300,
                                  "dates": ["2030-01-07"]}]  # fmt: skip

    page.locator("li.schedule").get_by_role("button", name="删除").click()
    page.get_by_role("dialog").get_by_role("button", name="删除").click()
    page.get_by_text("此区域没有时间表。").wait_for()
    assert demo.get("staff", "/api/v1/schedules?zone=dorm-1-power") == []

    phone = visit(visits, browser, demo, PHONE)
    small = phone.sign_in("staff")
    small.goto(f"{demo.url}/app/staff/zones/dorm-1-power")
    small.get_by_role("button", name="新建时间表").click()
    small.locator("form.schedule-editor fieldset.entry").wait_for()
    phone.shoot("staff-schedule-editor")


def test_a_curfew_by_hand_reaches_the_student_and_ends(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    """Staff cut dorm 1 for the night by hand from the zone page; the student's page says it is the
    curfew; ending the override gives the power back (the scheduler, then the relays)."""
    desktop = visit(visits, browser, demo, DESKTOP)
    staff = desktop.sign_in("staff")
    staff.goto(f"{demo.url}/app/staff/zones/dorm-1-power")
    form = staff.locator("form", has=staff.get_by_role("heading", name="手动控制"))
    form.get_by_label("动作").select_option("off")
    form.get_by_label("原因").fill("线路检修")
    form.get_by_role("button", name="保持").click()
    staff.get_by_role("button", name="结束手动控制").wait_for()
    deadline = time.monotonic() + 30
    while (wallet := demo.get("student1", "/api/v1/rooms/D1-102/wallet"))["curfew"] is not True:  # type: ignore[index]
        assert time.monotonic() < deadline, wallet
        time.sleep(0.5)
    phone = visit(visits, browser, demo, PHONE)
    page = phone.sign_in("student1")
    if wallet["state"] == "curfew":  # type: ignore[index]
        assert "熄灯断电" in page.get_by_test_id("power-note").inner_text()
        phone.shoot("student-curfew")
    staff.get_by_role("button", name="结束手动控制").click()
    deadline = time.monotonic() + 30
    while (wallet := demo.get("student1", "/api/v1/rooms/D1-102/wallet"))["curfew"] is not False:  # type: ignore[index]
        assert time.monotonic() < deadline, wallet
        time.sleep(0.5)


def test_staff_record_a_move_in_and_out_and_the_student_keeps_a_statement(
    browser: Browser, demo: Demo, visits: list[Visit]
) -> None:
    desktop = visit(visits, browser, demo, DESKTOP)
    page = desktop.sign_in("staff")
    page.goto(f"{demo.url}/app/staff/rooms/D1-101")
    page.get_by_role("heading", name="入住记录").wait_for()
    page.get_by_label("学生账号").fill("student")
    page.get_by_role("button", name="登记入住").click()
    page.locator("tr[data-stay='student']").wait_for()
    desktop.shoot("staff-room-residents")
    page.locator("tr[data-stay='student']").get_by_role("button", name="办理退宿").click()
    page.locator("form[aria-label='办理退宿']").get_by_role("button", name="办理退宿").click()
    statement = page.get_by_test_id("stay-statement")
    statement.wait_for()
    assert "student 的住宿用电结算" in statement.inner_text()
    [stay] = demo.get("staff", "/api/v1/rooms/D1-101/stays")  # type: ignore[misc]
    assert stay["moved_out"] is not None
    kept = demo.get("student", f"/api/v1/rooms/D1-101/stays/{stay['id']}/statement")
    assert isinstance(kept, dict) and kept["stay"]["student"] == "student"
    # Back in: the demo's student keeps their room for the other pages.
    demo.post("staff", "/api/v1/rooms/D1-101/stays", {"username": "student", "bed": 1, "moved_in": stay["moved_out"]})


def test_staff_download_the_month_s_energy_report(browser: Browser, demo: Demo, visits: list[Visit]) -> None:
    import io

    from openpyxl import load_workbook

    desktop = visit(visits, browser, demo, DESKTOP)
    page = desktop.sign_in("staff")
    page.goto(f"{demo.url}/app/staff/energy")
    page.locator("#campus-energy").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="下载 Excel").click()
    assert download.value.suggested_filename.endswith("-month.xlsx")
    book = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert book.sheetnames[0] == "全校 Campus" and book["全校 Campus"].max_row > 2
    desktop.shoot("staff-energy")

"""The companion page in a real headless Chromium (Debian's `chromium`, driven by Playwright)
against a running agent: real Mosquitto, simulated GPS receiver and PN532 reader (ptys), a
file camera.

Pair, see tasks, walk into a checkpoint and see the confirmation (SSE) with its photo, tap
the next one's NFC tag and see that confirmed too, a
manual check-in refused with its reason, an incident with a phone photo filed while the broker
is down that reaches central with its media once it is back, SOS with its confirmation step.
With GRID_EDGE_SCREENSHOTS=1 the screenshots (390x844, both languages) go to docs/companion/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker, free_port
from agent.documents.state import DocState
from agent.patrol.companion.files import device_code
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.paths import REPO
from tests.kits.patrol import at, cp, jpeg_folder, record, task

pytest.importorskip("aiohttp", reason="aiohttp is the companion page's framework (pip .[test])")
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright (PyPI) drives the browser: pip install .[test]"
)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = REPO / "docs" / "companion"
GATE = at(0, 0)
KIOSK_TAG = "04a1b2c3"
# The names the worker knows the checkpoints by (the ids are for machines).
GATE_CP = {**cp("east-gate", GATE, radius=20, dwell=3, photo=True), "name": "东门岗亭"}
KIOSK_CP = {**cp("kiosk", at(150, 40), tags=(KIOSK_TAG,)), "name": "湖边报亭"}
TASKS = record([task("t-east", [GATE_CP, KIOSK_CP], order="sequence")])

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"no Chromium at {CHROMIUM}: scripts/setup.sh installs Debian's chromium",
)


class Shots:
    """Screenshots of each screen in both languages: docs/companion/ or the test's tmp dir."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder = page, folder
        folder.mkdir(parents=True, exist_ok=True)

    async def take(self, name: str, scroll: str | None = None) -> None:
        if scroll is not None:
            await self.page.locator(scroll).scroll_into_view_if_needed()
        for lang in ("zh", "en"):
            if lang == "en":
                await self.page.click("#lang")
            await self.page.screenshot(path=str(self.folder / f"{name}-{lang}.png"))
        await self.page.click("#lang")  # back to Chinese


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@dataclasses.dataclass(frozen=True)
class Phone:
    """One worker's phone against the running agent: the page and its screenshots, the
    device's state dir, the agent, its simulated GPS and NFC reader, and the broker."""

    page: Any
    shots: Shots
    state: Path
    agent: Agent
    gps: GpsSimulator
    nfc: Pn532Simulator
    broker: Broker


async def pair(phone: Phone, port: int) -> None:
    """A wrong code refused with its message, then the device's own code pairs."""
    page = phone.page
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.wait_for_selector("#s-pair:not(.hidden)")
    assert await page.text_content("#pair") == "配对"
    await page.fill("#code", "000000" if device_code(phone.state, 6) != "000000" else "1")
    await page.click("#pair")
    await page.wait_for_selector("#pair-msg:text('配对码不对')")
    await phone.shots.take("1-pair")
    await page.fill("#code", device_code(phone.state, 6))
    await page.click("#pair")
    await page.wait_for_selector("#s-tasks:not(.hidden)")


async def see_tasks(phone: Phone) -> None:
    """Today's tasks with the next checkpoint, distance and bearing (once GPS moves)."""
    page = phone.page
    phone.gps.resume()
    await page.wait_for_selector("#next:has-text('°')", timeout=30_000)
    assert "东门岗亭" in (await page.text_content("#next") or "")
    assert "0/2" in (await page.text_content("#tasks") or "")
    await phone.shots.take("2-tasks")


async def manual_checkin_refused(phone: Phone) -> None:
    """Manual check-in far from the gate: refused, with the reason."""
    page = phone.page
    await page.click("nav button[data-go=checkin]")
    await page.click("#manual")
    await page.wait_for_selector("#manual-msg:text('不在检查点范围内')")
    await phone.shots.take("3-checkin-refused")


async def checked_in_walking_in(phone: Phone) -> None:
    """Walking in: the confirmation arrives by SSE, with the photo taken at the gate."""
    page = phone.page
    await page.wait_for_selector("#confirm:not(.hidden)", timeout=60_000)
    await page.wait_for_selector("#confirm-img:not(.hidden)")
    await page.wait_for_function("document.getElementById('confirm-img').naturalWidth > 0")
    # The confirmation names the checkpoint as the worker knows it, not by its id.
    confirm = await page.text_content("#confirm-text") or ""
    assert "东门岗亭" in confirm and "east-gate" not in confirm
    await phone.shots.take("4-checked-in")
    phone.gps.pause()


async def checked_in_by_nfc(phone: Phone) -> None:
    """A tap on the kiosk's NFC tag: confirmed the same way, without a photo."""
    page = phone.page
    phone.nfc.present(KIOSK_TAG)
    await page.wait_for_selector("#confirm-text:has-text('湖边报亭')", timeout=20_000)
    assert "NFC" in (await page.text_content("#confirm-text") or "")
    assert await page.is_hidden("#confirm-img")
    phone.nfc.remove()


async def incident_filed_offline(phone: Phone, central: Watcher, photo: Path) -> None:
    """Incident with a phone photo while central is unreachable: stored, the page offline."""
    page = phone.page
    phone.broker.stop()
    await wait_until(lambda: phone.agent.link.session is None, what="link down")
    await page.click("nav button[data-go=incident]")
    await page.click("#cats button[data-cat=vending]")
    await page.click("#levels button[data-level='3']")
    await page.fill("#note", "东门占道经营")
    await page.set_input_files("#photo", str(photo))
    await page.wait_for_selector("#photo-count:text('1 张照片')")
    await phone.shots.take("5-incident-form")
    await page.click("#send")
    await page.wait_for_selector("#incident-msg.good")
    # Central is unreachable: saved on the device, to be sent (not "sent").
    saved = await page.text_content("#incident-msg") or ""
    assert re.fullmatch(r"已保存在设备上，联网后发送 \(#\d+\)", saved), saved
    await phone.shots.take("5b-incident-stored", scroll="#incident-msg")
    await page.click("nav button[data-go=tasks]")
    await page.wait_for_selector("#health:has-text('离线')", timeout=10_000)
    await page.wait_for_function(
        "!/全部已发送/.test(document.getElementById('waiting').textContent)"
    )
    await phone.shots.take("6-offline-waiting")
    assert not any(e["kind"] == "incident" for e in central.events())


async def incident_arrives_once_back(phone: Phone, central: Watcher) -> None:
    """With the broker back: the incident and its media reach central, and the page says it
    was sent."""
    page = phone.page

    def arrived() -> bool:
        inc = [e for e in central.events("/evt/incident")]
        if not inc:
            return False
        ids = {p["media_id"] for p in inc[0]["body"]["photos"]}
        got = {e["body"]["media_id"] for e in central.events("/evt/media")}
        return bool(ids) and ids <= got

    await wait_until(arrived, timeout=60, what="incident and its media at central")
    # Once the broker has it, the page says so (the outbox's delivery news).
    await page.click("nav button[data-go=incident]")
    sent = "#incident-msg:has-text('已发送到指挥中心')"
    await page.wait_for_selector(sent, timeout=20_000)
    await page.click("nav button[data-go=tasks]")
    [incident] = central.events("/evt/incident")
    body = incident["body"]
    assert (body["category"], body["level"], body["note"]) == ("vending", 3, "东门占道经营")
    media_id = body["photos"][0]["media_id"]
    assert central.wait_for(
        lambda m: any(t.split("/")[-2] == media_id for t, _, _ in m if "/media/" in t)
    )


async def raise_sos(phone: Phone, central: Watcher) -> None:
    """SOS with its confirmation step; the alarm reaches central."""
    page = phone.page
    await page.click("nav button[data-go=sos]")
    await page.click("#sos")
    await page.wait_for_selector("#sos-confirm:not(.hidden)")
    await phone.shots.take("7-sos-confirm")
    await page.click("#sos-yes")
    sos_sent = "#sos-msg:has-text('求助已发送到指挥中心')"
    await page.wait_for_selector(sos_sent, timeout=20_000)
    await phone.shots.take("8-sos-sent")
    assert central.wait_for(lambda m: any(t.endswith("/evt/alarm") for t, _, _ in m), timeout=20)


async def test_worker_pairs_checks_in_reports_and_raises_sos(
    own_broker: Broker, tmp_path: Path, browser: Any
) -> None:
    broker = own_broker  # this test stops and restarts its broker
    state = tmp_path / "state"
    DocState(state).set_tasks(TASKS)
    pics = jpeg_folder(tmp_path / "pics")
    phone_photo = jpeg_folder(tmp_path / "phone", n=1) / "img0.jpg"
    folder = DOCS if os.environ.get("GRID_EDGE_SCREENSHOTS") == "1" else tmp_path / "shots"
    port = free_port()
    # 70 m south of the gate, walking north through it and on; low noise, no outliers.
    walk = [at(-70, 0), GATE, at(3, 0)]
    async with (
        GpsSimulator(
            walk=walk, speed=4, paused=True, noise_m=0.5, outlier_prob=0, outage_prob=0, seed=1
        ) as gps,
        Pn532Simulator() as nfc,
    ):
        cfg = make_config(
            state,
            broker.port,
            gps={"port": gps.port},
            nfc={"port": nfc.port, "poll_interval_s": 0.05},
            camera={"source": f"file:{pics}"},
            patrol={"tick_s": 0.1, "reap_interval_s": 0.2},
            companion={"enabled": True, "host": "127.0.0.1", "port": port},
        )
        central = Watcher(broker.host, broker.port)
        async with Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent:
            await wait_until(lambda: agent.link.ready, what="connected")
            ctx = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await ctx.new_page()
            phone = Phone(page, Shots(page, folder), state, agent, gps, nfc, broker)
            await pair(phone, port)
            await see_tasks(phone)
            await manual_checkin_refused(phone)
            await checked_in_walking_in(phone)
            await checked_in_by_nfc(phone)
            await incident_filed_offline(phone, central, phone_photo)
            central.close()
            broker.start()
            central = Watcher(broker.host, broker.port)
            await incident_arrives_once_back(phone, central)
            await raise_sos(phone, central)
            await ctx.close()
        central.close()
    assert (folder / "4-checked-in-en.png").stat().st_size > 0


@contextlib.asynccontextmanager
async def page_only(
    tmp_path: Path, browser: Any, profile: Any = None
) -> AsyncIterator[tuple[Any, Any, Any, Any, Any]]:
    """The page served by a CompanionServer over a real driver and outbox (no agent, no
    broker): (page, server, driver, outbox, fed)."""
    from agent.patrol.companion.server import CompanionServer
    from agent.patrol.config import CompanionConfig, PatrolConfig
    from tests.kits.patrol import rig

    state = tmp_path / "state"
    cfg = CompanionConfig(enabled=True, host="127.0.0.1", port=free_port(), pair_attempts_per_min=5)
    settings = PatrolConfig(tick_s=0.05, reap_interval_s=0.2)
    async with (
        rig(state, TASKS, profile=profile, settings=settings) as (driver, outbox, _media, fed),
        CompanionServer(driver, cfg, state_dir=state, outbox=outbox) as server,
    ):
        ctx = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await ctx.new_page()
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await page.wait_for_selector("#s-pair:not(.hidden)")
        try:
            yield page, server, driver, outbox, fed
        finally:
            await ctx.close()


async def pair_page(page: Any, code: str) -> None:
    await page.fill("#code", code)
    await page.click("#pair")
    await page.wait_for_selector("#s-tasks:not(.hidden)")


@pytest.mark.slow  # a browser and a page server: a few seconds
async def test_the_page_speaks_to_the_worker_pairing_help_real_wait_and_level_words(
    tmp_path: Path, browser: Any
) -> None:
    """Pairing help for the worker (no command line), the real wait after too many tries
    (5 a minute: 12 s, not "a minute"), and the response-level words on the level buttons."""
    async with page_only(tmp_path, browser) as (page, server, _driver, _outbox, _fed):
        code = device_code(tmp_path / "state", 6)
        help_text = await page.text_content("#s-pair p") or ""
        assert "标签" in help_text, help_text
        assert "edge-agent" not in help_text and "companion-code" not in help_text
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(6):
            await page.fill("#code", wrong)
            await page.click("#pair")
            await page.wait_for_selector("#pair-msg:not(:empty)")
            last = await page.text_content("#pair-msg") or ""
            await page.locator("#pair-msg").evaluate("el => { el.textContent = ''; }")
        wait = re.fullmatch(r"尝试太多，请等 (\d+) 秒再试", last)
        assert wait is not None and 10 <= int(wait.group(1)) <= 12, last
        server._pair_limit = type(server._pair_limit)(60)  # a new minute: tries again
        await pair_page(page, code)
        await page.click("nav button[data-go=incident]")
        levels = [await page.text_content(f"#levels button[data-level='{i}']") for i in range(1, 5)]
        assert levels == ["Ⅰ级 特别重大", "Ⅱ级 重大", "Ⅲ级 较大", "Ⅳ级 一般"]
        await page.click("#lang")
        en = [await page.text_content(f"#levels button[data-level='{i}']") for i in range(1, 5)]
        assert [x.split(" ")[0] for x in en if x] == ["I", "II", "III", "IV"]


@pytest.mark.slow  # a browser and a page server: a few seconds
async def test_are_you_all_right_prompt_full_screen_with_countdown_answered_on_the_page(
    tmp_path: Path, browser: Any
) -> None:
    from agent.config.model import ModeProfile
    from tests.kits.patrol import fix_at, outbox_events

    folder = DOCS if os.environ.get("GRID_EDGE_SCREENSHOTS") == "1" else tmp_path / "shots"
    still = ModeProfile(man_down_after_s=1, safety_grace_s=60)
    async with page_only(tmp_path, browser, still) as (page, _server, driver, outbox, fed):
        await pair_page(page, device_code(tmp_path / "state", 6))
        # Standing still during a task: the device asks; the page shows it full screen.
        await fed.fix(fix_at(at(0, 60)))
        await page.wait_for_selector("#ask:not(.hidden)", timeout=20_000)
        assert await page.text_content("#ask-title") == "您还好吗？"
        left = int(await page.text_content("#ask-left") or "0")
        assert 50 <= left <= 60
        await page.wait_for_selector(f"#ask-left:not(:text-is('{left}'))")  # counting down
        box = await page.locator("#ask").bounding_box()
        assert box is not None and box["width"] >= 390 and box["height"] >= 844
        await Shots(page, folder).take("9-are-you-ok")
        await page.click("#ask-ok")
        await page.wait_for_selector("#ask", state="hidden")
        await wait_until(lambda: driver.safety.stats["answered"] == 1, what="answered")
        checks = [n["body"] for n in await outbox_events(outbox, "notice")]
    assert [(c["check"], c["answer"]) for c in checks if c["type"] == "safety_check"] == [
        ("man_down", "page")
    ]

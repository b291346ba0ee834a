"""Buttons through gpiozero's MockFactory: SOS, check-in, incident."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.patrol.camera import Camera
from agent.patrol.config import ButtonsConfig
from firmware_bridge.buttons import Buttons
from tests.kits.aio import wait_until
from tests.kits.buttons import press
from tests.kits.fb import scaled_sleep
from tests.kits.patrol import (
    at,
    camera_cfg,
    cp,
    fix_at,
    jpeg_folder,
    outbox_events,
    record,
    rig,
    task,
)

SOS, CHECKIN, INCIDENT, LED, BUZZER = 17, 27, 5, 22, 23
TASKS = record([task("t", [cp("gate", at(0, 0)), cp("kiosk", at(200, 0))])])


async def test_buttons_raise_sos_manual_checkin_and_incident(
    tmp_path: Path, factory: MockFactory
) -> None:
    cfg = ButtonsConfig(
        sos=SOS,
        checkin=CHECKIN,
        incident=INCIDENT,
        led=LED,
        buzzer=BUZZER,
        incident_category="facility",
        incident_level=3,
    )
    pins = {"sos": SOS, "checkin": CHECKIN, "incident": INCIDENT}
    async with (
        Buttons(pins, LED, BUZZER, factory, bounce_s=None, sleep=scaled_sleep(0.01)) as buttons,
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(tmp_path / "s", TASKS, presses=buttons.presses(), camera=cam, buttons=cfg) as (
            driver,
            outbox,
            _media,
            fed,
        ),
    ):
        press(factory, SOS)
        await wait_until(lambda: driver.reporter.counts.events >= 1, what="SOS stored")
        rows = [r for r in await outbox.fetch((-1, -1), 100) if r.topic.endswith("/evt/alarm")]
        assert [r.priority for r in rows] == [0]
        assert json.loads(rows[0].payload)["body"]["type"] == "sos"
        assert any(s.state for s in factory.pin(LED).states)  # the press lit the LED

        await fed.fix(fix_at(at(0, 6), acc=3.0))
        await wait_until(lambda: driver.current_fix()[0] is not None)
        press(factory, CHECKIN)
        await wait_until(lambda: driver.reporter.counts.checkins == 1, what="manual check-in")
        press(factory, INCIDENT)
        # Events so far: alarm, patrol started, checkin; the incident is the fourth.
        await wait_until(lambda: driver.reporter.counts.events >= 4, what="incident")
        await driver.drain()
        # The photos' `media` events follow their chunks from the press's own task.
        media: list = []
        for _ in range(250):
            media = await outbox_events(outbox, "media")
            if len(media) >= 2:
                break
            await asyncio.sleep(0.02)
        checkin = (await outbox_events(outbox, "checkin"))[0]["body"]
        incident = (await outbox_events(outbox, "incident"))[0]["body"]
    assert (checkin["checkpoint_id"], checkin["method"]) == ("gate", "manual")
    assert len(checkin["photos"]) == 1 and checkin["dist_m"] == pytest.approx(6, abs=0.1)
    assert (incident["category"], incident["level"], len(incident["photos"])) == ("facility", 3, 1)
    assert incident["lat"] is not None
    assert sorted(m["body"]["ref"]["kind"] for m in media) == ["checkin", "incident"]


async def test_checkin_press_out_of_reach_signals_error(
    tmp_path: Path, factory: MockFactory
) -> None:
    async with (
        Buttons(
            {"checkin": CHECKIN},
            LED,
            None,
            factory,
            bounce_s=None,
            press_feedback={},
            sleep=scaled_sleep(0.01),
        ) as buttons,
        rig(tmp_path / "s", TASKS, presses=buttons.presses()) as (driver, outbox, _m, fed),
    ):
        await fed.fix(fix_at(at(100, 0), acc=3.0))  # 100 m from both checkpoints
        await wait_until(lambda: driver.current_fix()[0] is not None)
        press(factory, CHECKIN)
        await wait_until(lambda: fed.feedback == ["error"], what="refusal")
        await driver.drain()
        assert await outbox_events(outbox, "checkin") == []

"""The worker's safety through the real driver and outbox: the check-in button answers a prompt
(buzzer pattern, a `notice`, no check-in), SOS carries the trail, and the trail survives a
restart. Times are configured in seconds so the tests stay fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config.model import ModeProfile
from agent.patrol.config import ButtonsConfig, PatrolConfig
from firmware_bridge.buttons import Buttons
from tests.kits.aio import wait_until
from tests.kits.buttons import press
from tests.kits.fb import scaled_sleep
from tests.kits.patrol import at, cp, fix_at, outbox_events, record, rig, task

SOS, CHECKIN, LED, BUZZER = 17, 27, 22, 23
TASKS = record([task("t", [cp("gate", at(0, 0)), cp("kiosk", at(200, 0))])])
FAST = PatrolConfig(tick_s=0.05, reap_interval_s=0.2, trail_every_s=0)


async def test_the_checkin_button_answers_a_prompt_instead_of_checking_in(
    tmp_path: Path, factory: MockFactory
) -> None:
    still = ModeProfile(man_down_after_s=1, safety_grace_s=30)
    pins = {"sos": SOS, "checkin": CHECKIN}
    async with (
        Buttons(pins, LED, BUZZER, factory, bounce_s=None, sleep=scaled_sleep(0.01)) as buttons,
        rig(
            tmp_path / "s",
            TASKS,
            presses=buttons.presses(),
            profile=still,
            settings=FAST,
            buttons=ButtonsConfig(sos=SOS, checkin=CHECKIN, led=LED, buzzer=BUZZER),
        ) as (driver, outbox, _media, fed),
    ):
        await fed.fix(fix_at(at(0, 60)))
        await wait_until(lambda: driver.safety.asking, what="the prompt")
        assert "prompt" in fed.feedback
        press(factory, CHECKIN)
        await wait_until(lambda: not driver.safety.asking, what="answered")
        await wait_until(lambda: driver.safety.stats["answered"] == 1)
        notices = await outbox_events(outbox, "notice")
        assert driver.reporter.counts.checkins == 0  # the press answered; it did not check in
        assert fed.feedback[-1] == "ok"
    [n] = [e["body"] for e in notices if e["body"]["type"] == "safety_check"]
    assert n["check"] == "man_down" and n["answer"] == "button" and n["waited_s"] < 30
    assert n["lat"] == pytest.approx(at(0, 60)[0])


async def test_the_prompt_pattern_sounds_the_buzzer_and_lights_the_led(
    factory: MockFactory,
) -> None:
    async with Buttons({}, LED, BUZZER, factory, sleep=scaled_sleep(0.01)) as buttons:
        buttons.signal("prompt")

        def beeps() -> list[bool]:
            return [s.state for s in factory.pin(BUZZER).states]

        await wait_until(lambda: beeps().count(True) == 3 and not beeps()[-1], what="3 calls")
    assert any(s.state for s in factory.pin(LED).states)


async def test_sos_carries_the_trail_kept_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "s"
    t0 = 1_764_000_000_000
    async with rig(state, TASKS, settings=FAST) as (driver, _outbox, _media, fed):
        for i in range(25):
            await fed.fix(fix_at(at(i * 5.0, 0), utc_ms=t0 + i * 1000))
        await wait_until(lambda: len(driver.safety.watch.trail) == 20, what="trail")
    assert len(json.loads((state / "safety.json").read_text())["trail"]) == 20
    async with rig(state, TASKS, settings=FAST) as (driver, outbox, _media, _fed):
        await driver.sos(note="fell")
        [alarm] = await outbox_events(outbox, "alarm")
    body = alarm["body"]
    assert body["type"] == "sos" and alarm["kind"] == "alarm"
    assert [p[2] for p in body["trail"]] == [t0 + i * 1000 for i in range(5, 25)]
    assert body["trail"][-1][:2] == pytest.approx(list(at(24 * 5.0, 0)))


async def test_a_broken_trail_file_starts_an_empty_trail(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "safety.json").write_text('{"trail": [[1, 2], "x", [1.0, 2.0, 3]]}')
    async with rig(state, TASKS, settings=FAST) as (driver, outbox, _media, _fed):
        assert driver.safety.watch.trail == ((1.0, 2.0, 3),)
        await driver.sos()
        [alarm] = await outbox_events(outbox, "alarm")
    assert alarm["body"]["trail"] == [[1.0, 2.0, 3]]


async def test_a_multipath_jump_stays_out_of_the_trail(tmp_path: Path) -> None:
    t0 = 1_764_000_000_000
    async with rig(tmp_path / "s", TASKS, settings=FAST) as (driver, outbox, _media, fed):
        for i in range(12):
            north = 300.0 if i == 6 else i * 1.4  # one fix jumps 300 m (multipath), then back
            await fed.fix(fix_at(at(north, 0), utc_ms=t0 + i * 1000))
        await wait_until(lambda: driver.status()["patrol"]["engine"]["fixes"] == 12)
        await driver.drain()
        await driver.sos(note="here")
        [alarm] = await outbox_events(outbox, "alarm")
    trail = alarm["body"]["trail"]
    assert [p[2] - t0 for p in trail] == [i * 1000 for i in range(12) if i != 6]
    assert max(p[0] for p in trail) < at(20, 0)[0]


async def test_an_unanswered_prompt_is_an_alarm_at_priority_0_with_the_trail(
    tmp_path: Path,
) -> None:
    still = ModeProfile(man_down_after_s=1, safety_grace_s=1)
    async with rig(tmp_path / "s", TASKS, profile=still, settings=FAST) as (
        driver,
        outbox,
        _media,
        fed,
    ):
        with driver.notices.listen() as heard:
            await fed.fix(fix_at(at(0, 60)))
            await wait_until(lambda: driver.safety.stats["alarms"] == 1, what="the alarm")
            rows = [r for r in await outbox.fetch((-1, -1), 100) if r.topic.endswith("/evt/alarm")]
            told = [heard.get_nowait() for _ in range(heard.qsize())]
    assert [r.priority for r in rows] == [0]
    body = json.loads(rows[0].payload)["body"]
    assert body["type"] == "man_down" and body["trail"][-1][:2] == pytest.approx(list(at(0, 60)))
    assert fed.feedback[:1] == ["prompt"] and fed.feedback[-1] == "sos"
    assert [(n["type"], n.get("outcome")) for n in told] == [
        ("prompt", None),
        ("prompt_end", "alarm"),
    ]

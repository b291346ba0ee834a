"""Buttons and LED/buzzer feedback through gpiozero's mock pin factory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from agent.errors import DeviceError
from firmware_bridge.buttons import PATTERNS, Buttons
from firmware_bridge.types import ButtonPress
from tests.kits.fb import eventually, scaled_sleep

SOS, CHECKIN, LED, BUZZER = 17, 27, 22, 23


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def make(factory: MockFactory, **kw: object) -> Buttons:
    opts: dict[str, object] = {"bounce_s": None, "sleep": scaled_sleep(0.01)}
    opts.update(kw)
    return Buttons({"sos": SOS, "checkin": CHECKIN}, LED, BUZZER, factory, **opts)  # type: ignore[arg-type]


def _ons(pin: object) -> int:
    return [s.state for s in pin.states].count(True)  # type: ignore[attr-defined]


def press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


async def test_press_becomes_a_button_press(factory: MockFactory) -> None:
    async with make(factory, clock_ms=lambda: 4242) as buttons:
        presses = buttons.presses()
        press(factory, SOS)
        press(factory, CHECKIN)
        assert await anext(presses) == ButtonPress(button="sos", mono_ms=4242)
        assert await anext(presses) == ButtonPress(button="checkin", mono_ms=4242)
        assert buttons.status()["presses"] == 2


async def test_press_from_another_thread_reaches_the_loop(factory: MockFactory) -> None:
    async with make(factory) as buttons:
        t = threading.Thread(target=press, args=(factory, CHECKIN))
        t.start()
        got = await asyncio.wait_for(anext(buttons.presses()), 10)
        t.join()
        assert got.button == "checkin"


async def test_feedback_drives_led_and_buzzer_without_blocking(factory: MockFactory) -> None:
    async with make(factory) as buttons:
        led, buzzer = factory.pin(LED), factory.pin(BUZZER)
        await buttons.feedback("ok")
        assert led.state and buzzer.state  # on before feedback() returned
        await eventually(lambda: not led.state and not buzzer.state)
        await buttons.feedback("error")
        # "ok" then three "error" flashes, and dark at the end.
        await eventually(lambda: _ons(led) == 1 + 3 and not led.state and not buzzer.state)


async def test_sos_pattern_plays_to_the_end(factory: MockFactory) -> None:
    async with make(factory) as buttons:
        await buttons.feedback("sos")
        led = factory.pin(LED)
        flashes = sum(1 for on, _, _ in PATTERNS["sos"] if on)
        assert flashes == 9
        await eventually(lambda: _ons(led) == flashes and not led.state)


async def test_press_triggers_feedback_directly_in_the_press_path(factory: MockFactory) -> None:
    led = factory.pin(LED)
    async with make(factory) as buttons:
        press(factory, CHECKIN)
        await asyncio.sleep(0)  # the loop runs the handed-over callback; nobody reads presses()
        assert led.state  # "ack" is already on
        assert buttons.status()["presses"] == 1


async def test_on_press_hook_and_custom_press_feedback(factory: MockFactory) -> None:
    seen: list[str] = []
    async with make(factory, press_feedback={}, on_press=lambda p: seen.append(p.button)):
        press(factory, SOS)
        await eventually(lambda: seen == ["sos"])
        assert not factory.pin(LED).state  # no automatic feedback configured


async def test_board_without_buttons_or_outputs_runs_fine() -> None:
    async with Buttons({}) as buttons:
        await buttons.feedback("ok")
        buttons.signal("sos")
        assert buttons.status() == {
            "buttons": [],
            "led": False,
            "buzzer": False,
            "presses": 0,
            "presses_dropped": 0,
        }


async def test_presses_iterator_ends_when_closed(factory: MockFactory) -> None:
    buttons = make(factory)
    async with buttons:
        pass
    assert [p async for p in buttons.presses()] == []


async def test_queue_is_bounded_and_counts_drops(factory: MockFactory) -> None:
    async with make(factory, queue_size=2, press_feedback={}) as buttons:
        for _ in range(5):
            press(factory, SOS)
        await eventually(lambda: buttons.status()["presses"] == 5)
        assert buttons.status()["presses_dropped"] == 3


async def test_pin_that_cannot_be_claimed_is_a_device_error(factory: MockFactory) -> None:
    with pytest.raises(DeviceError):
        async with Buttons({"sos": SOS, "checkin": SOS}, pin_factory=factory):
            pass

"""Buttons (SOS, check-in, ...) in, LED/buzzer feedback out, through gpiozero.

Interface:
    async with Buttons({"sos": 17, "checkin": 27}, led_pin=22, buzzer_pin=23,
                       pin_factory=None) as buttons:
        async for press in buttons.presses():          # firmware_bridge.types.ButtonPress
            ...
        await buttons.feedback("ok" | "error" | "sos" | "ack")
        buttons.signal("ok")                           # the same, callable from sync hooks
        buttons.status() -> {"buttons": [...], "led": bool, "buzzer": bool, "presses": n,
                             "presses_dropped": n}

A board without buttons, LED or buzzer runs fine: Buttons({}) (or pins left None) creates no
GPIO device, presses() then never yields and feedback is a no-op. Pins that cannot be claimed
(wrong number, no GPIO driver) raise DeviceError from __aenter__.

Threads: gpiozero calls when_pressed from its own thread; the press is time-stamped there and
handed to the loop with call_soon_threadsafe into a bounded queue (oldest dropped and counted
when nobody reads). Feedback reaches the person without polling: signal() sets the LED and
buzzer of the pattern's first step synchronously, and a task owned by this object plays the
rest with (injectable) sleeps, so nothing blocks the loop. By default a check-in press is
acknowledged with "ack" and an SOS press with "sos" right in the press path (press_feedback),
before any consumer sees the press; the agent's own "ok"/"error" verdict follows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

from firmware_bridge.aio import Sleep, boottime_ms, cancel_task
from firmware_bridge.errors import DeviceError
from firmware_bridge.types import ButtonPress

log = logging.getLogger(__name__)

FeedbackKind = Literal["ok", "error", "sos", "ack"]
Step = tuple[bool, bool, float]  # LED on, buzzer on, hold seconds


def _morse(code: str, unit: float = 0.12) -> tuple[Step, ...]:
    steps: list[Step] = []
    for symbol in code:
        if symbol == " ":
            steps.append((False, False, 2 * unit))
        else:
            steps.append((True, True, unit if symbol == "." else 3 * unit))
            steps.append((False, False, unit))
    return tuple(steps)


PATTERNS: Mapping[str, tuple[Step, ...]] = {
    "ack": ((True, True, 0.06), (False, False, 0.0)),
    "ok": ((True, True, 0.25), (False, False, 0.0)),
    "error": ((True, True, 0.1), (False, False, 0.1)) * 3,
    "sos": _morse("... --- ..."),
}
DEFAULT_PRESS_FEEDBACK: Mapping[str, FeedbackKind] = {"checkin": "ack", "sos": "sos"}


class Buttons:
    """GPIO buttons and feedback outputs with the lifetimes of this async context."""

    def __init__(
        self,
        buttons: Mapping[str, int | str] | None = None,
        led_pin: int | str | None = None,
        buzzer_pin: int | str | None = None,
        pin_factory: Any = None,
        *,
        bounce_s: float | None = 0.05,
        press_feedback: Mapping[str, FeedbackKind] | None = None,
        on_press: Callable[[ButtonPress], None] | None = None,
        clock_ms: Callable[[], int] | None = None,
        sleep: Sleep = asyncio.sleep,
        queue_size: int = 32,
    ) -> None:
        self._pins = dict(buttons or {})
        self._led_pin = led_pin
        self._buzzer_pin = buzzer_pin
        self._factory = pin_factory
        self._bounce_s = bounce_s
        self._press_feedback = dict(
            DEFAULT_PRESS_FEEDBACK if press_feedback is None else press_feedback
        )
        self._on_press_hook = on_press
        self._clock_ms = clock_ms or boottime_ms
        self._sleep = sleep
        self._queue: asyncio.Queue[ButtonPress | None] = asyncio.Queue(maxsize=max(1, queue_size))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._devices: dict[str, Any] = {}
        self._led: Any = None
        self._buzzer: Any = None
        self._pattern: asyncio.Task[None] | None = None
        self._presses = 0
        self._dropped = 0
        # gpiozero is imported on entry (it costs ~9 MB of RSS): boards without buttons skip it.
        self._gpio_error: type[Exception] = DeviceError

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        try:
            import gpiozero
            from gpiozero.exc import GPIOZeroError
        except ImportError as exc:
            raise DeviceError(f"GPIO library gpiozero is not usable: {exc}") from exc

        self._gpio_error = GPIOZeroError
        try:
            for name, pin in self._pins.items():
                button = gpiozero.Button(
                    pin, pull_up=True, bounce_time=self._bounce_s, pin_factory=self._factory
                )
                button.when_pressed = functools.partial(self._from_gpio_thread, name)
                self._devices[name] = button
            if self._led_pin is not None:
                self._led = gpiozero.LED(self._led_pin, pin_factory=self._factory)
            if self._buzzer_pin is not None:
                self._buzzer = gpiozero.Buzzer(self._buzzer_pin, pin_factory=self._factory)
        except GPIOZeroError as exc:
            self._close_devices()
            raise DeviceError(f"GPIO setup failed: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._pattern = self._pattern, None
        try:
            await cancel_task(task)
        finally:
            self._set(False, False)
            self._close_devices()
            self._offer(None)

    async def presses(self) -> AsyncIterator[ButtonPress]:
        """Every button press; ends when the context closes."""
        while True:
            press = await self._queue.get()
            if press is None:
                return
            yield press

    async def feedback(self, kind: FeedbackKind) -> None:
        """Start a feedback pattern now (replacing a running one); returns at once."""
        self.signal(kind)

    def signal(self, kind: FeedbackKind) -> None:
        """Synchronous feedback: first step applied before returning, the rest in a task."""
        steps = PATTERNS.get(kind)
        if steps is None:
            log.warning("unknown feedback pattern %r", kind)
            return
        if self._pattern is not None:
            self._pattern.cancel()
            self._pattern = None
        led, buzzer, _ = steps[0]
        self._set(led, buzzer)
        if self._loop is not None and (self._led is not None or self._buzzer is not None):
            self._pattern = self._loop.create_task(self._play(steps), name=f"feedback:{kind}")

    def status(self) -> dict[str, Any]:
        """What is wired, and press counters."""
        return {
            "buttons": sorted(self._devices),
            "led": self._led is not None,
            "buzzer": self._buzzer is not None,
            "presses": self._presses,
            "presses_dropped": self._dropped,
        }

    async def _play(self, steps: tuple[Step, ...]) -> None:
        # Step 0 was applied by signal(); hold it, then walk the rest.
        await self._sleep(steps[0][2])
        for led, buzzer, hold in steps[1:]:
            self._set(led, buzzer)
            if hold > 0:
                await self._sleep(hold)
        self._set(False, False)

    def _set(self, led: bool, buzzer: bool) -> None:
        for device, on in ((self._led, led), (self._buzzer, buzzer)):
            if device is None:
                continue
            try:
                if on:
                    device.on()
                else:
                    device.off()
            except self._gpio_error as exc:
                log.warning("feedback output failed: %s", exc)

    def _from_gpio_thread(self, name: str) -> None:
        # Runs in gpiozero's thread: stamp the press here, process it on the loop.
        press = ButtonPress(button=name, mono_ms=self._clock_ms())
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._on_press, press)
        except RuntimeError:
            log.debug("press of %s after the event loop closed", name)

    def _on_press(self, press: ButtonPress) -> None:
        self._presses += 1
        kind = self._press_feedback.get(press.button)
        if kind is not None:
            self.signal(kind)
        if self._on_press_hook is not None:
            try:
                self._on_press_hook(press)
            except Exception:
                # A broken hook must not lose the press itself.
                log.exception("on_press hook failed")
        self._offer(press)

    def _offer(self, item: ButtonPress | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
            # Loud once: nobody is reading presses(); then quiet, the counter tells the rest.
            level = logging.WARNING if self._dropped == 1 else logging.DEBUG
            log.log(level, "button press queue full; oldest press dropped")
        self._queue.put_nowait(item)

    def _close_devices(self) -> None:
        for device in (*self._devices.values(), self._led, self._buzzer):
            if device is None:
                continue
            try:
                device.close()
            except self._gpio_error as exc:
                log.debug("closing %r: %s", device, exc)
        self._devices.clear()
        self._led = self._buzzer = None

"""Measure how long a tag tap or a button press takes to reach the LED/buzzer (target: 300 ms).

Run: .venv/bin/python bench/bench_feedback.py [--taps 20] [--presses 50] [--poll 0.2]

Tap path: PN532 simulator on a pty -> Pn532Reader (real codec, real poll interval) -> on_scan
hook -> Buttons.signal("ack") -> mock LED pin on. Measured from the moment the tag is put on
the simulated reader to the moment the LED pin is on. The tag is placed at a random phase of
the poll cycle, so the figure includes waiting for the next poll (up to poll_interval).
Press path: a gpiozero mock pin pressed from another thread -> call_soon_threadsafe -> the
press-feedback path -> LED on. Not a test: it prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time

from gpiozero.pins.mock import MockFactory

from firmware_bridge import pn532
from firmware_bridge.buttons import Buttons
from firmware_bridge.pn532_driver import Pn532Reader
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from firmware_bridge.types import ButtonPress, TagScan

LED, BUZZER, CHECKIN = 22, 23, 27
LIST = pn532.CMD_IN_LIST_PASSIVE_TARGET


def summary(name: str, samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return (
        f"{name}: n={len(ordered)} median={statistics.median(ordered):.1f} ms "
        f"p95={p95:.1f} ms max={ordered[-1]:.1f} ms"
    )


async def bench_taps(buttons: Buttons, led_pin: object, taps: int, poll_s: float) -> list[float]:
    lit_at: list[float] = []

    def on_scan(scan: TagScan) -> None:
        buttons.signal("ack")
        if led_pin.state:  # type: ignore[attr-defined]
            lit_at.append(time.perf_counter())

    results: list[float] = []
    async with (
        Pn532Simulator() as sim,
        Pn532Reader(sim.port, 115200, poll_interval_s=poll_s, on_scan=on_scan) as reader,
    ):
        await sim.wait_commands(LIST)  # configured and polling
        scans = reader.scans()
        for i in range(taps):
            await asyncio.sleep(random.uniform(0, poll_s))  # random phase of the poll cycle
            placed = time.perf_counter()
            sim.present(f"04{i:012X}")
            await anext(scans)
            results.append((lit_at[-1] - placed) * 1000)
            sim.remove()
            await sim.wait_commands(LIST, sim.commands.count(LIST) + 3)  # seen as gone
    return results


async def bench_presses(
    buttons_pin: object, lit: list[float], done: asyncio.Event, presses: int
) -> list[float]:
    results: list[float] = []
    for _ in range(presses):
        done.clear()
        pressed = time.perf_counter()
        t = threading.Thread(target=buttons_pin.drive_low)  # type: ignore[attr-defined]
        t.start()
        t.join()
        await done.wait()
        results.append((lit[-1] - pressed) * 1000)
        buttons_pin.drive_high()  # type: ignore[attr-defined]
        await asyncio.sleep(0.02)
    return results


async def main(args: argparse.Namespace) -> None:
    factory = MockFactory()
    led_pin = factory.pin(LED)
    lit: list[float] = []
    done = asyncio.Event()

    def on_press(press: ButtonPress) -> None:
        # Runs right after the press-feedback signal in the same callback.
        if led_pin.state:
            lit.append(time.perf_counter())
        done.set()

    async with Buttons(
        {"checkin": CHECKIN},
        LED,
        BUZZER,
        factory,
        bounce_s=None,
        on_press=on_press,
        queue_size=1000,
    ) as buttons:
        tap_ms = await bench_taps(buttons, led_pin, args.taps, args.poll)
        press_ms = await bench_presses(factory.pin(CHECKIN), lit, done, args.presses)
    print(f"poll interval {args.poll * 1000:.0f} ms, target 300 ms")
    print(summary("tag tap  -> LED", tap_ms))
    print(summary("press    -> LED", press_ms))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=20)
    parser.add_argument("--presses", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.2, help="PN532 poll interval, s")
    asyncio.run(main(parser.parse_args()))

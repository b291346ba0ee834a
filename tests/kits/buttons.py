"""GPIO buttons for tests: a press on one of gpiozero's mock pins."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory


def press(factory: MockFactory, pin: int) -> None:
    """A press and release of the button on `pin` (active low)."""
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()

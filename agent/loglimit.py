"""Refusal logging that cannot flood: the first refusal of an interval, then one summary line."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class RefusalLog:
    """Logs a refusal at once when none was logged this interval; counts the rest.

    The counted ones are told in one summary line when the next interval's first refusal comes
    (or at `flush()`, e.g. when the server stops): at most two lines per interval, whatever the
    request rate. No task of its own: the clock is read when a refusal happens.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval_s: float = 60.0,
        *,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._interval = interval_s
        self._now = now
        self._window_end: float | None = None
        self._held: Counter[str] = Counter()

    def refused(self, status: int, peer: object, reason: str) -> None:
        """One refused request: logged now, or counted for the summary."""
        t = self._now()
        if self._window_end is not None and t < self._window_end:
            self._held[f"{status} {reason}"] += 1
            return
        self.flush()
        self._window_end = t + self._interval
        self._log.warning("%s refused %s from %s: %s", self._what, status, peer, reason)

    def flush(self) -> None:
        """Log the summary of the refusals counted since the last line, if any."""
        if self._held:
            total = sum(self._held.values())
            top = ", ".join(f"{n} x {k}" for k, n in self._held.most_common(5))
            self._log.warning(
                "%s refused %d more requests in the last %.0f s: %s",
                self._what,
                total,
                self._interval,
                top,
            )
            self._held.clear()

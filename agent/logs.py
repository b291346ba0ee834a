"""Log output: JSON lines for log shippers, and refusal logging that cannot flood."""

from __future__ import annotations

import json
import logging
import sys
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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, device id (and exc)."""

    def __init__(self, device_id: str | None = None) -> None:
        super().__init__()
        self.device_id = device_id

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "device": self.device_id,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


# Log record times in UTC, as the "Z" says.
JsonFormatter.converter = time.gmtime


def use_json_logs(device_id: str | None) -> None:
    """Switch the root logger's output to JSON lines on stdout (replacing its handlers)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(device_id))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)

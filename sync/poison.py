"""Pure: per-message failure memory (refused by PUBACK, in flight at a drop) and what follows."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """What happens to a message after a failure."""

    RETRY = "retry"  # held for a while, then sent again
    STUCK = "stuck"  # priority 0-1 past the bound: kept, retried on the slow schedule
    SET_ASIDE = "set_aside"  # priority >= 2 past the bound: removed with a `notice`


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing message is tried before it counts as poison."""

    max_attempts: int = 3
    base_s: float = 2.0  # hold after the first failure; doubles after each further one
    slow_s: float = 300.0  # the slow schedule of stuck priority 0-1 messages

    def decide(self, strikes: int, priority: int) -> tuple[Verdict, float]:
        """Verdict and hold (seconds) after the `strikes`-th failure of a message."""
        if strikes < self.max_attempts:
            return Verdict.RETRY, self.base_s * 2 ** max(0, strikes - 1)
        if priority <= 1:
            return Verdict.STUCK, self.slow_s
        return Verdict.SET_ASIDE, 0.0


@dataclass(slots=True)
class Strikes:
    """Failure memory for one agent run, keyed by outbox rowid; times are passed in."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    strikes: dict[int, int] = field(default_factory=dict)
    suspects: set[int] = field(default_factory=set)  # in flight at a drop among others
    holds: dict[int, tuple[float, int]] = field(default_factory=dict)  # rowid -> (until, prio)
    stuck: set[int] = field(default_factory=set)
    set_aside: int = 0  # how many messages were set aside in this run

    def failed(self, rowid: int, priority: int, now: float) -> Verdict:
        """A PUBACK refused it, or the link dropped while it was alone in flight."""
        count = self.strikes.get(rowid, 0) + 1
        self.strikes[rowid] = count
        self.suspects.discard(rowid)
        verdict, hold = self.policy.decide(count, priority)
        if verdict is Verdict.SET_ASIDE:
            self.forget(rowid)
            self.set_aside += 1
        else:
            self.holds[rowid] = (now + hold, priority)
            if verdict is Verdict.STUCK:
                self.stuck.add(rowid)
        return verdict

    def dropped(self, rowids: list[int], priorities: list[int], now: float) -> list[Verdict]:
        """The link dropped with these in flight: alone, it is a failure; else all are suspects."""
        if len(rowids) == 1:
            verdict = self.failed(rowids[0], priorities[0], now)
            if verdict is Verdict.RETRY:
                # The reconnect backoff spaced it already; it goes alone again, first.
                self.holds.pop(rowids[0], None)
                self.suspects.add(rowids[0])
            return [verdict]
        self.suspects.update(rowids)
        return []

    def acked(self, rowid: int) -> None:
        """The broker took it: no more suspicion."""
        self.forget(rowid)

    def forget(self, rowid: int) -> None:
        """The row is gone (acked or set aside)."""
        self.strikes.pop(rowid, None)
        self.suspects.discard(rowid)
        self.holds.pop(rowid, None)
        self.stuck.discard(rowid)

    def held(self, rowid: int) -> bool:
        """Whether the row waits for its hold to pass."""
        return rowid in self.holds

    def release(self, now: float) -> list[tuple[int, int]]:
        """(priority, rowid) of rows whose hold has passed (they may be sent again)."""
        due = [r for r, (until, _) in self.holds.items() if until <= now]
        return [(self.holds.pop(r)[1], r) for r in due]

    def new_session(self) -> None:
        """A new session (maybe another broker): stuck messages get one try at once."""
        for rowid in self.stuck:
            self.holds.pop(rowid, None)

    def next_release(self) -> float | None:
        """When the earliest hold passes, or None."""
        return min((until for until, _ in self.holds.values()), default=None)


def oversize(strikes: Strikes, rowid: int, priority: int, now: float) -> Verdict:
    """A message bigger than the broker's Maximum Packet Size: never sent as it is."""
    if priority <= 1:
        strikes.holds[rowid] = (now + strikes.policy.slow_s, priority)
        strikes.stuck.add(rowid)
        return Verdict.STUCK
    strikes.forget(rowid)
    strikes.set_aside += 1
    return Verdict.SET_ASIDE


def aside_notice(
    topic: str, payload: bytes, group: str | None, reason: str, typ: str = "message_set_aside"
) -> dict[str, object]:
    """The §4 `notice` naming a message set aside (removed), or stuck (`message_stuck`, kept)."""
    parts = topic.split("/")
    kind = "media_chunk" if len(parts) > 3 and parts[3] == "media" else parts[-1]
    msg_id: object = None
    seq: object = None
    if kind != "media_chunk":
        try:
            env = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            env = None
        if isinstance(env, dict):
            msg_id, seq = env.get("id"), env.get("seq")
    return {
        "type": typ,
        "reason": reason,
        "kind": kind,
        "id": msg_id,
        "seq": seq,
        "media_id": group,
        "bytes": len(payload),
    }

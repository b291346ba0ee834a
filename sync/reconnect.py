"""Pure reconnect state machine (no clock, no sleep); the backoff policy is passed in."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace
from typing import Protocol

STABLE_S = 60.0  # a session up this long counts as healthy: the backoff starts again small


class LinkState(enum.Enum):
    """Where the MQTT session is."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    CLOSED = "closed"


class DelayPolicy(Protocol):
    """The wait before retry number `attempt` (the agent passes firmware_bridge's Backoff)."""

    def delay(self, attempt: int, rng: random.Random, /) -> float: ...


@dataclass(frozen=True, slots=True)
class Reconnect:
    """State plus failed-attempt count; every transition returns a new value."""

    state: LinkState = LinkState.IDLE
    failures: int = 0

    def connecting(self) -> Reconnect:
        """A CONNECT attempt starts."""
        self._require(LinkState.IDLE, LinkState.BACKOFF)
        return replace(self, state=LinkState.CONNECTING)

    def connected(self) -> Reconnect:
        """CONNACK accepted. The failure count stays: a broker that accepts and then drops
        every session must not get a reconnect storm (see `stable`)."""
        self._require(LinkState.CONNECTING)
        return replace(self, state=LinkState.CONNECTED)

    def stable(self) -> Reconnect:
        """The session has stayed up for STABLE_S: now the failure count resets."""
        if self.state is not LinkState.CONNECTED:
            return self
        return replace(self, failures=0)

    def failed(self) -> Reconnect:
        """The attempt or the live session failed: back off."""
        self._require(LinkState.CONNECTING, LinkState.CONNECTED)
        return Reconnect(LinkState.BACKOFF, self.failures + 1)

    def closed(self) -> Reconnect:
        """Shutdown: no more attempts."""
        return Reconnect(LinkState.CLOSED, self.failures)

    def _require(self, *states: LinkState) -> None:
        if self.state not in states:
            raise ValueError(f"invalid transition from {self.state.value}")

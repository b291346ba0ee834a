"""What the companion server is given, as Protocols: the patrol it drives and the outbox it reads.

The role (agent/patrol/role.py) passes the real ones; tests pass small fakes of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from agent.patrol.companion.delivery import Acked
from agent.patrol.notices import Notices
from firmware_bridge.types import Fix
from sync.messages import Stored


class SafetyPage(Protocol):
    """The device's safety checks as the page uses them (agent/patrol/safety.py)."""

    async def answer(self, by: str) -> bool: ...
    def view(self) -> dict[str, Any] | None: ...


class PatrolPage(Protocol):
    """What the page drives: the patrol driver (agent/patrol/driver.py)."""

    notices: Notices

    @property
    def safety(self) -> SafetyPage: ...

    async def incident(
        self, *, category: str, level: int, note: str, photo: bool, images: list[bytes]
    ) -> Stored: ...
    async def sos(self, *, note: str) -> Stored: ...
    async def manual_checkin(self) -> dict[str, Any]: ...
    def status(self) -> Mapping[str, Any]: ...
    def tasks_view(self) -> Mapping[str, Any]: ...
    def current_fix(self) -> tuple[Fix | None, float | None]: ...


class Waiting(Acked, Protocol):
    """What is not yet sent: the agent's outbox (sync.outbox.Outbox)."""

    depth: int
    bytes: int

    async def oldest_ms(self) -> int | None: ...

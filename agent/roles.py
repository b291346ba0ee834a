"""The seam between the agent (sync stack, documents, status) and the one role it runs.

The agent gives a role a `RoleContext` (what it may use) and gets back a `Role` (what it
offers); neither reaches into the other's attributes. `agent.runtime.agent` picks the
role from `device.role` and imports only that role's code (OpenCV only on a gateway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.events import EventSink
from firmware_bridge.aio import Spawn

if TYPE_CHECKING:
    from agent.clock import SystemClock
    from agent.config.model import Config
    from sync.outbox import Outbox


@dataclass(frozen=True, slots=True)
class RoleContext:
    """What a role may use of the running agent, and nothing more."""

    cfg: Config
    outbox: Outbox  # depth and media chunks; events go through `events`
    events: EventSink  # the one way into the outbox for events
    clock: SystemClock
    mode: Callable[[], str]  # name of the effective work mode now
    tasks: Mapping[str, Any] | None  # the tasks document applied before this start
    spawn: Spawn  # run a loop under the agent's supervisor (named, restarted when it crashes)
    spawn_once: Spawn  # a loop that must not be restarted: its crash stops the agent
    spawn_part: Spawn  # one part's loop (a camera's): restarted, then given up, agent runs on
    stop: Callable[[], None]  # a failure the role cannot live with: stop the agent (exit 1)
    online: Callable[[], bool] = lambda: False  # a broker session is up now (the page shows it)


class Role(Protocol):
    """What the agent asks of its role: status, health, tasks and the `snapshot` command."""

    name: str

    def status(self) -> Mapping[str, Any]:
        """Sections added to the §8 status body (counters, cameras, patrol progress)."""
        ...

    def gps(self) -> Mapping[str, Any] | None:
        """The §8 `gps` section, or None without a receiver."""
        ...

    def device_checks(self) -> dict[str, str | None]:
        """Each configured part and its problem now (None: working); judged by health windows."""
        ...

    def progress(self) -> Mapping[str, int] | None:
        """Checkpoints done/missed/total over the task set (`reported.progress`); None: no tasks."""
        ...

    def tasks_applied(self, record: Mapping[str, Any]) -> Awaitable[None]:
        """A tasks document was stored (§6): run it; done when the awaitable is (then acked)."""
        ...

    def snapshot(self, args: Mapping[str, Any]) -> Awaitable[None]:
        """`cmd snapshot`: store a photo named by a `snapshot` notice; DeviceError if it cannot."""
        ...

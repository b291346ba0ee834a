"""What the agent tells central about itself: the §5 birth, the retained `reported` (§6, with
its problems and progress) and the ephemeral §8 status. The parts it reads are passed in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import __version__
from agent.clock import SystemClock
from agent.config.model import Config
from agent.documents.mode_control import ModeControl
from agent.errors import LinkError, StoreError
from agent.events import Events
from agent.roles import Role
from agent.runtime.status import status_body
from agent.runtime.supervisor import Supervisor
from firmware_bridge import board
from sync import envelope
from sync.link import MqttLink
from sync.outbox import Outbox
from sync.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass
class Reporting:
    """Birth, `reported` and status of one agent; `status_now` asks for a status at once."""

    cfg: Config
    clock: SystemClock
    link: MqttLink
    modes: ModeControl
    outbox: Outbox
    publisher: Publisher
    events: Events
    supervisor: Supervisor
    role: Callable[[], Role | None]
    config_ver: Callable[[], int | None]
    tasks_ver: Callable[[], int | None]
    rolled_back: Callable[[], str | None]  # why the last config was rolled back, until a commit
    health_every_s: float
    started: float = field(default_factory=time.monotonic)
    status_now: asyncio.Event = field(default_factory=asyncio.Event)
    _reported: tuple[object, ...] = ()

    def birth(self, bdseq: int) -> bytes:
        """The §5 birth payload for `bdseq`."""
        return envelope.birth(
            bdseq=bdseq,
            boot=self.clock.boot,
            ts=self.clock.stamp().ts,
            agent=__version__,
            role=self.cfg.device.role,
            config_ver=self.config_ver(),
            tasks_ver=self.tasks_ver(),
            mode=self.modes.current.name,
            zones=list(self.cfg.device.zones),
        )

    def device_problems(self) -> dict[str, str | None]:
        """Each configured part and each crashed loop with its problem now (None: fine)."""
        role = self.role()
        checks = role.device_checks() if role is not None else {}
        return {**checks, **self.supervisor.problems()}

    def problems(self) -> list[str]:
        """`reported.problems`: each failing part or loop, and a rolled-back config, for people."""
        out = [
            # "gps" + "GPS port ... is not open" reads as one; "camera cam-2" + "state failed" not
            why if why.lower().startswith(name.split()[0].lower()) else f"{name}: {why}"
            for name, why in sorted(self.device_problems().items())
            if why
        ]
        rolled_back = self.rolled_back()
        if rolled_back is not None:
            out.append(rolled_back)
        return out

    def publish_reported(self, force: bool = False) -> None:
        """Publish `reported` (retained) when subscribed and changed; `force` on (re)birth.

        Never before the SUBACK: a `reported` that follows a birth tells central the device now
        hears its documents and commands (docs/protocol.md).
        """
        session = self.link.session
        if session is None or not self.link.ready:
            return
        problems = self.problems()
        role = self.role()
        progress = role.progress() if role is not None else None
        config_ver, tasks_ver = self.config_ver(), self.tasks_ver()
        what = (config_ver, tasks_ver, self.modes.current, problems, progress)
        if what == self._reported and not force:
            return
        self._reported = what
        payload = envelope.reported(
            config_ver=config_ver,
            tasks_ver=tasks_ver,
            mode=self.modes.current.reported(),
            ts=self.clock.stamp().ts,
            problems=problems,
            progress=progress,
        )
        try:
            session.publish(envelope.topic(self.cfg.device.id, "reported"), payload, 1, True)
        except LinkError as exc:
            # The session just closed; `reported` goes out again on the next connect.
            log.info("reported not sent: %s", exc)
            self._reported = ()

    async def status_body(self) -> dict[str, Any]:
        """The §8 status body now."""
        role = self.role()
        extra: dict[str, Any] = dict(role.status()) if role is not None else {}
        extra["loops"] = self.supervisor.status()
        extra["stored"] = dict(self.events.counts.by_kind)  # events stored since start, by kind
        # Broker limits, backoff, set-aside and stuck messages, for central to see.
        extra["link"] = {**self.link.status(), **self.publisher.status()}
        try:
            oldest = await self.outbox.oldest_ms()
        except StoreError:
            oldest = None
        return status_body(
            ts=self.clock.stamp().ts,
            mode=self.modes.current.name,
            config_ver=self.config_ver(),
            uptime_s=int(time.monotonic() - self.started),
            outbox={
                "depth": self.outbox.depth,
                "bytes": self.outbox.bytes,
                "oldest_ms": oldest,
                "media_refused": self.outbox.media_refused,
            },
            gps=role.gps() if role is not None else None,
            disk_free=board.disk_free_mb(self.cfg.device.state_dir),
            cpu_temp=board.cpu_temp_c(),
            batt=board.batt_pct(),
            extra=extra,
        )

    async def status_loop(self) -> None:
        """Every mode's status interval, or at once when asked: the §8 status (never stored)."""
        while True:
            interval = self.cfg.modes.profile(self.modes.current.name).status_interval_s
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a stop's cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.status_now.wait()
            self.status_now.clear()
            session = self.link.session
            if session is None:
                continue  # status is ephemeral: never stored while offline (§2, §8)
            body = await self.status_body()
            try:
                topic = envelope.topic(self.cfg.device.id, "status")
                session.publish(topic, envelope.dumps(body), 0, False)
            except LinkError as exc:
                log.info("status not sent (ephemeral, not kept): %s", exc)

    async def health_loop(self) -> None:
        """Read the parts' checks at a steady pace; `reported` goes out when they changed."""
        # The parts have no "broken" event to wait for (a serial port just stops reading), so
        # their checks are read at a steady pace; `reported` goes out only when it changed.
        while True:
            await asyncio.sleep(self.health_every_s)
            self.publish_reported()

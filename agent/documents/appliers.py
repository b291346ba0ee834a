"""The §6 appliers for tasks, mode, cmd and config documents, and the config's health window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.config.model import Config
from agent.documents.mode_control import ModeControl
from agent.documents.remote_config import ConfigStore, Staged, blame, config_ack, health_problems
from agent.documents.state import DocState
from agent.errors import DeviceError
from agent.modes import ModeDoc, validate_mode_body
from agent.roles import Role
from sync.downlink import DEFERRED, Applier
from sync.verify import Document

log = logging.getLogger(__name__)

# The argument names each action takes (all text); anything else is refused, never ignored.
CMD_ARGS: dict[str, tuple[str, ...]] = {
    "rebirth": (),
    "status_now": (),
    "snapshot": ("camera_id",),
}
CMD_ACTIONS = tuple(CMD_ARGS)


def validate_cmd_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Check a §6 cmd body: a known action and only the argument names it takes."""
    if set(body) - {"action", "args"}:
        raise ValueError("cmd body takes only action and args")
    action = body.get("action")
    if action not in CMD_ARGS:
        raise ValueError(f"action must be one of {', '.join(CMD_ACTIONS)}")
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise ValueError("args must be an object")
    allowed = CMD_ARGS[action]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) or "no arguments"
        raise ValueError(f"{action}: unknown argument {', '.join(unknown)} (takes {takes})")
    bad = sorted(name for name, value in args.items() if not isinstance(value, str) or not value)
    if bad:
        raise ValueError(f"{action}: {', '.join(bad)} must be non-empty text")
    return {"action": action, "args": args}


@dataclass(frozen=True, slots=True)
class SessionOps:
    """What the appliers do to the live session and the status loop."""

    rebirth: Callable[[], None]  # birth + reported again, same bdseq (cmd rebirth)
    status_now: Callable[[], None]  # the status loop publishes at once
    publish_reported: Callable[[], None]  # `reported` if changed
    connected_once: Callable[[], bool]  # a broker session came up since this start


@dataclass(frozen=True, slots=True)
class ConfigSwitch:
    """What a staged config needs: where it is kept, how to restart, what to do on commit."""

    dev: str
    store: ConfigStore
    staged: Callable[[], Staged | None]  # the config in its health window, if this agent runs one
    restarting: Callable[[], bool]  # a switch to another config is under way
    restart: Callable[[], None]  # stop with outcome "restart": run() builds the new agent
    rotate_keys: Callable[[], None]  # the running config's [trust] keys take over
    committed: Callable[[], None]  # the staged config passed: it is now the last-known-good
    local: Config  # the local file (its fingerprint is kept with a committed document)
    window_s: float


class Appliers:
    """Applies verified documents: None (applied), DEFERRED or an ack reason."""

    def __init__(
        self,
        *,
        state: DocState,
        modes: Callable[[], ModeControl],
        role: Callable[[], Role | None],
        store_ack: Callable[[dict[str, Any]], Awaitable[object]],
        session: SessionOps,
        switch: ConfigSwitch,
        problems: Callable[[], dict[str, str | None]],
    ) -> None:
        self._state = state
        self._modes = modes
        self._role = role
        self._store_ack = store_ack
        self._session = session
        self._switch = switch
        self._problems = problems  # device checks (role parts, supervised loops) now

    def table(self) -> dict[str, Applier]:
        """The appliers by document type, for the Downlink."""
        return {"tasks": self.tasks, "mode": self.mode, "cmd": self.cmd, "config": self.config}

    def _running_role(self) -> Role:
        """The role; documents are applied only once it runs (the Downlink is held till then)."""
        role = self._role()
        if role is None:
            # The start-up order broke: refuse loudly rather than ack what nothing runs.
            raise DeviceError("the role is not running yet")
        return role

    async def tasks(self, doc: Document) -> str | None:
        """Store the tasks document, then hand it to the role; applied once the role runs it."""
        role = self._running_role()
        record = {"id": doc.id, "ver": doc.ver, "iat": doc.iat, "body": dict(doc.body)}
        try:
            await asyncio.to_thread(self._state.set_tasks, record)
        except OSError as exc:
            log.error("could not store tasks ver %d: %s", doc.ver, exc)
            return "apply_failed"
        await role.tasks_applied(record)
        return None

    async def config(self, doc: Document) -> str | None:
        """Stage the config and restart with it; acked after its health window (DEFERRED)."""
        sw = self._switch
        if sw.restarting():
            log.warning("config ver %d refused: a switch to another config is under way", doc.ver)
            return "apply_failed"
        staged = sw.staged()
        if staged is not None:
            if staged.doc_id == doc.id:
                return DEFERRED  # the same document again while its window runs
            log.warning(
                "config ver %d refused: ver %d is still in its health window", doc.ver, staged.ver
            )
            return "apply_failed"
        # What fails already is not the new config's fault (the health window compares).
        before = health_problems(connected=True, devices=self._problems())
        try:
            await asyncio.to_thread(sw.store.stage, doc.id, doc.ver, dict(doc.body), before)
        except OSError as exc:
            log.error("could not stage config ver %d: %s", doc.ver, exc)
            return "apply_failed"
        log.info("config ver %d staged; restarting the agent with it", doc.ver)
        sw.restart()
        return DEFERRED

    async def health_window(self, staged: Staged) -> None:
        """After the window: ack `applied` and commit, or ack `rolled_back` and restart."""
        sw = self._switch
        await asyncio.sleep(sw.window_s)
        now = health_problems(connected=self._session.connected_once(), devices=self._problems())
        problems = blame(staged.before, now)
        if now and not problems:
            log.warning(
                "config ver %d: still failing as before the switch (not its fault): %s",
                staged.ver,
                "; ".join(f"{k}: {v}" for k, v in now.items()),
            )
        # Ack and version first, the switch last: a crash in between re-runs the window (the
        # document stays pending) and at worst acks twice, never leaves it un-acked.
        status, reason = ("rolled_back", "health_failed") if problems else ("applied", None)
        if not problems:
            # Rotated keys take effect with the apply: before the ack can reach anyone.
            sw.rotate_keys()
        detail = "; ".join(problems) or None
        await self._store_ack(config_ack(staged.doc_id, staged.ver, status, reason, detail))
        await asyncio.to_thread(
            self._state.applied, "config", f"dev:{sw.dev}", staged.ver, staged.doc_id
        )
        if problems:
            log.error(
                "config ver %d failed its health window: %s; rolling back",
                staged.ver,
                "; ".join(problems),
            )
            await asyncio.to_thread(sw.store.drop, f"health_failed: {detail}")
            sw.restart()
            return
        await asyncio.to_thread(sw.store.commit, staged, sw.local)
        sw.committed()
        log.info("config ver %d applied", staged.ver)
        self._session.publish_reported()

    async def mode(self, doc: Document) -> str | None:
        """Apply a mode document (stored by ModeControl)."""
        body = validate_mode_body(doc.body)
        mdoc = ModeDoc(doc.target.key, body["mode"], doc.ver, doc.exp, body["reason"])
        try:
            self._modes().apply(mdoc)
        except OSError as exc:
            log.error("could not store mode ver %d: %s", doc.ver, exc)
            return "apply_failed"
        return None

    async def cmd(self, doc: Document) -> str | None:
        """Run a command: rebirth, status_now or snapshot (apply_failed without a camera)."""
        action = doc.body["action"]
        log.info("command %s (ver %d)", action, doc.ver)
        if action == "rebirth":
            self._session.rebirth()
        elif action == "status_now":
            self._session.status_now()
        elif action == "snapshot":
            # A DeviceError (no camera, no frame within the bound) is acked apply_failed with
            # its text as the detail.
            await self._running_role().snapshot(doc.body.get("args", {}))
        return None

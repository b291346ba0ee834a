"""The §6 appliers for tasks, mode, cmd and config documents, and the config's health window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agent.errors import DeviceError
from agent.modes import ModeDoc, validate_mode_body
from agent.ota import Staged, blame, config_ack, health_problems
from sync import envelope
from sync.downlink import DEFERRED, Applier
from sync.verify import Document

if TYPE_CHECKING:
    from agent.app import Agent

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


class Appliers:
    """Applies verified documents to `agent`: None (applied), DEFERRED or an ack reason."""

    def __init__(
        self,
        agent: Agent,
        *,
        status_now: asyncio.Event,
        restart: Callable[[], None],
        rotate_keys: Callable[[], None],
    ) -> None:
        self._agent = agent
        self._status_now = status_now  # set: the status loop publishes at once
        self._restart = restart  # the agent stops with outcome "restart" (new config)
        self._rotate_keys = rotate_keys  # the running config's [trust] keys take over

    def table(self) -> dict[str, Applier]:
        """The appliers by document type, for the Downlink."""
        return {"tasks": self.tasks, "mode": self.mode, "cmd": self.cmd, "config": self.config}

    async def tasks(self, doc: Document) -> str | None:
        """Store the tasks document, then tell the listeners (the patrol driver)."""
        agent = self._agent
        record = {"id": doc.id, "ver": doc.ver, "iat": doc.iat, "body": dict(doc.body)}
        try:
            await asyncio.to_thread(agent.state.set_tasks, record)
        except OSError as exc:
            log.error("could not store tasks ver %d: %s", doc.ver, exc)
            return "apply_failed"
        for listener in agent.tasks_listeners:
            listener(record)
        return None

    async def config(self, doc: Document) -> str | None:
        """Stage the config and restart with it; acked after its health window (DEFERRED)."""
        agent = self._agent
        if agent.outcome == "restart":
            log.warning("config ver %d refused: a switch to another config is under way", doc.ver)
            return "apply_failed"
        staged = agent.ota.staged
        if staged is not None:
            if staged.doc_id == doc.id:
                return DEFERRED  # the same document again while its window runs
            log.warning(
                "config ver %d refused: ver %d is still in its health window", doc.ver, staged.ver
            )
            return "apply_failed"
        # What fails already is not the new config's fault (the health window compares).
        before = health_problems(connected=True, devices=self._device_checks())
        try:
            await asyncio.to_thread(agent.ota.store.stage, doc.id, doc.ver, dict(doc.body), before)
        except OSError as exc:
            log.error("could not stage config ver %d: %s", doc.ver, exc)
            return "apply_failed"
        log.info("config ver %d staged; restarting the agent with it", doc.ver)
        self._restart()
        return DEFERRED

    async def health_window(self, staged: Staged) -> None:
        """After the window: ack `applied` and commit, or ack `rolled_back` and restart."""
        agent = self._agent
        await asyncio.sleep(agent.cfg.sync.config_health_window_s)
        now = health_problems(connected=agent.link.connects > 0, devices=self._device_checks())
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
            self._rotate_keys()
        detail = "; ".join(problems) or None
        await agent.outbox.append(
            "ack", config_ack(staged.doc_id, staged.ver, status, reason, detail)
        )
        await asyncio.to_thread(
            agent.state.applied, "config", f"dev:{agent.cfg.device.id}", staged.ver, staged.doc_id
        )
        if problems:
            log.error(
                "config ver %d failed its health window: %s; rolling back",
                staged.ver,
                "; ".join(problems),
            )
            await asyncio.to_thread(agent.ota.store.drop)
            self._restart()
            return
        await asyncio.to_thread(agent.ota.store.commit, staged, agent.ota.local)
        agent.ota = replace(agent.ota, staged=None, lkg=agent.cfg)
        log.info("config ver %d applied", staged.ver)
        agent.publish_reported()

    def _device_checks(self) -> dict[str, str | None]:
        return {name: check() for name, check in self._agent.device_checks.items()}

    async def mode(self, doc: Document) -> str | None:
        """Apply a mode document (stored by ModeControl)."""
        body = validate_mode_body(doc.body)
        mdoc = ModeDoc(doc.target.key, body["mode"], doc.ver, doc.exp, body["reason"])
        try:
            self._agent.modes.apply(mdoc)
        except OSError as exc:
            log.error("could not store mode ver %d: %s", doc.ver, exc)
            return "apply_failed"
        return None

    async def cmd(self, doc: Document) -> str | None:
        """Run a command: rebirth, status_now or snapshot (apply_failed without a camera)."""
        agent = self._agent
        action = doc.body["action"]
        log.info("command %s (ver %d)", action, doc.ver)
        if action == "rebirth":
            session = agent.link.session
            if session is not None:
                topic = envelope.topic(agent.cfg.device.id, "state")
                session.publish(topic, agent.birth(session.bdseq), 1, True)
                agent.publish_reported(force=True)
        elif action == "status_now":
            self._status_now.set()
        elif action == "snapshot":
            if agent.snapshot is None:
                # Raised, not returned: the downlink acks apply_failed with this as the detail.
                raise DeviceError("snapshot failed: this device has no working camera")
            await agent.snapshot(doc.body.get("args", {}))
        return None

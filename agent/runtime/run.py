"""The supervisor loop: runs the Agent, rebuilds it on a config switch, handles signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from agent import __version__
from agent.config.model import Config
from agent.documents.remote_config import (
    MAX_STARTS_WHILE_PENDING,
    ConfigStore,
    OtaContext,
    Staged,
    config_ack,
    describe,
)
from agent.documents.state import DocState
from agent.runtime.agent import Agent
from agent.runtime.memory import trim_heap
from agent.runtime.systemd import agent_watchdog

log = logging.getLogger(__name__)


def _give_up(store: ConfigStore, local: Config, staged: Staged, why: str) -> dict[str, Any]:
    """Roll back a staged config that cannot run; remember its ver; return its ack."""
    DocState(local.device.state_dir).applied(
        "config", f"dev:{local.device.id}", staged.ver, staged.doc_id
    )
    store.drop(f"apply_failed: {why}")
    return config_ack(staged.doc_id, staged.ver, "rolled_back", "apply_failed", why)


async def run(local: Config, source: str = "(given)") -> int:
    """Run until SIGTERM/SIGINT, rebuilding the agent on a config switch; the exit code."""
    loop = asyncio.get_running_loop()
    store = ConfigStore(local.device.state_dir)
    acks: list[dict[str, Any]] = []
    while True:
        cfg, staged, lkg = store.effective(local)
        if staged is not None and (staged.starts >= MAX_STARTS_WHILE_PENDING or cfg is lkg):
            log.error("config ver %d cannot run; back to the last-known-good", staged.ver)
            why = "agent restarted too often" if cfg is not lkg else "invalid with the local file"
            acks.append(_give_up(store, local, staged, why))
            cfg, staged = lkg, None
        elif staged is not None:
            staged = store.started(staged)
        ota = OtaContext(store, local, staged, lkg, tuple(acks))
        try:
            # systemd: READY=1 once outbox and link are up, then WATCHDOG=1/STATUS=.
            async with Agent(cfg, ota=ota) as agent, agent_watchdog(agent):
                acks = []
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, agent.stop)
                log.info(
                    "edge-agent %s running as %s (%s): %s",
                    __version__,
                    cfg.device.id,
                    cfg.device.role,
                    describe(source, agent.config_ver, staged),
                )
                trim_heap()  # what start-up freed goes back to the system (issue 22)
                await agent.wait()
                log.info("shutting down (%s)", agent.outcome)
        except Exception as exc:
            # The supervisor's one broad catch: a staged config that cannot even start.
            if staged is None:
                raise
            log.exception("agent failed to start with config ver %d; rolling back", staged.ver)
            acks.append(_give_up(store, local, staged, f"agent failed to start: {exc}"))
            continue
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if agent.outcome == "stop":
            return 0
        if agent.outcome == "crash":
            return 1

"""Remote config (OTA) for agent tests: the document topic and body, its acks, a running agent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.config.model import Config
from agent.demo.broker import Broker
from agent.runtime.run import run
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher

CONFIG_TOPIC = f"grid/v1/{DEV}/desired/config"


def body_of(cfg: Config, **changes: Any) -> dict[str, Any]:
    """The remote part of `cfg` as a document body, with section changes applied."""
    data = cfg.model_dump(mode="json")
    data["device"].pop("id")
    data["device"].pop("state_dir")
    for key in ("username", "password_file", "ca_file", "cert_file", "key_file"):
        data["broker"].pop(key)
    for section, values in changes.items():
        data[section] = {**(data.get(section) or {}), **values}
    return data


def acks(w: Watcher) -> list[dict[str, Any]]:
    """The bodies of the config acks the watcher saw, in order."""
    return [e["body"] for e in w.events("/ack") if e["body"]["typ"] == "config"]


async def start_run(cfg: Config, w: Watcher | None = None) -> asyncio.Task[int]:
    """Start the supervisor; with a watcher, return once the device is online (subscribed)."""
    seen = len(w.on(f"grid/v1/{DEV}/reported")) if w else 0
    task = asyncio.create_task(run(cfg), name="agent-run")
    if w is not None:
        # `reported` goes out only after the SUBACK (docs/protocol.md): the device now listens.
        await wait_until(lambda: len(w.on(f"grid/v1/{DEV}/reported")) > seen, what="reported")
    return task


async def stop_run(task: asyncio.Task[int]) -> None:
    """Cancel a run started by `start_run` and wait until it has ended."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def local_config(tmp_path: Path, broker: Broker, key: OpsKey, **extra: Any) -> Config:
    """The local config file's content: a 1 s health window for remote configs."""
    return make_config(
        tmp_path / "state", broker.port, key, sync={"config_health_window_s": 1.0}, **extra
    )

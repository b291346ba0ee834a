"""systemd notifications (sd_notify): READY=1, STATUS= lines, and a watchdog fed only while healthy.

A datagram to $NOTIFY_SOCKET is the whole protocol (sd_notify(3)); ~20 lines here avoid a
dependency. Without $NOTIFY_SOCKET (not under systemd, tests, the demo) everything is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from agent.lang import Lang, pick
from firmware_bridge.aio import cancel_task

log = logging.getLogger(__name__)

# STATUS= is refreshed this often when systemd set no watchdog.
STATUS_EVERY_S = 5.0


def notify_address(env: Mapping[str, str]) -> str | bytes | None:
    """$NOTIFY_SOCKET as a socket address: a path, or an abstract name for a leading '@'."""
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when the watchdog is on and meant for `pid`."""
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None  # set for another process (we were started by a wrapper)
    return int(usec) / 2_000_000


class Notifier:
    """Sends sd_notify datagrams; a failed send is logged, never raised (systemd may be gone)."""

    def __init__(self, address: str | bytes | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._sock is not None

    def send(self, *lines: str) -> None:
        """One datagram of `KEY=value` lines."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", lines[0].split("=", 1)[0], exc)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """`async with Watchdog(health, status)`: READY=1 on entry, then WATCHDOG=1 every half
    WATCHDOG_USEC from the event loop while `health()` is true, and STATUS=`status()` on change.

    A blocked loop cannot send, and an unhealthy agent does not: systemd then kills and restarts
    the process (WatchdogSec= with Restart=on-failure).
    """

    def __init__(
        self,
        health: Callable[[], bool],
        status: Callable[[], str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._health = health
        self._status = status
        self._notifier = Notifier(notify_address(env))
        self._interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        self._task: asyncio.Task[None] | None = None
        self._last_status = ""
        self._healthy = True

    async def __aenter__(self) -> Watchdog:
        if not self._notifier.enabled:
            return self
        self._send_status(force=True)
        self._notifier.send("READY=1")
        self._task = asyncio.create_task(self._run(), name="systemd-watchdog")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            # cancel_task: our own cancellation (a stop meanwhile) still propagates.
            await cancel_task(self._task)
            self._task = None
        self._notifier.close()

    def _send_status(self, force: bool = False) -> None:
        if self._status is None:
            return
        text = self._status().replace("\n", " ")
        if force or text != self._last_status:
            self._last_status = text
            self._notifier.send(f"STATUS={text}")

    async def _run(self) -> None:
        every = self._interval or STATUS_EVERY_S
        while True:
            healthy = self._health()
            if healthy and self._interval is not None:
                self._notifier.send("WATCHDOG=1")
            if healthy != self._healthy:
                self._healthy = healthy
                if healthy:
                    log.info("supervised tasks healthy again; watchdog pings resume")
                else:
                    log.error("a supervised task is not running; watchdog pings withheld")
            self._send_status()
            await asyncio.sleep(every)


def critical_tasks(agent: Any) -> dict[str, asyncio.Task[Any] | None]:
    """The tasks without which the agent is not doing its job: outbox writer, link, downlink."""
    return {
        "outbox": agent.outbox.task,
        "link": agent.link.task,
        "downlink": agent.downlink.task,
    }


def dead_tasks(agent: Any) -> list[str]:
    """Names of the critical tasks that are not running, and of loops the supervisor gave up."""
    dead = [n for n, t in critical_tasks(agent).items() if t is None or t.done()]
    troubled = agent.supervisor.status()["troubled"]
    return dead + [n for n, t in troubled.items() if t["state"] == "failed" and n not in dead]


_TEXT: dict[Lang, dict[str, str]] = {
    "zh": {
        "ok": "运行中 · {role} {dev} · broker {link} · 待发 {depth} 条 · 模式 {mode}",
        "online": "已连接",
        "offline": "未连接(离线缓存)",
        "dead": "故障: 任务 {names} 已停止,等待 systemd 重启",
    },
    "en": {
        "ok": "running · {role} {dev} · broker {link} · {depth} queued · mode {mode}",
        "online": "connected",
        "offline": "not connected (storing offline)",
        "dead": "failing: task {names} stopped, waiting for systemd to restart",
    },
}


def agent_status(agent: Any, lang: Lang) -> str:
    """The one STATUS= line `systemctl status` shows for a running agent."""
    text = _TEXT[lang]
    dead = dead_tasks(agent)
    if dead:
        return text["dead"].format(names=", ".join(dead))
    return text["ok"].format(
        role=agent.cfg.device.role,
        dev=agent.cfg.device.id,
        link=text["online" if agent.online() else "offline"],
        depth=agent.outbox.depth,
        mode=agent.modes.current.name,
    )


def agent_watchdog(agent: Any, env: Mapping[str, str] | None = None) -> Watchdog:
    """The Watchdog of a started Agent: healthy while its critical tasks run."""
    env = os.environ if env is None else env
    lang = pick(None, env)
    return Watchdog(lambda: not dead_tasks(agent), lambda: agent_status(agent, lang), env=env)

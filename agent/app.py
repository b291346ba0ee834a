"""The supervisor: builds every component from the config, owns their lifetimes and signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import __version__, health
from agent.appliers import Appliers, validate_cmd_body
from agent.clock import SystemClock
from agent.config import Config
from agent.errors import LinkError, StoreError
from agent.modectl import ModeControl
from agent.modes import EffectiveMode, validate_mode_body
from agent.ota import ConfigStore, Staged, validate_body
from agent.patrol.schema import parse_tasks_body
from agent.state import DocState
from sync import envelope
from sync.downlink import Downlink, Trust
from sync.link import BdSeq, LinkSettings, MqttLink, Session
from sync.outbox import Outbox
from sync.publisher import Publisher
from sync.reconnect import Backoff
from sync.verify import BodyValidator, b64url_decode

log = logging.getLogger(__name__)


def trusted_keys(cfg: Config) -> dict[str, Ed25519PublicKey]:
    """The [trust] keys as verifier objects."""
    return {
        k.kid: Ed25519PublicKey.from_public_bytes(b64url_decode(k.public_key))
        for k in cfg.trust.ops_keys
    }


@dataclass(frozen=True, slots=True)
class OtaContext:
    """What the agent needs to run, commit or roll back a remote config."""

    store: ConfigStore
    local: Config  # the local file: source of the local-only keys
    staged: Staged | None  # a config in its health window (this agent runs it)
    lkg: Config  # last-known-good, to go back to
    startup_acks: tuple[dict[str, Any], ...] = field(default=())


class Agent:
    """One running agent. `async with Agent(cfg)` starts it; `await agent.wait()` until stopped."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: SystemClock | None = None,
        rng: random.Random | None = None,
        extra_validators: Mapping[str, BodyValidator] | None = None,
        ota: OtaContext | None = None,
    ) -> None:
        self.cfg = cfg
        self.ota = ota or OtaContext(ConfigStore(cfg.device.state_dir), cfg, None, cfg)
        self.outcome = "stop"  # or "restart": run() builds a new agent with the new config
        # name -> callable giving a problem text or None; judged at the end of a health window
        self.device_checks: dict[str, Callable[[], str | None]] = {}
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._stack = AsyncExitStack()
        self._started = time.monotonic()
        self.state = DocState(cfg.device.state_dir)
        # During a health window the old keys stay in force (§6 key rotation: after applied).
        self._keys = trusted_keys(self.ota.lkg if self.ota.staged else cfg)
        self._central_online = False
        self._status_now = asyncio.Event()
        self._reported: tuple[object, ...] = ()
        self._stopped = asyncio.Event()
        self.status_extra: list[Callable[[], Mapping[str, Any]]] = []
        self.gps_status: Callable[[], Mapping[str, Any]] | None = None
        self.snapshot: Callable[[Mapping[str, Any]], Any] | None = None
        self.tasks_listeners: list[Callable[[Mapping[str, Any]], None]] = []
        self._validators: dict[str, BodyValidator] = {
            "mode": validate_mode_body,
            "cmd": validate_cmd_body,
            "tasks": parse_tasks_body,
            "config": validate_body(self.ota.local),
        }
        self._validators.update(extra_validators or {})
        self._appliers = Appliers(
            self, status_now=self._status_now, restart=self._restart, rotate_keys=self._rotate_keys
        )

    # ----- time ------------------------------------------------------------------------------
    def trusted_now_ms(self) -> int | None:
        """Now, if the wall clock is known right; else the latest time that was (§6 step 5)."""
        stamp = self.clock.stamp()
        if stamp.time_ok:
            return stamp.ts
        return self.state.good_ms

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Agent:
        cfg = self.cfg
        try:
            await self._start(cfg)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self, cfg: Config) -> None:
        st = self._stack
        self.outbox = await st.enter_async_context(
            Outbox(
                cfg.device.state_dir,
                cfg.device.id,
                stamp=self.clock.stamp,
                budget_bytes=cfg.sync.outbox_budget_bytes,
                online=self.online,
            )
        )
        # A rollback decided before this agent started is acked first, before anything can fail.
        for body in self.ota.startup_acks:
            await self.outbox.append("ack", body)
        self.modes = await st.enter_async_context(
            ModeControl(
                self.state,
                default=lambda: self.cfg.modes.default,
                now_ms=self.trusted_now_ms,
                targets=self._mode_targets,
            )
        )
        self.modes.listeners.append(self._mode_changed)
        self.publisher = await st.enter_async_context(
            Publisher(
                self.outbox,
                window=cfg.sync.inflight_window,
                low_share=cfg.sync.low_priority_share,
                puback_timeout_s=cfg.sync.puback_timeout_s,
                gate_open=(lambda: self._central_online) if cfg.sync.flush_gate else None,
            )
        )
        self.downlink = await st.enter_async_context(
            Downlink(
                trust=self._trust,
                versions=self.state,
                now_ms=self.trusted_now_ms,
                validators=self._validators,
                appliers=self._appliers.table(),
                store_ack=lambda body: self.outbox.append("ack", body),
                on_applied=self.publish_reported,
                on_central=self._central,
            )
        )
        b = cfg.broker
        self.link = await st.enter_async_context(
            MqttLink(
                LinkSettings(
                    dev=cfg.device.id,
                    host=b.host,
                    port=b.port,
                    protocol=b.protocol,
                    keepalive_s=b.keepalive_s,
                    connect_timeout_s=b.connect_timeout_s,
                    tls=b.tls,
                    ca_file=b.ca_file,
                    cert_file=b.cert_file,
                    key_file=b.key_file,
                    username=b.username,
                    password_file=b.password_file,
                ),
                bdseq=BdSeq(cfg.device.state_dir / "bdseq.json"),
                birth=self.birth,
                subscriptions=self.downlink.topics,
                on_message=self.downlink.on_message,
                on_session=self._session,
                backoff=Backoff(cfg.sync.backoff_base_s, cfg.sync.backoff_cap_s),
                rng=self._rng,
            )
        )
        # Issue 11: broker limits, backoff, set-aside and stuck messages, for central to see.
        link, publisher = self.link, self.publisher
        self.status_extra.append(lambda: {"link": {**link.status(), **publisher.status()}})
        self.clock.jump_listeners.append(self._clock_jump)
        st.callback(self.clock.jump_listeners.remove, self._clock_jump)
        if cfg.device.role == "patrol":
            from agent.patrol_wiring import start_patrol

            self.patrol = await start_patrol(self, st)
        if cfg.device.role == "camera_gateway":
            from agent.gateway_wiring import start_gateway

            self.gateway = await start_gateway(self, st)
        for component in (self.outbox, self.downlink, self.link):
            if component.task is not None:
                component.task.add_done_callback(self._task_done)
        loops = [("status", self._status_loop()), ("good-time", self._good_time_loop())]
        if self.ota.staged is not None:
            loops.append(("config-health", self._appliers.health_window(self.ota.staged)))
        for name, coro in loops:
            self.start_task(coro, name)

    def start_task(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run `coro` for the agent's lifetime; a crash is logged with its traceback and stops
        the agent (systemd restarts it) rather than leaving it half alive."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._stack.push_async_callback(_cancel, task)
        return task

    def _clock_jump(self, delta_ms: int) -> None:
        log.warning("OS clock and GPS time differ by %d ms", delta_ms)
        self.start_task(self._notice({"type": "clock_jump", "delta_ms": delta_ms}), "notice")

    async def _notice(self, body: dict[str, Any]) -> None:
        try:
            await self.outbox.append("notice", body)
        except StoreError as exc:
            log.error("could not store notice %s: %s", body["type"], exc)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("task %s crashed; stopping the agent", task.get_name(), exc_info=task.exception())
        self.outcome = "crash"
        self._stopped.set()

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def online(self) -> bool:
        """True while a broker session is up (messages created now are not `hist`)."""
        return self.link.session is not None if hasattr(self, "link") else False

    def stop(self) -> None:
        """Ask the agent to shut down (SIGTERM does this)."""
        self.outcome = "stop"
        self._stopped.set()

    def _restart(self) -> None:
        self.outcome = "restart"
        self._stopped.set()

    def _rotate_keys(self) -> None:
        # §6 key rotation: a config's own [trust] keys count only once it passed its window.
        self._keys = trusted_keys(self.cfg)

    async def wait(self) -> None:
        """Until stop() is called."""
        await self._stopped.wait()

    # ----- session ---------------------------------------------------------------------------
    def _trust(self) -> Trust:
        return Trust(self.cfg.device.id, frozenset(self.cfg.device.zones), self._keys)

    def _mode_targets(self) -> set[str]:
        return {f"dev:{self.cfg.device.id}", *(f"zone:{z}" for z in self.cfg.device.zones)}

    def birth(self, bdseq: int) -> bytes:
        """The §5 birth payload for `bdseq`."""
        return envelope.birth(
            bdseq=bdseq,
            boot=self.clock.boot,
            ts=self.clock.stamp().ts,
            agent=__version__,
            role=self.cfg.device.role,
            config_ver=self.config_ver,
            tasks_ver=self.tasks_ver,
            mode=self.modes.current.name,
        )

    @property
    def config_ver(self) -> int | None:
        """Ver of the config document running now (last-known-good), None: the local file.

        Not the last ver acked: a rolled-back ver is remembered for §6 step 4 but never runs.
        """
        staged = self.ota.staged
        if staged is not None:
            return staged.ver
        applied = self.ota.store.applied()
        return int(applied["ver"]) if applied is not None else None

    @property
    def tasks_ver(self) -> int | None:
        """Ver of the applied tasks document."""
        return self.state.last_ver("tasks", f"dev:{self.cfg.device.id}")

    async def _session(self, session: Session) -> None:
        self.publish_reported(force=True)
        await self.publisher.run(session)

    def publish_reported(self, force: bool = False) -> None:
        """Publish `reported` (retained) when connected and changed; `force` on (re)birth."""
        session = self.link.session
        if session is None:
            return
        what = (self.config_ver, self.tasks_ver, self.modes.current)
        if what == self._reported and not force:
            return
        self._reported = what
        payload = envelope.reported(
            config_ver=self.config_ver,
            tasks_ver=self.tasks_ver,
            mode=self.modes.current.reported(),
            ts=self.clock.stamp().ts,
        )
        try:
            session.publish(envelope.topic(self.cfg.device.id, "reported"), payload, 1, True)
        except LinkError as exc:
            # The session just closed; `reported` goes out again on the next connect.
            log.info("reported not sent: %s", exc)
            self._reported = ()

    def _mode_changed(self, mode: EffectiveMode) -> None:
        self.publish_reported()
        self._status_now.set()  # the interval may have changed, and central wants to see it

    def _central(self, online: bool) -> None:
        if online != self._central_online:
            log.info("central ingest %s", "online" if online else "offline")
            self._central_online = online
            self.publisher.gate_changed()

    # ----- periodic --------------------------------------------------------------------------
    async def status_body(self) -> dict[str, Any]:
        """The §8 status body now."""
        extra: dict[str, Any] = {}
        for part in self.status_extra:
            extra.update(part())
        try:
            oldest = await self.outbox.oldest_ms()
        except StoreError:
            oldest = None
        return health.status_body(
            ts=self.clock.stamp().ts,
            mode=self.modes.current.name,
            config_ver=self.config_ver,
            uptime_s=int(time.monotonic() - self._started),
            outbox={
                "depth": self.outbox.depth,
                "bytes": self.outbox.bytes,
                "oldest_ms": oldest,
                "media_refused": self.outbox.media_refused,
            },
            gps=self.gps_status() if self.gps_status else None,
            disk_free=health.disk_free_mb(self.cfg.device.state_dir),
            cpu_temp=health.cpu_temp_c(),
            batt=health.batt_pct(),
            extra=extra,
        )

    async def _status_loop(self) -> None:
        while True:
            interval = self.cfg.modes.profile(self.modes.current.name).status_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_now.wait(), interval)
            self._status_now.clear()
            session = self.link.session
            if session is None:
                continue  # status is ephemeral: never stored while offline (§2, §8)
            body = await self.status_body()
            try:
                topic = envelope.topic(self.cfg.device.id, "status")
                session.publish(topic, envelope.dumps(body), 0, False)
            except LinkError as exc:
                log.info("status not sent (ephemeral, not kept): %s", exc)

    async def _good_time_loop(self) -> None:
        while True:
            stamp = self.clock.stamp()
            if stamp.time_ok:
                await asyncio.to_thread(self.state.note_good_time, stamp.ts)
            await asyncio.sleep(60.0)


async def _cancel(task: asyncio.Task[Any]) -> None:
    # A crash inside the task was logged when it happened; shutdown must not re-raise it.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

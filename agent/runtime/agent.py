"""The one place that builds an agent: the sync stack, one role, and the supervisor of its loops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

from agent.clock import SystemClock
from agent.config.model import Config
from agent.documents.appliers import Appliers, ConfigSwitch, SessionOps
from agent.documents.mode_control import ModeControl
from agent.documents.remote_config import ConfigStore, OtaContext, trusted_keys
from agent.documents.state import DocState
from agent.errors import EXPECTED_ERRORS, StoreError
from agent.events import Events
from agent.modes import EffectiveMode
from agent.roles import Role, RoleContext
from agent.runtime.reporting import Reporting
from agent.runtime.supervisor import Factory, Supervisor
from agent.runtime.sync_stack import document_validators, mqtt_link
from sync import envelope
from sync.downlink import Downlink, Trust
from sync.messages import Stored
from sync.outbox import Outbox
from sync.publisher import Publisher
from sync.session import Session
from sync.verify import BodyValidator

log = logging.getLogger(__name__)
# How often `reported.problems` is judged again (republished only when it changed).
HEALTH_EVERY_S = 5.0

# Called with the name of each start-up step once it is done (see Agent._start); tests use it to
# vary the order in which documents, the broker session and the role meet.
StartupHook = Callable[[str], Awaitable[None]]
STARTUP_STEPS = ("store", "downlink", "link", "role", "ready")


async def _no_hook(step: str) -> None:
    return None


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
        startup_hook: StartupHook = _no_hook,
        health_every_s: float = HEALTH_EVERY_S,
    ) -> None:
        self.cfg = cfg
        self._step = startup_hook
        self.ota = ota or OtaContext(ConfigStore(cfg.device.state_dir), cfg, None, cfg)
        self.outcome = "stop"  # or "restart": run() builds a new agent with the new config
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._stack = AsyncExitStack()
        self._started = time.monotonic()
        self.state = DocState(cfg.device.state_dir)
        self._keys = self.ota.keys_at_start(cfg)  # the old ones during a health window
        self._central_online = False
        self._health_every_s = health_every_s
        # A rollback happens across a restart, so it is read once here; a commit clears it.
        self._rolled_back = self.ota.store.rolled_back()
        self._stopped = asyncio.Event()
        self.role: Role | None = None
        self.supervisor = Supervisor(on_fatal=self._fatal, rng=self._rng)
        self._validators = document_validators(self.ota.local, extra_validators)
        self._appliers = Appliers(
            state=self.state,
            modes=lambda: self.modes,
            role=lambda: self.role,
            store_ack=self._store_ack,
            session=SessionOps(
                rebirth=self._rebirth,
                status_now=lambda: self.reporting.status_now.set(),
                publish_reported=self.publish_reported,
                connected_once=lambda: self.link.connects > 0,
            ),
            switch=ConfigSwitch(
                dev=cfg.device.id,
                store=self.ota.store,
                staged=lambda: self.ota.staged,
                restarting=lambda: self.outcome == "restart",
                restart=self._restart,
                rotate_keys=self._rotate_keys,
                committed=self._committed,
                window_s=cfg.sync.config_health_window_s,
                local=self.ota.local,
            ),
            problems=self.device_problems,
        )
        self._build_parts(cfg)

    def _build_parts(self, cfg: Config) -> None:
        """Every part exists from construction; `_start` enters them in the one start-up order."""
        self._build_store(cfg)
        self.downlink = Downlink(
            trust=self._trust,
            versions=self.state,
            now_ms=self.trusted_now_ms,
            validators=self._validators,
            appliers=self._appliers.table(),
            store_ack=self._store_ack,
            on_applied=self.publish_reported,
            on_central=self._central,
            apply_errors=EXPECTED_ERRORS,
            held=True,  # until the role runs: see `_start`
            spawn=self._once,
        )
        self.link = mqtt_link(
            cfg,
            birth=self.birth,
            downlink=self.downlink,
            on_session=self._session,
            rng=self._rng,
            spawn=self._once,
        )
        self.reporting = Reporting(
            cfg=cfg,
            clock=self.clock,
            link=self.link,
            modes=self.modes,
            outbox=self.outbox,
            publisher=self.publisher,
            events=self.events,
            supervisor=self.supervisor,
            role=lambda: self.role,
            config_ver=lambda: self.config_ver,
            tasks_ver=lambda: self.tasks_ver,
            rolled_back=lambda: self._rolled_back,
            health_every_s=self._health_every_s,
        )

    def _build_store(self, cfg: Config) -> None:
        """The durable side (see `_start_store`): outbox, events, mode control, publisher."""
        self.outbox = Outbox(
            cfg.device.state_dir,
            cfg.device.id,
            stamp=self.clock.stamp,
            budget_bytes=cfg.sync.outbox_budget_bytes,
            online=self.online,
            spawn=self._once,
        )
        self.events = Events(self.outbox)
        self.modes = ModeControl(
            self.state,
            default=lambda: self.cfg.modes.default,
            now_ms=self.trusted_now_ms,
            targets=self._mode_targets,
            spawn=self.supervisor.spawn,
        )
        self.modes.listeners.append(self._mode_changed)
        self.publisher = Publisher(
            self.outbox,
            window=cfg.sync.inflight_window,
            low_share=cfg.sync.low_priority_share,
            puback_timeout_s=cfg.sync.puback_timeout_s,
            gate_open=(lambda: self._central_online) if cfg.sync.flush_gate else None,
            monotonic=time.monotonic,
            spawn=self._once,
        )

    async def _store_ack(self, body: Mapping[str, Any]) -> Stored:
        return await self.events.emit("ack", body)

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
        """The one start-up order.

        store (outbox, modes, publisher) -> downlink, held -> link (the broker session may come
        up and deliver documents from here on; they wait in the held downlink) -> role -> ready
        (status loops, then the downlink opens). So a document is applied only to a running role
        and acked `applied` only once the role runs it, whenever it arrives and however long
        each step takes.
        """
        st = self._stack
        # Entered first, left last: every loop is cancelled after the parts that use it closed.
        sup = await st.enter_async_context(self.supervisor)
        await self._start_store(st)
        await self._step("store")
        await st.enter_async_context(self.downlink)
        await self._step("downlink")
        await st.enter_async_context(self.link)
        self.clock.jump_listeners.append(self._clock_jump)
        st.callback(self.clock.jump_listeners.remove, self._clock_jump)
        await self._step("link")
        self.role = await start_role(self.role_context(), st)
        # Shutdown is the start-up order reversed: nothing is applied to a role that is closing.
        st.push_async_callback(self.downlink.stop)
        self.publish_reported()  # the role's parts and progress, if the session came first
        await self._step("role")
        if cfg.metrics.enabled:
            from agent.runtime.metrics import (  # prometheus-client if asked
                MetricsEndpoint,
                read_agent,
            )

            read = functools.partial(read_agent, self)
            await st.enter_async_context(MetricsEndpoint(cfg.metrics, read))
        sup.spawn("status", self.reporting.status_loop)
        sup.spawn("good-time", self._good_time_loop)
        sup.spawn("health", self.reporting.health_loop)
        staged = self.ota.staged
        if staged is not None:
            self._once("config-health", functools.partial(self._appliers.health_window, staged))
        self.downlink.open()
        await self._step("ready")

    def _once(self, name: str, factory: Factory) -> asyncio.Task[None]:
        # The sync stack's loops are not restarted in place: a crash there restarts the process.
        return self.supervisor.spawn(name, factory, restart=False)

    async def _start_store(self, st: AsyncExitStack) -> None:
        """The durable side: outbox (and acks decided before this start), modes, publisher."""
        await st.enter_async_context(self.outbox)
        # A rollback decided before this agent started is acked first, before anything can fail.
        for body in self.ota.startup_acks:
            await self._store_ack(body)
        await st.enter_async_context(self.modes)
        await st.enter_async_context(self.publisher)

    def role_context(self) -> RoleContext:
        """What the role may use of this agent (agent/roles.py)."""
        return RoleContext(
            cfg=self.cfg,
            outbox=self.outbox,
            events=self.events,
            clock=self.clock,
            mode=lambda: self.modes.current.name,
            tasks=self.state.tasks,
            spawn=self.supervisor.spawn,
            spawn_once=functools.partial(self.supervisor.spawn, restart=False),
            spawn_part=functools.partial(self.supervisor.spawn, essential=False),
            stop=self._crash,
            online=self.online,
        )

    def _clock_jump(self, delta_ms: int) -> None:
        log.warning("OS clock and GPS time differ by %d ms", delta_ms)
        body = {"type": "clock_jump", "delta_ms": delta_ms}
        self.supervisor.spawn("notice", functools.partial(self._notice, body), restart=False)

    async def _notice(self, body: dict[str, Any]) -> None:
        try:
            await self.events.emit("notice", body)
        except StoreError as exc:
            log.error("could not store notice %s: %s", body["type"], exc)

    def _fatal(self, name: str, exc: BaseException) -> None:
        # The supervisor logged the traceback; exit non-zero so that systemd restarts us.
        self._crash()

    def _crash(self) -> None:
        self.outcome = "crash"
        self._stopped.set()

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def online(self) -> bool:
        """True while a broker session is up (messages created now are not `hist`)."""
        return self.link.session is not None

    def stop(self) -> None:
        """Ask the agent to shut down (SIGTERM does this)."""
        self.outcome = "stop"
        self._stopped.set()

    def _restart(self) -> None:
        self.outcome = "restart"
        self._stopped.set()

    def _committed(self) -> None:
        # The staged config passed its window: it is the last-known-good from now on.
        self.ota = replace(self.ota, staged=None, lkg=self.cfg)
        self._rolled_back = None

    # ----- what the agent tells central (agent/runtime/reporting.py) -------------------------
    def birth(self, bdseq: int) -> bytes:
        """The §5 birth payload for `bdseq`."""
        return self.reporting.birth(bdseq)

    def device_problems(self) -> dict[str, str | None]:
        """Each configured part and each crashed loop with its problem now (None: fine)."""
        return self.reporting.device_problems()

    def problems(self) -> list[str]:
        """`reported.problems` now."""
        return self.reporting.problems()

    def publish_reported(self, force: bool = False) -> None:
        """Publish `reported` (retained) when connected and changed; `force` on (re)birth."""
        self.reporting.publish_reported(force)

    async def status_body(self) -> dict[str, Any]:
        """The §8 status body now."""
        return await self.reporting.status_body()

    def _rebirth(self) -> None:
        session = self.link.session
        if session is not None:
            topic = envelope.topic(self.cfg.device.id, "state")
            session.publish(topic, self.birth(session.bdseq), 1, True)
            self.publish_reported(force=True)

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

    @property
    def config_ver(self) -> int | None:
        """Ver of the config document running now, None: the local file (`OtaContext`)."""
        return self.ota.config_ver()

    @property
    def tasks_ver(self) -> int | None:
        """Ver of the applied tasks document."""
        return self.state.last_ver("tasks", f"dev:{self.cfg.device.id}")

    async def _session(self, session: Session) -> None:
        await session.subscribed.wait()  # no SUBACK: the keep-alive ends the session
        self.publish_reported(force=True)
        await self.publisher.run(session)

    def _mode_changed(self, mode: EffectiveMode) -> None:
        self.publish_reported()
        self.reporting.status_now.set()  # the interval may have changed: central wants to see it

    def _central(self, online: bool) -> None:
        if online != self._central_online:
            log.info("central ingest %s", "online" if online else "offline")
            self._central_online = online
            self.publisher.gate_changed()

    async def _good_time_loop(self) -> None:
        while True:
            stamp = self.clock.stamp()
            if stamp.time_ok:
                await asyncio.to_thread(self.state.note_good_time, stamp.ts)
            await asyncio.sleep(60.0)


async def start_role(ctx: RoleContext, stack: contextlib.AsyncExitStack) -> Role:
    """Build the configured role into `stack` (it closes with the agent)."""
    if ctx.cfg.device.role == "camera_gateway":
        from agent.vision.role import start_gateway

        return await start_gateway(ctx, stack)
    from agent.patrol.role import start_patrol

    return await start_patrol(ctx, stack)

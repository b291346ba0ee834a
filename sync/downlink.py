"""Downlink: subscriptions -> §6 verification -> the agent's appliers -> ack (stored) and PUBACK."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sync import envelope
from sync.errors import StoreError
from sync.session import Inbound, Session
from sync.spawn import Spawn, spawn_task
from sync.verify import BodyValidator, Context, Document, Refusal, verify

if TYPE_CHECKING:  # cryptography is imported by the first signature check (sync.verify)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger(__name__)

# An applier returns None when applied, a `rolled_back` reason (`apply_failed`, ...), or
# DEFERRED when it acks by itself later (config: after its health window).
Applier = Callable[[Document], Awaitable[str | None]]
DEFERRED = "deferred"


class Versions(Protocol):
    """The per-(typ, target) memory kept in the state dir."""

    def last_ver(self, typ: str, target: str) -> int | None: ...
    def last_id(self, typ: str, target: str) -> str | None: ...
    def applied(self, typ: str, target: str, ver: int, doc_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Trust:
    """Device identity and trusted keys; replaced whole when the config changes."""

    dev: str
    zones: frozenset[str]
    keys: Mapping[str, Ed25519PublicKey]


def doc_type(dev: str, topic: str) -> str | None:
    """The document type a downlink topic carries, or None for topics that are not documents."""
    parts = topic.split("/")
    if parts[:2] != ["grid", "v1"]:
        return None
    if parts[2:] == [dev, "cmd"]:
        return "cmd"
    if len(parts) == 5 and parts[2] == dev and parts[3] == "desired":
        return parts[4] if parts[4] in ("config", "tasks", "mode") else None
    if len(parts) == 6 and parts[2] == "zone" and parts[4:] == ["desired", "mode"]:
        return "mode"
    return None


class Downlink:
    """Verifies and applies downlink documents one at a time; `async with` runs the worker.

    With `held=True` the worker takes nothing from its queue until `open()`: messages that
    arrive before the parts they act on are ready wait (un-PUBACKed, so a crash meanwhile has
    them redelivered) and are verified and applied in arrival order once it opens. The agent
    opens it when its role runs, so every document is applied to, and acked by, a running role.
    """

    def __init__(
        self,
        *,
        trust: Callable[[], Trust],
        versions: Versions,
        now_ms: Callable[[], int | None],
        validators: Mapping[str, BodyValidator],
        appliers: Mapping[str, Applier],
        store_ack: Callable[[dict[str, object]], Awaitable[object]],
        on_applied: Callable[[], None],
        on_central: Callable[[bool], None],
        apply_errors: tuple[type[Exception], ...] = (),
        queue_size: int = 64,
        held: bool = False,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self._open = asyncio.Event()
        if not held:
            self._open.set()
        self._trust = trust
        self._versions = versions
        self._now_ms = now_ms
        self._validators = validators
        # The errors an applier raises on purpose (the agent's); anything else is a bug.
        self._apply_errors: tuple[type[Exception], ...] = (*apply_errors, StoreError, OSError)
        self._appliers = appliers
        self._store_ack = store_ack
        self._on_applied = on_applied
        self._on_central = on_central
        self._queue: asyncio.Queue[tuple[Session, Inbound]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self.handled = 0

    async def __aenter__(self) -> Downlink:
        self._task = self._spawn("downlink", self._work)
        return self

    def open(self) -> None:
        """Start applying: what waited is handled first, in the order it arrived."""
        if not self._open.is_set():
            log.info("downlink open: %d message(s) waited for start-up", self._queue.qsize())
        self._open.set()

    @property
    def is_open(self) -> bool:
        """False while documents are held for start-up."""
        return self._open.is_set()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The worker, for the supervisor to watch."""
        return self._task

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop applying (idempotent): a message cut off is not PUBACKed, so it comes again."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def topics(self) -> list[str]:
        """Everything this device subscribes to (§2)."""
        t = self._trust()
        own = [envelope.topic(t.dev, "desired", typ) for typ in ("config", "tasks", "mode")]
        zones = [f"{envelope.PREFIX}/zone/{z}/desired/mode" for z in sorted(t.zones)]
        return [*own, envelope.topic(t.dev, "cmd"), *zones, f"{envelope.PREFIX}/central/state"]

    def on_message(self, session: Session, msg: Inbound) -> None:
        """paho callback: queue the message; it is PUBACKed only once handled."""
        try:
            self._queue.put_nowait((session, msg))
        except asyncio.QueueFull:
            # Not acking makes the broker deliver it again on the next session.
            log.error("downlink queue full; %s will be redelivered", msg.topic)

    async def _work(self) -> None:
        await self._open.wait()
        while True:
            session, msg = await self._queue.get()
            try:
                await self.handle(msg)
            except StoreError as exc:
                # The ack could not be stored: leave the message un-PUBACKed for redelivery.
                log.error("could not store the ack for %s: %s", msg.topic, exc)
                continue
            except OSError as exc:
                # State dir trouble (full disk): redelivery may succeed once there is room.
                log.error("handling %s failed: %s", msg.topic, exc)
                continue
            session.ack(msg)

    async def handle(self, msg: Inbound) -> None:
        """Verify, apply and ack one inbound message."""
        trust = self._trust()
        if msg.topic == f"{envelope.PREFIX}/central/state":
            self._central(msg.payload)
            return
        if not msg.payload:
            # Central cleared a retained document (`ops retract`): nothing to verify or ack.
            log.info("retained document on %s cleared by central", msg.topic)
            return
        typ = doc_type(trust.dev, msg.topic)
        if typ is None:
            log.warning("message on unexpected topic %s ignored", msg.topic)
            return
        ctx = Context(
            dev=trust.dev,
            zones=trust.zones,
            keys=trust.keys,
            last_ver=self._versions.last_ver,
            now_ms=self._now_ms(),
            validators=self._validators,
        )
        result = verify(typ, msg.payload, ctx)
        self.handled += 1
        if isinstance(result, Refusal):
            await self._refused(typ, msg, result)
            return
        applier = self._appliers.get(typ)
        failure = "apply_failed" if applier is None else None
        detail: str | None = None
        if applier is not None:
            try:
                failure = await applier(result)
            except self._apply_errors as exc:
                log.error("applying %s ver %d failed: %s", typ, result.ver, exc)
                failure, detail = "apply_failed", str(exc)
        if failure == DEFERRED:
            log.info("%s ver %d staged; acked after its health window", typ, result.ver)
        elif failure is None:
            # The ack is stored before the version: a stop in between makes the redelivered
            # document apply and ack again, never leaves it acked only `duplicate` (as a fleet
            # push saw from an agent restarted mid-push).
            await self._ack(result.id, typ, result.ver, "applied", None)
            await asyncio.to_thread(
                self._versions.applied, typ, result.target.key, result.ver, result.id
            )
            log.info("applied %s ver %d for %s", typ, result.ver, result.target.key)
            self._on_applied()
        else:
            await self._ack(result.id, typ, result.ver, "rolled_back", failure, detail)

    async def _refused(self, typ: str, msg: Inbound, refusal: Refusal) -> None:
        if refusal.status == "duplicate" and msg.retained:
            target = refusal.target
            if target is not None and self._versions.last_id(typ, target) == refusal.ref:
                # The broker handing back the retained document we applied: not news.
                log.debug("retained %s ver %s already applied", typ, refusal.ver)
                return
        log.warning(
            "downlink %s on %s: %s %s %s",
            typ,
            msg.topic,
            refusal.status,
            refusal.reason,
            refusal.detail,
        )
        detail = refusal.detail if refusal.status == "rejected" else None
        await self._ack(refusal.ref, typ, refusal.ver, refusal.status, refusal.reason, detail)

    async def _ack(
        self,
        ref: str | None,
        typ: str,
        ver: int | None,
        status: str,
        reason: str | None,
        detail: str | None = None,
    ) -> None:
        body = envelope.ack_body(
            ref=ref, typ=typ, ver=ver, status=status, reason=reason, detail=detail
        )
        await self._store_ack(body)

    def _central(self, payload: bytes) -> None:
        try:
            state = json.loads(payload)
            online = state["online"]
        except (ValueError, TypeError, KeyError, RecursionError):  # deep nesting: RecursionError
            log.warning("malformed central/state payload ignored")
            return
        if isinstance(online, bool):
            self._on_central(online)

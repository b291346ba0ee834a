"""The MQTT connect loop: one paho client per CONNECT, one live session at a time, on the asyncio
loop. With `sync/session.py` (the per-connection `Session`) the only modules that touch paho-mqtt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sync import envelope
from sync.brokerview import BrokerView
from sync.errors import LinkError, ProtocolRefused
from sync.failover import PROTOCOL_REFUSED, Failover
from sync.limits import BrokerLimits
from sync.reconnect import STABLE_S, DelayPolicy, Reconnect
from sync.session import Inbound, Session
from sync.spawn import Spawn, spawn_task
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 86400  # contract §1
_CONNACK_PROPS = (
    "MaximumPacketSize",
    "ReceiveMaximum",
    "ServerKeepAlive",
    "TopicAliasMaximum",
    "MaximumQoS",
    "RetainAvailable",
)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Everything the link needs from the config, as plain values."""

    dev: str
    host: str
    port: int
    protocol: int = 5
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    role: str | None = None  # named in the will and the graceful-stop state (§5)
    zones: tuple[str, ...] = ()
    # broker.hosts: the nodes of a clustered broker, dialled in turn (empty: host, port).
    hosts: tuple[tuple[str, int], ...] = ()


class BdSeq:
    """The §5 `bdseq`, persisted in the state dir and bumped before every CONNECT attempt."""

    def __init__(self, path: Path) -> None:
        self._path = path
        data = read_json(path, {})
        self.value = int(data.get("bdseq", 0)) if isinstance(data, dict) else 0

    def bump(self) -> int:
        """Increment, make it durable, return the new value."""
        self.value += 1
        write_json(self._path, {"bdseq": self.value})
        return self.value


def _mark_read(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled():
        fut.exception()


class MqttLink:
    """Owns the connect/reconnect loop; hands each live session to `on_session`."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        bdseq: BdSeq,
        birth: Callable[[int], bytes],
        subscriptions: Callable[[], list[str]],
        on_message: Callable[[Session, Inbound], None],
        on_session: Callable[[Session], Coroutine[Any, Any, None]],
        backoff: DelayPolicy,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self._s = settings
        self._bdseq = bdseq
        self._birth = birth
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._on_session = on_session
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.machine = Reconnect()
        self.session: Session | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connects = 0
        self.broker = BrokerView()  # the last CONNACK's limits; how the will must be set
        # Which node to dial and with which MQTT version (sync/failover.py, pure).
        self.failover = Failover(
            settings.hosts or ((settings.host, settings.port),), settings.protocol
        )

    async def __aenter__(self) -> MqttLink:
        self._task = self._spawn("mqtt-link", self._run)
        return self

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The connect loop, for the supervisor to watch."""
        return self._task

    async def __aexit__(self, *exc: object) -> None:
        session = self.session
        if session is not None and not session.closed.done():
            try:
                ok = await session.publish_wait(
                    envelope.topic(self._s.dev, "state"),
                    self._offline(session.bdseq, "shutdown"),
                    retain=True,
                    timeout=3.0,
                )
                if not ok:
                    log.warning("graceful offline state was not acknowledged")
            except LinkError as err:
                log.warning("could not publish graceful offline state: %s", err)
        self.machine = self.machine.closed()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _offline(self, bdseq: int, reason: str) -> bytes:
        return envelope.offline(bdseq, reason, role=self._s.role, zones=self._s.zones)

    def _client(self, bdseq: int) -> paho.Client:
        s = self._s
        v5 = self.failover.protocol_now == 5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.dev,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        # Our own publisher bounds the window; paho's bookkeeping is fastest unlimited.
        # paho's own bound on the blocking TCP/TLS connect, so no connect thread outlives us.
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.will_set(
            envelope.topic(s.dev, "state"),
            self._offline(bdseq, "lost"),
            qos=self.broker.will_qos,
            retain=self.broker.will_retain,
        )
        if s.tls:
            client.tls_set(
                ca_certs=str(s.ca_file) if s.ca_file else None,
                certfile=str(s.cert_file) if s.cert_file else None,
                keyfile=str(s.key_file) if s.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if s.username is not None:
            password = s.password_file.read_text().strip() if s.password_file else None
            client.username_pw_set(s.username, password)
        return client

    async def _run(self) -> None:
        while True:
            self.machine = self.machine.connecting()
            refused = False
            try:
                await self._connect_once()
                reason = "closed"
            except (LinkError, OSError, ssl.SSLError) as exc:
                reason = str(exc) or type(exc).__name__
                refused = isinstance(exc, ProtocolRefused)
            self.machine = self.machine.failed()
            self._next_node(refused)
            delay = self._backoff.delay(self.machine.failures - 1, self._rng)
            log.warning("MQTT link down (%s); reconnecting in %.1f s", reason, delay)
            await self._sleep(delay)

    def _next_node(self, refused_v5: bool) -> None:
        before = self.failover
        self.failover = before.failed(refused_v5=refused_v5)
        host, port = self.failover.current
        if (
            self.failover.protocol_now != before.protocol_now
            and before.index == self.failover.index
        ):
            log.warning("broker %s:%d closed an MQTT 5 CONNECT; using MQTT 3.1.1 there", host, port)
        elif before.index != self.failover.index:
            log.info("next broker node: %s:%d", host, port)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        bdseq = await asyncio.to_thread(self._bdseq.bump)  # two fsyncs: off the loop
        client = self._client(bdseq)
        session = Session(client, loop, bdseq)
        connack: asyncio.Future[int] = loop.create_future()
        # A CONNACK that fails after we stopped waiting (a timeout, a failed connect) is told by
        # the session or the raised error: mark it read so asyncio does not print it at exit.
        connack.add_done_callback(_mark_read)
        self._wire(client, session, connack)
        kwargs: dict[str, Any] = {"keepalive": self._s.keepalive_s}
        host, port = self.failover.current
        v5 = self.failover.protocol_now == 5
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs.update(clean_start=False, properties=props)
        # TCP connect, DNS and the TLS handshake block: they leave the loop.
        async with asyncio.timeout(self._s.connect_timeout_s):  # not wait_for: see publish_wait
            await asyncio.to_thread(client.connect, host, port, **kwargs)
        sock = client.socket()
        if sock is None:
            raise LinkError("no socket after connect")
        loop.add_reader(sock, self._on_readable, client, session)
        session.want_write()
        misc = asyncio.create_task(self._misc(client, session), name="mqtt-keepalive")
        graceful = False
        try:
            rc = await self._connack(connack, v5)
            if rc != 0:
                self.broker.refused(rc)
                raise LinkError(f"CONNACK refused: {rc}")
            self.broker.accepted(session.limits)
            await self._established(session)
        except asyncio.CancelledError:
            graceful = True
            raise
        finally:
            connack.cancel()  # no later disconnect sets an exception on it
            misc.cancel()
            loop.remove_reader(sock)
            session.stop_writing()
            self.session = None
            self.connected.clear()
            session.lost("closed")
            if graceful and client.is_connected():
                # A normal DISCONNECT: the broker drops the will, the shutdown state stands.
                client.disconnect()
                client.loop_write()
            # Otherwise just drop the socket, so the broker publishes the will (§5 "lost").
            sock.close()

    async def _connack(self, connack: asyncio.Future[int], v5: bool) -> int:
        """The CONNACK code; ProtocolRefused when a node turns MQTT 5 away (closes the
        connection before any CONNACK, or answers "unacceptable protocol version")."""
        try:
            async with asyncio.timeout(self._s.connect_timeout_s):  # not wait_for: publish_wait
                rc = await asyncio.shield(connack)
        except LinkError as exc:
            if v5:
                raise ProtocolRefused(f"{exc} (at an MQTT 5 CONNECT)") from None
            raise
        if v5 and rc in PROTOCOL_REFUSED:
            raise ProtocolRefused(f"CONNACK refused MQTT 5: {rc}")
        return rc

    def _wire(self, client: paho.Client, session: Session, connack: asyncio.Future[int]) -> None:
        protocol = self.failover.protocol_now

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, props: Any) -> None:
            found = {n: getattr(props, n) for n in _CONNACK_PROPS if hasattr(props, n)}
            session.limits = BrokerLimits.from_connack(protocol, found)
            if not connack.done():
                connack.set_result(int(rc.value) if hasattr(rc, "value") else int(rc))

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            session.lost(f"disconnected: {rc}")
            if not connack.done():
                connack.set_exception(LinkError(f"disconnected before CONNACK: {rc}"))

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
            session.puback(mid, not getattr(rc, "is_failure", False))

        def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
            refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
            if refused:
                log.warning(
                    "broker refused %d of %d subscriptions: %s", len(refused), len(codes), refused
                )
            session.subscribed.set()

        def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
            self._on_message(
                session, Inbound(msg.topic, bytes(msg.payload), bool(msg.retain), msg.mid, msg.qos)
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_subscribe = on_subscribe

    def _on_readable(self, client: paho.Client, session: Session) -> None:
        rc = client.loop_read(256)
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            session.lost(f"read failed: {paho.error_string(rc)}")
        session.want_write()

    async def _misc(self, client: paho.Client, session: Session) -> None:
        while not session.closed.done():
            await asyncio.sleep(1.0)
            if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                session.lost("keepalive failed")
            session.want_write()

    @property
    def ready(self) -> bool:
        """Connected and the broker has answered the SUBSCRIBE (SUBACK): live documents arrive."""
        return self.session is not None and self.session.subscribed.is_set()

    def status(self) -> dict[str, Any]:
        """The link's part of `status`: connects, backoff, broker limits and their problems."""
        host, port = self.failover.current
        link = {
            "connects": self.connects,
            "failures": self.machine.failures,
            "node": f"{host}:{port}",
            "protocol": self.failover.protocol_now,
        }
        return {**link, **self.broker.status()}

    async def _stable_after(self, session: Session) -> None:
        await self._sleep(STABLE_S)
        if not session.closed.done():
            self.machine = self.machine.stable()

    async def _established(self, session: Session) -> None:
        self.machine = self.machine.connected()
        self.connects += 1
        dev = self._s.dev
        # Birth goes out before anything else on every connect (§5).
        session.publish(envelope.topic(dev, "state"), self._birth(session.bdseq), 1, True)
        self._subscribe(session)
        self.session = session
        self.connected.set()
        host, port = self.failover.current
        log.info("MQTT connected to %s:%d (bdseq %d)", host, port, session.bdseq)
        worker = asyncio.create_task(self._on_session(session), name="mqtt-session")
        stable = asyncio.create_task(self._stable_after(session), name="mqtt-stable")
        waiters: list[asyncio.Future[Any]] = [worker, session.closed]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stable.cancel()
            worker.cancel()
            await asyncio.gather(worker, stable, return_exceptions=True)
        failure = worker.exception() if worker.done() and not worker.cancelled() else None
        if failure is not None:
            log.error("session worker failed", exc_info=failure)
            raise LinkError(f"session worker failed: {failure!r}")

    def _subscribe(self, session: Session) -> None:
        topics = self._subscriptions()
        client = session.client
        if self.failover.protocol_now == 5:
            # retainHandling=1: retained documents only for a new subscription, not every reconnect.
            opts = SubscribeOptions(qos=1, retainHandling=1)
            # central/state is state, not a document: its retained value is wanted every time.
            always = SubscribeOptions(qos=1, retainHandling=0)
            client.subscribe(
                [(t, always if t.endswith("/central/state") else opts) for t in topics]
            )
        else:
            client.subscribe([(t, 1) for t in topics])
        session.want_write()

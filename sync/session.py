"""One connected MQTT session (sync/link.py makes one per CONNECT) and the messages it receives.

`Session` is what the publisher and the downlink hold: PUBLISH (capped to the CONNACK's limits),
wait for a PUBACK, manually PUBACK an `Inbound`, and keep paho's leftover bytes flowing when
the socket buffer was full. It lives on the asyncio loop thread. Once `closed` is done it is
gone for good: `publish` raises `LinkError`, `ack` does nothing, PUBACK waiters fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from sync.errors import LinkError
from sync.limits import BrokerLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message received from the broker, with what is needed to acknowledge it."""

    topic: str
    payload: bytes
    retained: bool
    mid: int
    qos: int


class Session:
    """One connected MQTT session; gone for good once `closed` is done."""

    def __init__(self, client: paho.Client, loop: asyncio.AbstractEventLoop, bdseq: int) -> None:
        self._client = client
        self._loop = loop
        self.bdseq = bdseq
        self.limits = BrokerLimits()  # replaced from the CONNACK
        self.closed: asyncio.Future[str] = loop.create_future()
        self.on_puback: Callable[[int, bool], None] = lambda mid, ok: None
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._writing = False
        # Set by the SUBACK: until then a document published live reaches nobody.
        self.subscribed = asyncio.Event()

    # paho callbacks (always on the loop thread once connected)
    def puback(self, mid: int, ok: bool) -> None:
        """paho: the broker acknowledged `mid` (ok False: a failure reason code)."""
        waiter = self._waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ok)
            return
        self.on_puback(mid, ok)

    def lost(self, reason: str) -> None:
        """The connection is gone: `closed` resolves and every waiter fails with LinkError."""
        if not self.closed.done():
            self.closed.set_result(reason)
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(LinkError(reason))

    @property
    def client(self) -> paho.Client:
        """The paho client of this session (the link closes it)."""
        return self._client

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a PUBLISH; returns its mid. Raises LinkError when the session is gone."""
        if self.closed.done():
            raise LinkError("session closed")
        # Without Retain Available a retained PUBLISH ends the session: send it plain (status says).
        retain = retain and self.limits.retain
        qos = min(qos, self.limits.max_qos)  # above Maximum QoS the broker drops the session
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            self.lost(f"publish failed: {paho.error_string(info.rc)}")
            raise LinkError(paho.error_string(info.rc))
        self.want_write()
        return int(info.mid)

    async def publish_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> bool:
        """Publish at QoS 1 and wait for the PUBACK; False when it does not come in time."""
        fut: asyncio.Future[bool] = self._loop.create_future()
        mid = self.publish(topic, payload, 1, retain)
        if self.limits.max_qos < 1:
            return True  # went at QoS 0 (Maximum QoS): there is no PUBACK to wait for
        self._waiters[mid] = fut
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the result and drops a
            # cancellation that arrives with it (an agent stopped as its PUBACK came ran on).
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            self._waiters.pop(mid, None)
            return False

    def ack(self, msg: Inbound) -> None:
        """PUBACK an inbound QoS 1 message once it is handled (manual ack)."""
        if msg.qos > 0 and not self.closed.done():
            self._client.ack(msg.mid, msg.qos)
            self.want_write()

    def want_write(self) -> None:
        """Arm the writer when paho has bytes left over (socket buffer was full)."""
        sock = self._client.socket()
        if sock is None or self._writing or not self._client.want_write():
            return
        self._writing = True
        self._loop.add_writer(sock, self._on_writable)

    def _on_writable(self) -> None:
        rc = self._client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.lost(f"write failed: {paho.error_string(rc)}")
        if not self._client.want_write() or self.closed.done():
            self.stop_writing()

    def stop_writing(self) -> None:
        """Stop watching the socket for writability (the client is closing)."""
        sock = self._client.socket()
        if self._writing and sock is not None:
            self._loop.remove_writer(sock)
        self._writing = False

    def abort(self, reason: str) -> None:
        """Drop the connection (e.g. no PUBACKs): the link reconnects."""
        log.warning("aborting MQTT session: %s", reason)
        self.lost(reason)

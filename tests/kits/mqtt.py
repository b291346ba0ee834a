"""A plain paho client for tests: records what the device publishes, publishes documents."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class Watcher:
    """Subscribes to `grid/v1/#` (the central side's view) and keeps every message.

    `delivery_delay_s` (`scripts/test --watcher-delay S`) injects a fault: every message reaches
    the test S seconds late, in order, as on a loaded machine. A test that reads what the broker
    has acknowledged before its watcher received it then fails every run, not once in a while.
    """

    delivery_delay_s = 0.0

    def __init__(
        self,
        host: str,
        port: int,
        topic: str = "grid/v1/#",
        protocol: int = 5,
        username: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        version = paho.MQTTv5 if protocol == 5 else paho.MQTTv311
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=version)
        if username is not None:
            self._client.username_pw_set(username)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe(topic, qos=1)
        self._client.loop_start()

    @classmethod
    def of(cls, broker: Any, topic: str = "grid/v1/#") -> Watcher:
        """A watcher speaking the broker's protocol, as central (its user, when it has one)."""
        return cls(
            broker.host,
            broker.port,
            topic,
            protocol=getattr(broker, "protocol", 5),
            username=getattr(broker, "central_user", None),
        )

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        if self.delivery_delay_s:
            time.sleep(self.delivery_delay_s)  # paho's network thread: later messages wait too
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float = 20
    ) -> bool:
        """Block until `pred(messages)` holds or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def events(self, suffix: str = "") -> list[dict[str, Any]]:
        """Decoded envelopes of evt/* and ack messages (optionally topic-suffix filtered)."""
        with self._cond:
            return [
                json.loads(p)
                for t, p, _ in self.messages
                if ("/evt/" in t or t.endswith("/ack")) and t.endswith(suffix)
            ]

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on exactly `topic`."""
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def media_whole(self, dev: str, media_id: str, sha256: str) -> bool:
        """Whether the chunks of `dev`'s photo `media_id` received so far (0, 1, ... up to the
        first missing; the last copy of each, as central keeps it) join to `sha256`."""
        chunks: list[bytes] = []
        while got := self.on(f"grid/v1/{dev}/media/{media_id}/{len(chunks)}"):
            chunks.append(got[-1])
        return hashlib.sha256(b"".join(chunks)).hexdigest() == sha256

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 and wait until the broker has it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def close(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()

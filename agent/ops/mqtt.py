"""Ops-side MQTT: settings (ops TOML + flags, the agent's [broker] keys) and a small paho client."""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import ssl
import threading
import time
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config.model import BrokerConfig, format_errors
from agent.config.paths import UserPath, expand
from agent.errors import ConfigError, LinkError
from sync.envelope import PREFIX

log = logging.getLogger(__name__)

# Exit codes of the ops commands: 0 done, 1 the device refused / the stream has problems,
# 2 bad input, 3 no ack in time, 4 broker unreachable (130: interrupted).
EXIT_REFUSED, EXIT_INPUT, EXIT_NO_ACK, EXIT_LINK = 1, 2, 3, 4


class SigningConfig(BaseModel):
    """[signing]: the operator's private key file and its kid (the key never leaves this host)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: UserPath | None = None
    kid: str | None = Field(default=None, min_length=1, max_length=64)


class OpsConfig(BaseModel):
    """The ops TOML file: [broker] exactly as in the agent's config, plus [signing]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = BrokerConfig()
    signing: SigningConfig = SigningConfig()


def load_ops_config(path: Path | None) -> OpsConfig:
    """Read the ops TOML file (None: all defaults); ConfigError names every bad key."""
    if path is None:
        return OpsConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None
    try:
        return OpsConfig.model_validate(data)
    except ValidationError as exc:
        from agent.commands.check_config import explain

        # A misspelt key gets "did you mean", as in the agent's own config.
        raise ConfigError(explain(format_errors(exc), data, OpsConfig)) from None


def with_overrides(
    cfg: OpsConfig, broker: Mapping[str, Any], signing: Mapping[str, Any]
) -> OpsConfig:
    """`cfg` with the command-line values that were given (None means not given)."""
    b = {k: v for k, v in broker.items() if v is not None}
    s = {k: v for k, v in signing.items() if v is not None}
    data = {
        "broker": {**cfg.broker.model_dump(exclude_none=True), **b},
        "signing": {**cfg.signing.model_dump(exclude_none=True), **s},
    }
    try:
        return OpsConfig.model_validate(data)
    except ValidationError as exc:
        from agent.commands.check_config import explain

        # A misspelt key gets "did you mean", as in the agent's own config.
        raise ConfigError(explain(format_errors(exc), data, OpsConfig)) from None


def broker_flags() -> argparse.ArgumentParser:
    """A parent parser with the [broker] keys as flags, the ops config file and the client id."""
    broker = argparse.ArgumentParser(add_help=False)
    g = broker.add_argument_group("broker (override the [broker] section of the ops config)")
    g.add_argument(
        "--ops-config",
        metavar="TOML",
        help="ops config file (default ~/.config/edge-agent/ops.toml if present)",
    )
    g.add_argument("--host")
    g.add_argument("--port", type=int)
    g.add_argument("--tls", action="store_const", const=True, default=None)
    g.add_argument("--ca-file", metavar="PEM")
    g.add_argument("--cert-file", metavar="PEM", help="client certificate")
    g.add_argument("--key-file", metavar="PEM", help="client certificate's key (not the ops key)")
    g.add_argument("--username")
    g.add_argument("--password-file", metavar="FILE")
    g.add_argument("--protocol", type=int, choices=(3, 5))
    g.add_argument("--client-id", help="MQTT client id (default: ops-<pid>-<random>)")
    return broker


def signing_flags() -> argparse.ArgumentParser:
    """A parent parser with the [signing] keys as flags."""
    signing = argparse.ArgumentParser(add_help=False)
    g = signing.add_argument_group("signing (override [signing] of the ops config)")
    g.add_argument("--signing-key", metavar="PEM", help="the ops private key (from keygen)")
    g.add_argument("--kid", help="key id the devices trust it under")
    return signing


def default_ops_config() -> Path | None:
    """~/.config/edge-agent/ops.toml (or under $XDG_CONFIG_HOME) when it exists."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "edge-agent" / "ops.toml"
    return path if path.is_file() else None


def settings(args: argparse.Namespace) -> OpsConfig:
    """The ops config file with the flags that were given laid over it."""
    path = expand(args.ops_config) if args.ops_config else default_ops_config()
    names = ("host", "port", "tls", "ca_file", "cert_file", "key_file", "username")
    broker = {n: getattr(args, n) for n in (*names, "password_file", "protocol")}
    signing = {"key_file": getattr(args, "signing_key", None), "kid": getattr(args, "kid", None)}
    return with_overrides(load_ops_config(path), broker, signing)


@dataclass(frozen=True, slots=True)
class Message:
    """A message as the ops client received it."""

    topic: str
    payload: bytes
    retain: bool
    received_ms: int
    # For a manual-ack client (ops archive): the packet id, QoS and the connection it came on.
    mid: int = 0
    qos: int = 0
    conn: int = 0


class OpsClient:
    """A blocking paho client; its network loop runs in paho's thread, messages go to a queue.

    `persistent`: clean start false with a day's session expiry, so the broker keeps what
    arrives while this client is away (needs a fixed `client_id`). `manual_ack`: a QoS 1
    message is acknowledged only by `ack()`, after the caller has made it durable; the broker
    redelivers what was never acknowledged. `receive_maximum`: how many unacknowledged
    messages the broker may send at once (MQTT 5).
    """

    def __init__(
        self,
        cfg: BrokerConfig,
        client_id: str | None = None,
        *,
        persistent: bool = False,
        manual_ack: bool = False,
        receive_maximum: int | None = None,
        queue_max: int = 0,
    ) -> None:
        self._cfg = cfg
        v5 = cfg.protocol == 5
        # Never a device id: a central tool must not take over a device's session.
        cid = client_id or f"ops-{os.getpid()}-{os.urandom(4).hex()}"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cid,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else not persistent,
            manual_ack=manual_ack,
        )
        self._persistent = persistent
        self._receive_maximum = receive_maximum
        self._conn = 0  # +1 on every connect and drop: acks never cross a connection
        self._nodes = cfg.nodes()  # broker.hosts: paho's own reconnect dials the next one
        self._node = 0
        if cfg.tls:
            self._client.tls_set(
                ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                certfile=str(cfg.cert_file) if cfg.cert_file else None,
                keyfile=str(cfg.key_file) if cfg.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if cfg.username is not None:
            password = None
            if cfg.password_file is not None:
                try:
                    password = cfg.password_file.read_text().strip()
                except OSError as exc:
                    raise ConfigError(
                        [(str(cfg.password_file), f"cannot read: {exc.strerror}")]
                    ) from None
            self._client.username_pw_set(cfg.username, password)
        self.messages: queue.Queue[Message] = queue.Queue(queue_max)
        self._connected = threading.Event()
        self._connack: int | None = None
        self._subacks: dict[int, threading.Event] = {}
        self._topics: list[str] = []
        self._lock = threading.Lock()
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._next_node

    # paho callbacks run in paho's network thread.
    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connack = int(rc.value) if hasattr(rc, "value") else int(rc)
        with self._lock:
            self._conn += 1
            topics = list(self._topics)
        if self._connack == 0 and topics:
            # paho reconnects by itself after a drop; a clean session needs its topics again.
            log.warning("reconnected to the broker; subscribing again")
            self._client.subscribe([(t, 1) for t in topics])
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        with self._lock:
            self._conn += 1
        self._next_node()

    def _next_node(self, *_: Any) -> None:
        """broker.hosts: paho's own reconnect (and each failed retry) dials the next node.

        paho's `host`/`port` setters refuse while a lost connection is being retried, which is
        exactly when this runs; its reconnect reads `_host`/`_port`, so those are set.
        """
        if len(self._nodes) > 1:
            self._node = (self._node + 1) % len(self._nodes)
            self._client._host, self._client._port = self._nodes[self._node]

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        now = int(time.time() * 1000)
        conn = self._conn
        m = Message(msg.topic, bytes(msg.payload), bool(msg.retain), now, msg.mid, msg.qos, conn)
        # A bounded queue blocks paho's thread when full: TCP then slows the broker down.
        self.messages.put(m)

    def ack(self, msg: Message) -> bool:
        """Acknowledge `msg` (manual-ack client) if its connection is still the current one.

        False when the connection changed since it arrived: the broker redelivers it on the
        new connection (same message, possibly another packet id), and that copy is
        acknowledged instead, so a stale packet id never acknowledges a different message.
        """
        if msg.qos == 0:
            return True
        with self._lock:
            if msg.conn != self._conn or not self._client.is_connected():
                return False
            return self._client.ack(msg.mid, msg.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            done = self._subacks.setdefault(mid, threading.Event())
        done.set()

    def __enter__(self) -> OpsClient:
        """Connect to the first node that answers (broker.hosts in order); LinkError if none."""
        errors = []
        for i in range(len(self._nodes)):
            self._node = i
            try:
                return self._enter(*self._nodes[i])
            except LinkError as exc:
                errors.append(str(exc))
        raise LinkError("; ".join(errors))

    def _enter(self, host: str, port: int) -> OpsClient:
        c = self._cfg
        self._connected.clear()
        props = None
        if c.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self._persistent:
                props.SessionExpiryInterval = 86400
            if self._receive_maximum:
                props.ReceiveMaximum = self._receive_maximum
        try:
            self._client.connect(
                host,
                port,
                keepalive=c.keepalive_s,
                clean_start=not self._persistent
                if c.protocol == 5
                else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"cannot connect to {host}:{port}: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(c.connect_timeout_s):
            self._stop()
            raise LinkError(f"no CONNACK from {host}:{port} in {c.connect_timeout_s} s")
        if self._connack != 0:
            self._stop()
            raise LinkError(f"broker {host}:{port} refused the connection ({self._connack})")
        log.debug("connected to %s:%d", host, port)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topics: Collection[str], timeout: float = 10.0) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK (so nothing sent after is missed)."""
        rc, mid = self._client.subscribe([(t, 1) for t in topics])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise LinkError(f"subscribe failed: {paho.error_string(rc)}")
        with self._lock:
            done = self._subacks.setdefault(mid, threading.Event())
            self._topics.extend(topics)
        if not done.wait(timeout):
            raise LinkError(f"no SUBACK within {timeout} s")

    def publish(self, topic: str, payload: bytes, *, retain: bool, timeout: float = 10.0) -> None:
        """Publish at QoS 1 and wait until the broker has it (PUBACK)."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish failed: {paho.error_string(info.rc)}")
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise LinkError(f"the broker did not acknowledge {topic} within {timeout} s")

    def get(self, timeout: float) -> Message | None:
        """The next received message, or None after `timeout` seconds."""
        try:
            return self.messages.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None


def ack_topic(dev: str) -> str:
    """Where device `dev` acks documents (§2)."""
    return f"{PREFIX}/{dev}/ack"


def ack_of(msg: Message, ref: str) -> tuple[str, dict[str, Any]] | None:
    """(device, ack envelope) when `msg` is an ack whose body.ref is `ref`."""
    parts = msg.topic.split("/")
    if len(parts) != 4 or parts[3] != "ack":
        return None
    try:
        env = json.loads(msg.payload)
    except ValueError:
        return None
    if not isinstance(env, dict) or not isinstance(env.get("body"), dict):
        return None
    if env["body"].get("ref") != ref:
        return None
    return parts[2], env

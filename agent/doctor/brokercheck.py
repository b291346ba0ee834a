"""The broker, step by step: DNS, TCP, TLS handshake with the configured files, MQTT login, and a
round trip on the device's own topics with client id `<id>-doctor` (never kicks the agent off)."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from agent.doctor.finding import Finding

TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class BrokerFacts:
    """What the broker probe saw; a step after a failed one is not tried (None)."""

    dns_error: str | None = None
    addresses: tuple[str, ...] = ()
    tcp_error: str | None = None
    tls_error: tuple[str, str] | None = None  # (files|verify|handshake, message)
    connect_error: str | None = None
    read_ok: bool | None = None  # SUBSCRIBE to the device's own cmd topic granted
    write_ok: bool | None = None  # PUBLISH QoS 1 on the device's own tree acknowledged
    echo: bool | None = None  # the published message came back (None: not subscribable)


def broker_verdict(target: str, tls: bool, f: BrokerFacts) -> list[Finding]:
    """One finding per step up to the first failure."""
    p: dict[str, Any] = {"target": target}
    if f.dns_error is not None:
        return [Finding("broker.dns", "fail", "dns_fail", {**p, "why": f.dns_error})]
    out = [Finding("broker.dns", "pass", "dns_ok", {**p, "addrs": ", ".join(f.addresses)})]
    if f.tcp_error is not None:
        return [*out, Finding("broker.tcp", "fail", "tcp_fail", {**p, "why": f.tcp_error})]
    out.append(Finding("broker.tcp", "pass", "tcp_ok", p))
    if tls:
        if f.tls_error is not None:
            kind, why = f.tls_error
            return [*out, Finding("broker.tls", "fail", f"tls_{kind}", {**p, "why": why})]
        out.append(Finding("broker.tls", "pass", "tls_ok", p))
    if f.connect_error is not None:
        return [*out, Finding("broker.mqtt", "fail", "mqtt_refused", {**p, "why": f.connect_error})]
    out.append(Finding("broker.mqtt", "pass", "mqtt_ok", p))
    if f.read_ok is False:
        return [*out, Finding("broker.acl", "fail", "acl_read", p)]
    if f.write_ok is False:
        return [*out, Finding("broker.acl", "fail", "acl_write", p)]
    if f.echo is False:
        return [*out, Finding("broker.acl", "fail", "no_echo", p)]
    return [*out, Finding("broker.acl", "pass", "roundtrip_ok" if f.echo else "acked_ok", p)]


def _tls_context(b: Any) -> ssl.SSLContext:
    # As paho's tls_set(cert_reqs=CERT_REQUIRED): verify the server and its host name.
    ctx = ssl.create_default_context(cafile=str(b.ca_file) if b.ca_file else None)
    if b.cert_file is not None:
        ctx.load_cert_chain(str(b.cert_file), str(b.key_file))
    return ctx


def _network(b: Any) -> BrokerFacts:
    try:
        infos = socket.getaddrinfo(b.host, b.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return BrokerFacts(dns_error=str(exc))
    addrs = tuple(dict.fromkeys(str(i[4][0]) for i in infos))
    try:
        sock = socket.create_connection((b.host, b.port), timeout=TIMEOUT_S)
    except OSError as exc:
        return BrokerFacts(addresses=addrs, tcp_error=exc.strerror or str(exc))
    with sock:
        if not b.tls:
            return BrokerFacts(addresses=addrs)
        try:
            ctx = _tls_context(b)
        except (ssl.SSLError, OSError, ValueError) as exc:
            return BrokerFacts(addresses=addrs, tls_error=("files", str(exc)))
        try:
            with ctx.wrap_socket(sock, server_hostname=b.host):
                pass
        except ssl.SSLCertVerificationError as exc:
            return BrokerFacts(
                addresses=addrs, tls_error=("verify", exc.verify_message or str(exc))
            )
        except (ssl.SSLError, OSError) as exc:
            return BrokerFacts(addresses=addrs, tls_error=("handshake", str(exc)))
    return BrokerFacts(addresses=addrs)


def probe_broker(cfg: Any, timeout_s: float = TIMEOUT_S) -> BrokerFacts:
    """Run the steps in order (blocking: run it in a thread)."""
    net = _network(cfg.broker)
    if net.dns_error or net.tcp_error or net.tls_error:
        return net
    return _mqtt(cfg, net, timeout_s)


class _Probe:
    """The on-site client `D-doctor` and what its callbacks saw (paho's thread sets them)."""

    def __init__(self, cfg: Any, timeout_s: float) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        b, dev = cfg.broker, cfg.device.id
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{dev}-doctor",
            protocol=paho.MQTTv5 if b.protocol == 5 else paho.MQTTv311,
        )
        self.client.connect_timeout = timeout_s
        if b.tls:
            self.client.tls_set_context(_tls_context(b))
        if b.username is not None:
            password = b.password_file.read_text().strip() if b.password_file else None
            self.client.username_pw_set(b.username, password)
        self.nonce = secrets.token_hex(8)
        self.topics = (f"grid/v1/{dev}/cmd", f"grid/v1/{dev}/doctor")
        self.state: dict[str, Any] = {}
        self.events = {k: threading.Event() for k in ("conn", "sub", "pub", "echo")}
        self.client.on_connect, self.client.on_subscribe = self._on_connect, self._on_subscribe
        self.client.on_publish, self.client.on_message = self._on_publish, self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.state["rc"] = rc
        self.events["conn"].set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, codes: Any, _p: Any = None) -> None:
        self.state["sub"] = [not c.is_failure for c in codes]
        self.events["sub"].set()

    def _on_publish(self, _c: Any, _u: Any, _mid: Any, rc: Any, _p: Any = None) -> None:
        self.state["pub"] = not rc.is_failure
        self.events["pub"].set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if self.nonce.encode() in msg.payload:
            self.events["echo"].set()

    def round_trip(self, net: BrokerFacts, timeout_s: float) -> BrokerFacts:
        """Connected: read rights, write rights, and the message coming back (§2 doctor)."""
        events, state, client = self.events, self.state, self.client
        if not events["conn"].wait(timeout_s):
            return BrokerFacts(addresses=net.addresses, connect_error="no CONNACK")
        if state["rc"].is_failure:
            return BrokerFacts(addresses=net.addresses, connect_error=str(state["rc"]))
        client.subscribe([(topic, 1) for topic in self.topics])
        if not events["sub"].wait(timeout_s):
            return BrokerFacts(addresses=net.addresses, read_ok=False)
        read_ok, echo_ok = state["sub"]
        if not read_ok:
            return BrokerFacts(addresses=net.addresses, read_ok=False)
        body = json.dumps({"doctor": self.nonce}).encode()
        client.publish(self.topics[1], body, qos=1, retain=False)
        if not events["pub"].wait(timeout_s) or not state["pub"]:
            return BrokerFacts(addresses=net.addresses, read_ok=True, write_ok=False)
        echo = events["echo"].wait(timeout_s) if echo_ok else None
        return BrokerFacts(addresses=net.addresses, read_ok=True, write_ok=True, echo=echo)


def _mqtt(cfg: Any, net: BrokerFacts, timeout_s: float) -> BrokerFacts:
    probe = _Probe(cfg, timeout_s)
    try:
        probe.client.connect(cfg.broker.host, cfg.broker.port, keepalive=30)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return BrokerFacts(addresses=net.addresses, connect_error=str(exc))
    probe.client.loop_start()
    try:
        return probe.round_trip(net, timeout_s)
    finally:
        with contextlib.suppress(OSError):
            probe.client.disconnect()
        probe.client.loop_stop()

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


def _mqtt(cfg: Any, net: BrokerFacts, timeout_s: float) -> BrokerFacts:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    b, dev = cfg.broker, cfg.device.id
    v5 = b.protocol == 5
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{dev}-doctor",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    client.connect_timeout = timeout_s
    if b.tls:
        client.tls_set_context(_tls_context(b))
    if b.username is not None:
        password = b.password_file.read_text().strip() if b.password_file else None
        client.username_pw_set(b.username, password)
    nonce = secrets.token_hex(8)
    echo_topic = f"grid/v1/{dev}/doctor"
    state: dict[str, Any] = {}
    events = {k: threading.Event() for k in ("conn", "sub", "pub", "echo")}

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        state["rc"] = rc
        events["conn"].set()

    def on_subscribe(_c: Any, _u: Any, _mid: Any, codes: Any, _p: Any = None) -> None:
        state["sub"] = [not c.is_failure for c in codes]
        events["sub"].set()

    def on_publish(_c: Any, _u: Any, _mid: Any, rc: Any, _p: Any = None) -> None:
        state["pub"] = not rc.is_failure
        events["pub"].set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if nonce.encode() in msg.payload:
            events["echo"].set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_publish, client.on_message = on_publish, on_message
    try:
        client.connect(b.host, b.port, keepalive=30)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return BrokerFacts(addresses=net.addresses, connect_error=str(exc))
    client.loop_start()
    try:
        if not events["conn"].wait(timeout_s):
            return BrokerFacts(addresses=net.addresses, connect_error="no CONNACK")
        if state["rc"].is_failure:
            return BrokerFacts(addresses=net.addresses, connect_error=str(state["rc"]))
        client.subscribe([(f"grid/v1/{dev}/cmd", 1), (echo_topic, 1)])
        if not events["sub"].wait(timeout_s):
            return BrokerFacts(addresses=net.addresses, read_ok=False)
        read_ok, echo_ok = state["sub"]
        if not read_ok:
            return BrokerFacts(addresses=net.addresses, read_ok=False)
        body = json.dumps({"doctor": nonce}).encode()
        client.publish(echo_topic, body, qos=1, retain=False)
        if not events["pub"].wait(timeout_s) or not state["pub"]:
            return BrokerFacts(addresses=net.addresses, read_ok=True, write_ok=False)
        echo = events["echo"].wait(timeout_s) if echo_ok else None
        return BrokerFacts(addresses=net.addresses, read_ok=True, write_ok=True, echo=echo)
    finally:
        with contextlib.suppress(OSError):
            client.disconnect()
        client.loop_stop()

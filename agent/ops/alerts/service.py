"""`edge-agent ops alerts`: the broker's messages through the rules into the deliverer.

The MQTT side is the ops client (agent/ops/mqtt.py, the one module that speaks paho); its
blocking `get` runs in a worker thread with a one-second bound, which is also how often the
time-based rule (devices offline too long) is judged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent import lang as lang_mod
from agent.config.paths import expand
from agent.errors import ConfigError
from agent.ops.alerts.delivery import Deliverer
from agent.ops.alerts.formats import Kind, Sink
from agent.ops.alerts.journal import Journal
from agent.ops.alerts.rules import Alert, Incoming, Rules, State, step, tick
from agent.ops.mqtt import OpsClient, settings

log = logging.getLogger(__name__)

TOPICS = ("grid/v1/+/evt/+", "grid/v1/+/ack", "grid/v1/+/state", "grid/v1/+/status")
DEFAULT_DB = "/var/lib/edge-archive/alerts.db"
_DRAIN_S = 30.0  # at the end of a --seconds run: time left for retries in flight


def incoming(topic: str, payload: bytes) -> Incoming | None:
    """A grid/v1 device message the rules read; None for anything else (never raises)."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[:2] != ["grid", "v1"] or parts[2] in ("zone", "central"):
        return None
    what = "/".join(parts[3:])
    if what not in ("ack", "state", "status") and not (what.startswith("evt/") and len(parts) == 5):
        return None
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        return None
    return Incoming(parts[2], what, doc) if isinstance(doc, dict) else None


async def watch(
    client: OpsClient,
    rules: Rules,
    deliverer: Deliverer,
    *,
    seconds: float | None,
    clock: Callable[[], int],
    stop: asyncio.Event | None = None,
) -> int:
    """Judge every message and the passing time until `seconds` (None: forever) or `stop`;
    returns the number of alerts raised."""
    until = None if seconds is None else clock() + int(seconds * 1000)
    state, raised = State(), 0
    while (until is None or clock() < until) and not (stop is not None and stop.is_set()):
        msg = await asyncio.to_thread(client.get, 1.0)
        now = clock()
        alerts: list[Alert] = []
        if msg is not None and (inc := incoming(msg.topic, msg.payload)) is not None:
            state, alerts = step(rules, state, inc, now)
        state, late = tick(rules, state, now)
        for alert in (*alerts, *late):
            raised += await deliverer.submit(alert)
    return raised


def _target(value: str) -> str:
    """A webhook URL, or @FILE holding it (robot URLs carry their key: keep them off `ps`)."""
    if not value.startswith("@"):
        return value
    try:
        return expand(value[1:]).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([(value[1:], f"cannot read: {exc.strerror}")]) from None


def sinks(args: argparse.Namespace) -> list[Sink]:
    """The webhooks the flags name, numbered by kind (json-1, wecom-1, dingtalk-1 ...)."""
    secret = None
    if args.dingtalk_secret_file:
        secret = _target("@" + args.dingtalk_secret_file)
    out: list[Sink] = []
    given: Sequence[tuple[Kind, list[str] | None]] = (
        ("json", args.webhook),
        ("wecom", args.wecom),
        ("dingtalk", args.dingtalk),
    )
    for kind, values in given:
        for i, value in enumerate(values or [], start=1):
            out.append(
                Sink(f"{kind}-{i}", kind, _target(value), secret if kind == "dingtalk" else None)
            )
    if not out:
        raise ConfigError([("ops alerts", "give at least one --webhook, --wecom or --dingtalk")])
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _serve(args: argparse.Namespace, client: OpsClient, journal: Journal) -> int:
    rules = Rules(offline_after_ms=int(args.offline_min * 60_000), backlog_over=args.backlog)
    which = lang_mod.pick(args.lang, os.environ)
    stop = asyncio.Event()
    # SIGTERM (systemd stop) ends the watch like --seconds: deliveries in flight get _DRAIN_S.
    if threading.current_thread() is threading.main_thread():  # signals reach that one only
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Deliverer(sinks(args), journal, which, max_attempts=args.attempts) as deliverer:
        raised = await watch(
            client, rules, deliverer, seconds=args.seconds, clock=_now_ms, stop=stop
        )
        # Whatever is still pending stays in the journal and is delivered at the next start.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_S):  # not wait_for: 3.11's can drop a cancel
                await deliverer.drain()
    return raised


def cmd_alerts(args: argparse.Namespace) -> int:
    """Subscribe, judge and deliver until Ctrl-C / SIGTERM (or --seconds)."""
    sinks(args)  # a missing webhook is an input error before any connection
    cfg = settings(args)
    with Journal(expand(args.db)) as journal, OpsClient(cfg.broker, args.client_id) as client:
        client.subscribe(TOPICS)
        log.info("watching the fleet for alerts (%d webhooks)", len(sinks(args)))
        with contextlib.suppress(KeyboardInterrupt):  # how a foreground run normally ends
            asyncio.run(_serve(args, client, journal))
    return 0


def register(sub: Any, guard: Callable[[Any], Any], broker: argparse.ArgumentParser) -> None:
    """Add `alerts` to the `ops` sub-commands."""
    what = "alerts to webhooks (JSON, WeCom, DingTalk): SOS, severe incidents, offline ..."
    p = sub.add_parser("alerts", help=what, description=what, parents=[broker])
    p.set_defaults(func=guard(cmd_alerts))
    p.add_argument("--webhook", action="append", metavar="URL", help="plain JSON POST (repeat)")
    p.add_argument("--wecom", action="append", metavar="URL", help="WeCom group robot (or @FILE)")
    p.add_argument("--dingtalk", action="append", metavar="URL", help="DingTalk robot (or @FILE)")
    p.add_argument("--dingtalk-secret-file", metavar="FILE", help="DingTalk 加签 secret (SEC...)")
    p.add_argument("--offline-min", type=float, default=10.0, help="device offline alert (min)")
    p.add_argument("--backlog", type=int, default=1000, help="outbox depth alert threshold")
    p.add_argument("--attempts", type=int, default=12, help="delivery attempts per webhook")
    p.add_argument("--db", default=DEFAULT_DB, help=f"journal SQLite (default {DEFAULT_DB})")
    p.add_argument("--lang", choices=("zh", "en"), help="alert texts: zh (default) or en")
    p.add_argument(
        "--seconds", type=float, help="stop after this long (default: run until stopped)"
    )

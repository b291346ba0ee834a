"""Pure alert rules over the fleet's message stream: what deserves a person's attention now.

`step(state, msg, now_ms)` judges one message; `tick(state, now_ms)` judges the passing of time
(devices offline too long). Both return the new state and the alerts raised. Each alert has a
`key` that names the fact it reports (a device's alarm id, an offline spell's bdseq...), so a
message delivered twice (QoS 1 redelivery, a device's republish with the same id) raises the
same key, and the delivery side sends each key once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.ops.alarms import ALARM_TYPES, incident_level
from agent.ops.alerts import texts


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds (the CLI's flags)."""

    offline_after_ms: int = 10 * 60_000
    backlog_over: int = 1000
    incident_levels: frozenset[int] = frozenset({1, 2})


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message: device, what it is (`evt/alarm`, `ack`, `state`, `status`) and its JSON."""

    dev: str
    what: str
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing to tell people; `key` identifies the fact (deduplication)."""

    key: str
    rule: str
    dev: str
    ts: int
    severity: int  # 1 = most urgent
    facts: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class State:
    """What the rules remember: offline spells (since when, bdseq) and devices over backlog."""

    offline: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)
    alerted_offline: frozenset[str] = frozenset()
    backlogged: frozenset[str] = frozenset()


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _event_alert(rules: Rules, dev: str, kind: str, env: Mapping[str, Any]) -> Alert | None:
    body, ident, ts = env.get("body"), env.get("id"), env.get("ts")
    if not isinstance(body, dict) or not isinstance(ident, str) or not isinstance(ts, int):
        return None
    if kind == "alarm" and body.get("type") in ALARM_TYPES:
        return Alert(f"alarm:{dev}:{ident}", str(body["type"]), dev, ts, 1, body)
    level = incident_level(body)
    if kind == "incident" and level is not None and level in rules.incident_levels:
        return Alert(f"incident:{dev}:{ident}", "incident", dev, ts, level, body)
    if kind == "detection" and body.get("rule") == "camera_offline":
        if body.get("state") != "start":
            return None  # one alert per spell: the start; `end` says it is back
        spell = f"{body.get('camera_id')}:{body.get('track')}"
        return Alert(f"camera_offline:{dev}:{spell}", "camera_offline", dev, ts, 2, body)
    if kind == "ack" and body.get("status") == "rolled_back":
        return Alert(f"rolled_back:{dev}:{body.get('ref')}", "rolled_back", dev, ts, 2, body)
    return None


def _state(state: State, dev: str, doc: Mapping[str, Any], now_ms: int) -> State:
    bdseq = doc.get("bdseq") if isinstance(doc.get("bdseq"), int) else None
    if doc.get("online") is True:
        offline = {d: v for d, v in state.offline.items() if d != dev}
        return replace(state, offline=offline, alerted_offline=state.alerted_offline - {dev})
    if doc.get("online") is False and dev not in state.offline:
        return replace(state, offline={**state.offline, dev: (now_ms, bdseq)})
    return state


def _status(
    rules: Rules, state: State, dev: str, doc: Mapping[str, Any], now_ms: int
) -> tuple[State, list[Alert]]:
    outbox = doc.get("outbox")
    depth = _num(outbox.get("depth")) if isinstance(outbox, dict) else None
    if depth is None:
        return state, []
    if depth <= rules.backlog_over:
        return replace(state, backlogged=state.backlogged - {dev}), []
    if dev in state.backlogged:
        return state, []  # still over: one alert per spell above the threshold
    raw = doc.get("ts")
    ts = raw if isinstance(raw, int) else now_ms
    alert = Alert(
        f"backlog:{dev}:{ts}",
        "backlog",
        dev,
        ts,
        3,
        {"depth": int(depth), "over": rules.backlog_over},
    )
    return replace(state, backlogged=state.backlogged | {dev}), [alert]


def step(rules: Rules, state: State, msg: Incoming, now_ms: int) -> tuple[State, list[Alert]]:
    """Judge one message (envelope for `evt/*` and `ack`, the JSON itself for state/status)."""
    if msg.what.startswith("evt/") or msg.what == "ack":
        kind = "ack" if msg.what == "ack" else msg.what[4:]
        alert = _event_alert(rules, msg.dev, kind, msg.doc)
        return state, [alert] if alert is not None else []
    if msg.what == "state":
        return _state(state, msg.dev, msg.doc, now_ms), []
    if msg.what == "status":
        return _status(rules, state, msg.dev, msg.doc, now_ms)
    return state, []


def tick(rules: Rules, state: State, now_ms: int) -> tuple[State, list[Alert]]:
    """Devices offline for longer than the threshold, once per offline spell."""
    alerts: list[Alert] = []
    for dev, (since, bdseq) in sorted(state.offline.items()):
        if dev in state.alerted_offline or now_ms - since < rules.offline_after_ms:
            continue
        facts = {"since_ms": since, "minutes": (now_ms - since) // 60_000, "bdseq": bdseq}
        # One spell = one bdseq (the will carries the CONNECT's): the same key after a restart.
        spell = bdseq if bdseq is not None else f"t{since}"
        alerts.append(Alert(f"offline:{dev}:{spell}", "offline", dev, now_ms, 2, facts))
    done = frozenset(a.dev for a in alerts)
    return replace(state, alerted_offline=state.alerted_offline | done), alerts


def text(alert: Alert, lang: texts.Lang) -> str:
    """The alert in words for people (Simplified Chinese by default)."""
    return texts.render(alert.rule, alert.dev, alert.facts, lang)

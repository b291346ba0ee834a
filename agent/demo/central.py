"""The operator's side of the demo: what the broker delivers, a live view, and the summary."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agent.ops.streamcheck import Received, Report, check
from sync.envelope import PREFIX

RECENT = 12


class Central:
    """Subscribes to every device's topics; keeps what arrived (paho's thread, under a lock)."""

    def __init__(self, host: str, port: int, devices: Sequence[str], verbose: bool) -> None:
        self.devices = list(devices)
        self.verbose = verbose
        self._lock = threading.Lock()
        self.received: dict[str, list[Received]] = {d: [] for d in devices}
        self.kinds: dict[str, collections.Counter[str]] = {
            d: collections.Counter() for d in devices
        }
        self.seen: dict[str, set[str]] = {d: set() for d in devices}
        self.health: dict[str, dict[str, Any]] = {d: {} for d in devices}
        self.online: dict[str, str] = dict.fromkeys(devices, "—")
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT)
        # Every line, for a run without a terminal (printed as they come, then dropped).
        self._lines: collections.deque[str] = collections.deque(maxlen=10_000)
        self.rules: dict[str, collections.Counter[str]] = {
            d: collections.Counter() for d in devices
        }
        self.broker_up = True
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="demo-central", clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_a: Any) -> None:
        self.broker_up = True
        client.subscribe(f"{PREFIX}/+/#", qos=1)

    def _on_disconnect(self, *_a: Any) -> None:
        self.broker_up = False

    def note(self, text: str) -> None:
        """A line in the view's event list (the demo's own steps)."""
        with self._lock:
            self._add(f"[magenta]{time.strftime('%H:%M:%S')} demo[/] {text}")

    def _add(self, line: str) -> None:
        self.recent.append(line)
        self._lines.append(line)

    def take_lines(self) -> list[str]:
        """The event lines since the last call, without markup (for a piped run)."""
        with self._lock:
            lines = [Text.from_markup(line).plain for line in self._lines]
            self._lines.clear()
        return lines

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 3 or parts[2] not in self.received:
            return
        dev, rest = parts[2], "/".join(parts[3:])
        with self._lock:
            self.received[dev].append(Received(msg.topic, bytes(msg.payload)))
            if rest.startswith("media/"):
                return
            try:
                data = json.loads(msg.payload)
            except ValueError:
                return
            if rest == "state":
                self.online[dev] = "[green]online[/]" if data.get("online") else "[red]offline[/]"
            elif rest == "status":
                self.health[dev] = data
            elif rest.startswith("evt/") or rest == "ack":
                self._event(dev, rest, data)

    def _event(self, dev: str, rest: str, data: dict[str, Any]) -> None:
        kind = rest.removeprefix("evt/")
        ident = str(data.get("id"))  # a forged id may be any JSON value (a list is unhashable)
        dup = ident in self.seen[dev]
        self.seen[dev].add(ident)
        if not dup:
            self.kinds[dev][kind] += 1
            if kind == "detection" and isinstance(data.get("body"), dict):
                body0 = data["body"]
                self.rules[dev][f"{body0.get('rule')} {body0.get('state')}"] += 1
        if kind == "media":
            return
        body = data.get("body", data)
        hist = " [yellow](caught up)[/]" if data.get("hist") else ""
        line = json.dumps(body, ensure_ascii=False) if self.verbose else describe(kind, body)
        stamp = time.strftime("%H:%M:%S")
        self._add(f"{stamp} [cyan]{dev}[/] [bold]{kind}[/] {escape(line)}{hist}")

    def view(self, phase: str) -> Group:
        """The live view now."""
        with self._lock:
            devs = Table(title="devices", expand=True)
            for col in ("device", "state", "mode", "outbox", "gps", "cameras", "degraded"):
                devs.add_column(col)
            for d in self.devices:
                h = self.health[d]
                cams = h.get("cameras") or {}
                cam = ", ".join(f"{k} {v.get('fps', 0):.1f} fps" for k, v in cams.items())
                gps = h.get("gps") or {}
                devs.add_row(
                    d,
                    self.online[d],
                    str(h.get("mode", "—")),
                    str((h.get("outbox") or {}).get("depth", "—")),
                    "" if "cameras" in h else f"{gps.get('fix')} {gps.get('sats') or ''}",
                    cam,
                    ", ".join(h.get("degraded") or {}) or "none",
                )
            counts = Table(title="events delivered (unique)", expand=True)
            kinds = sorted({k for c in self.kinds.values() for k in c})
            counts.add_column("device")
            for k in kinds:
                counts.add_column(k, justify="right")
            for d in self.devices:
                counts.add_row(d, *(str(self.kinds[d][k]) for k in kinds))
            broker = "[green]up[/]" if self.broker_up else "[red]down[/]"
            recent = "\n".join(self.recent) or "…"
            return Group(
                Panel(f"broker {broker}   {phase}", title="Grid Edge demo"),
                devs,
                counts,
                Panel(recent, title="latest"),
            )

    def reports(self) -> dict[str, Report]:
        """streamcheck's verdict on each device's stream as the broker delivered it."""
        with self._lock:
            return {d: check(d, list(self.received[d])) for d in self.devices}

    def kind_counts(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Per device and kind: (unique, duplicates) as received."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        with self._lock:
            for d in self.devices:
                total: collections.Counter[str] = collections.Counter()
                ids: dict[str, set[str]] = collections.defaultdict(set)
                for r in self.received[d]:
                    rest = r.topic.split("/", 3)[3]
                    if not rest.startswith("evt/") and rest != "ack":
                        continue
                    kind = rest.removeprefix("evt/")
                    total[kind] += 1
                    ids[kind].add(str(json.loads(r.payload).get("id")))
                out[d] = {k: (len(ids[k]), total[k] - len(ids[k])) for k in sorted(total)}
        return out

    def rule_counts(self, dev: str) -> list[tuple[str, int]]:
        """Unique detections delivered per "rule state" (e.g. "crowd start"), sorted."""
        with self._lock:
            return sorted(self.rules[dev].items())

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish a document as the operations centre would."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        self.client.disconnect()
        self.client.loop_stop()


def describe(kind: str, body: dict[str, Any]) -> str:
    """One readable line for an event body."""
    if kind == "checkin":
        return f"{body.get('checkpoint_id')} by {body.get('method')}"
    if kind == "detection":
        return f"{body.get('rule')} {body.get('state')} in {body.get('zone')} ({body.get('count')})"
    if kind == "incident":
        return f"{body.get('category')} level {body.get('level')}: {body.get('note', '')}"
    if kind == "ack":
        return f"{body.get('typ')} {body.get('status')} {body.get('reason') or ''}".strip()
    if kind == "notice":
        return str(body.get("type"))
    return ", ".join(f"{k}={v}" for k, v in list(body.items())[:4])


def summary(central: Central, produced: dict[str, int], queued: dict[str, int]) -> Table:
    """Produced, delivered, duplicated, lost per device and kind."""
    reports = central.reports()
    t = Table(title="summary (what the broker delivered, checked by ops streamcheck)")
    for col in ("device", "kind", "delivered", "duplicated", "lost"):
        t.add_column(col, justify="right" if col not in ("device", "kind") else "left")
    for dev, kinds in central.kind_counts().items():
        for kind, (unique, dups) in kinds.items():
            t.add_row(dev, kind, str(unique), str(dups), "")
        for rule_state, n in central.rule_counts(dev):  # e.g. "detection crowd start"
            t.add_row(dev, f"  detection {rule_state}", str(n), "", "")
        rep = reports[dev]
        lost = len(rep.missing_seqs)
        t.add_row(
            f"[bold]{dev}[/]",
            f"[bold]all: produced {produced.get(dev, 0)}, outbox rows left {queued.get(dev, 0)}[/]",
            str(rep.unique),
            str(rep.duplicates),
            f"[bold {'red' if lost else 'green'}]{lost}[/]",
        )
    return t


def lost_total(central: Central) -> int:
    """Unexplained missing seqs over every device."""
    return sum(len(r.missing_seqs) for r in central.reports().values())

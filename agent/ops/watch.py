"""`ops watch`: a live table of events, acks and state as they arrive; optional JSONL archive."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent.errors import ConfigError
from agent.lang import Lang
from agent.ops.alarms import Alarm, alarm_of, labels, line, position, title, when
from agent.ops.mqtt import Message, OpsClient
from agent.ops.output import Output
from sync.envelope import PREFIX

log = logging.getLogger(__name__)
MAX_ALARMS = 10  # alarms kept in view above the scrolling rows


@dataclass(frozen=True, slots=True)
class Row:
    """One displayed line."""

    received_ms: int
    dev: str
    what: str  # evt/checkin, ack, state, reported, status
    seq: int | None
    summary: str
    alarm: Alarm | None = None  # SOS, man_down, lone_worker, a level 1-2 incident


def _get(d: dict[str, Any], *keys: str) -> str:
    return " ".join(f"{k}={d[k]}" for k in keys if d.get(k) is not None)


def _summary(what: str, data: dict[str, Any]) -> str:
    body = data.get("body") if isinstance(data.get("body"), dict) else data
    assert isinstance(body, dict)
    photos = body.get("photos")
    extra = f" photos={len(photos)}" if isinstance(photos, list) and photos else ""
    by_kind = {
        "evt/checkin": ("task_id", "checkpoint_id", "method", "dist_m"),
        "evt/incident": ("category", "level", "note"),
        "evt/patrol": ("task_id", "event", "checkpoint_id", "done", "total"),
        "evt/alarm": ("type", "note"),
        "evt/detection": ("camera_id", "rule", "state", "count"),
        "evt/media": ("media_id", "bytes", "chunks"),
        "evt/notice": ("type",),
        "ack": ("typ", "ver", "status", "reason"),
        "state": ("online", "bdseq", "agent", "mode", "reason"),
        "reported": ("config_ver", "tasks_ver"),
        "status": ("mode", "config_ver", "uptime_s"),
    }
    if what in by_kind:
        text = _get(body, *by_kind[what])
        if what == "reported" and isinstance(body.get("mode"), dict):
            text += f" mode={body['mode'].get('name')}"
        if what == "status" and isinstance(body.get("outbox"), dict):
            text += f" outbox={body['outbox'].get('depth')}"
        if data.get("hist"):
            text += " [hist]"
        return text + extra
    return json.dumps(body, ensure_ascii=False)[:120]


def describe(msg: Message, show_status: bool = False) -> Row | None:
    """The row for an upstream message; None for media chunks, documents and foreign topics."""
    parts = msg.topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX or parts[2] in ("zone", "central"):
        return None
    dev, what = parts[2], "/".join(parts[3:])
    shown = what in ("ack", "state", "reported") or (what.startswith("evt/") and len(parts) == 5)
    if not shown and not (show_status and what == "status"):
        return None
    try:
        data = json.loads(msg.payload)
    except ValueError:
        return Row(msg.received_ms, dev, what, None, f"[not JSON, {len(msg.payload)} bytes]")
    if not isinstance(data, dict):
        return Row(msg.received_ms, dev, what, None, "[not a JSON object]")
    seq = data.get("seq") if isinstance(data.get("seq"), int) else None
    return Row(msg.received_ms, dev, what, seq, _summary(what, data), alarm_of(dev, what, data))


class Archive:
    """Appends every message as one JSON line (topic, base64 payload, received ms) per UTC day."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError([(str(directory), f"cannot create: {exc.strerror}")]) from None
        self._day = ""
        self._file: TextIO | None = None
        self.count = 0

    def append(self, msg: Message) -> None:
        """Write one message and flush, so a crash of the watcher loses at most that line."""
        day = datetime.fromtimestamp(msg.received_ms / 1000, UTC).strftime("%Y%m%d")
        if day != self._day or self._file is None:
            self.close()
            self._file = (self.dir / f"grid-{day}.jsonl").open("a", encoding="utf-8")
            self._day = day
        line = {
            "topic": msg.topic,
            "payload": base64.b64encode(msg.payload).decode("ascii"),
            "received_ms": msg.received_ms,
            "retain": msg.retain,
        }
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Close the current file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_archive(directory: Path) -> Iterator[Message]:
    """Every archived message, files in name (day) order, lines in arrival order."""
    files = sorted(directory.glob("*.jsonl"))
    if not directory.is_dir() or not files:
        raise ConfigError([(str(directory), "no *.jsonl archive files here")])
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    payload = base64.b64decode(rec["payload"], validate=True)
                    yield Message(
                        str(rec["topic"]), payload, bool(rec.get("retain")), int(rec["received_ms"])
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError([(f"{path}:{n}", f"not an archive line: {exc}")]) from None


def _alarm_table(alarms: deque[Alarm], lang: Lang) -> Table:
    """The alarms of this watch, newest first, above the scrolling rows (they stay in view)."""
    words = labels(lang)
    t = Table(title=f"!!! {words['mark']} ({len(alarms)})", title_style="bold red", expand=True)
    for col in (words["time"], "device", "", words["at"], words["note"]):
        t.add_column(col, style="bold red")
    for a in reversed(alarms):
        t.add_row(
            Text(when(a, lang)),
            Text(a.dev),
            Text(title(a, lang)),
            Text(position(a, lang)),
            Text(a.note or ""),
        )
    return t


def _table(rows: deque[Row], caption: str) -> Table:
    t = Table(caption=caption, expand=True)
    t.add_column("time", no_wrap=True)
    t.add_column("device", no_wrap=True)
    t.add_column("topic", no_wrap=True)
    t.add_column("seq", justify="right")
    t.add_column("")
    for r in rows:
        seq = "" if r.seq is None else str(r.seq)
        # Text, not str: what a device sent must never be read as rich markup.
        style = "bold red" if r.alarm is not None else ""
        t.add_row(
            _clock(r.received_ms), Text(r.dev), Text(r.what), seq, Text(r.summary), style=style
        )
    return t


def _emit(o: Output, row: Row, lang: Lang) -> None:
    """A row for a pipe (alarms marked, in words) or a JSON line."""
    if o.json:
        alarm = asdict(row.alarm) if row.alarm is not None else None
        o.record({**asdict(row), "alarm": alarm, "event": "message"})
        return
    if row.alarm is not None:
        o.say(line(row.alarm, lang))
        return
    seq = "" if row.seq is None else f" seq={row.seq}"
    o.say(f"{_clock(row.received_ms)} {row.dev} {row.what}{seq} {row.summary}")


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


@dataclass
class _View:
    """What the live view shows: rows scroll, alarms stay."""

    rows: deque[Row]
    alarms: deque[Alarm]
    count: int = 0
    chunks: int = 0

    def render(self, archive: Archive | None, lang: Lang) -> Group | Table:
        caption = f"{self.count} messages, {self.chunks} media chunks"
        if archive is not None:
            caption += f", archived in {archive.dir}"
        table = _table(self.rows, caption)
        return Group(_alarm_table(self.alarms, lang), table) if self.alarms else table


def run_watch(
    client: OpsClient,
    *,
    out: Output,
    device: str | None = None,
    archive: Archive | None = None,
    seconds: float | None = None,
    stop: threading.Event | None = None,
    show_status: bool = False,
    max_rows: int = 30,
    ready: threading.Event | None = None,
    lang: Lang = "zh",
) -> int:
    """Watch until `seconds` pass or `stop` is set; return how many messages arrived."""
    client.subscribe([f"{PREFIX}/{device}/#" if device else f"{PREFIX}/#"])
    if ready is not None:
        ready.set()
    stop = stop or threading.Event()
    deadline = None if seconds is None else time.monotonic() + seconds
    view = _View(deque(maxlen=max_rows), deque(maxlen=MAX_ALARMS))
    live = Live(console=out.out, auto_refresh=False) if out.terminal else None
    try:
        if live is not None:
            live.start()
        while not stop.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                break
            msg = client.get(left)
            if msg is None:
                continue
            view.count += 1
            if archive is not None:
                archive.append(msg)
            row = describe(msg, show_status)
            if row is None:
                view.chunks += "/media/" in msg.topic
                continue
            view.rows.append(row)
            if row.alarm is not None:
                view.alarms.append(row.alarm)
            if live is None:
                _emit(out, row, lang)
            else:
                live.update(view.render(archive, lang), refresh=True)
    finally:
        if live is not None:
            live.stop()
        # Whatever is already queued is archived too, so a stop loses nothing received.
        while archive is not None and (msg := client.get(0)) is not None:
            archive.append(msg)
            view.count += 1
    return view.count

"""`ops watch`: a live table of events, acks and state as they arrive; optional JSONL archive."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent.errors import ConfigError
from agent.ops.mqtt import Message, OpsClient
from sync.envelope import PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Row:
    """One displayed line."""

    received_ms: int
    dev: str
    what: str  # evt/checkin, ack, state, reported, status
    seq: int | None
    summary: str


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
    return Row(msg.received_ms, dev, what, seq, _summary(what, data))


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
        t.add_row(_clock(r.received_ms), Text(r.dev), Text(r.what), seq, Text(r.summary))
    return t


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def run_watch(
    client: OpsClient,
    *,
    console: Console,
    device: str | None = None,
    archive: Archive | None = None,
    seconds: float | None = None,
    stop: threading.Event | None = None,
    show_status: bool = False,
    max_rows: int = 30,
    ready: threading.Event | None = None,
) -> int:
    """Watch until `seconds` pass or `stop` is set; return how many messages arrived."""
    client.subscribe([f"{PREFIX}/{device}/#" if device else f"{PREFIX}/#"])
    if ready is not None:
        ready.set()
    stop = stop or threading.Event()
    deadline = None if seconds is None else time.monotonic() + seconds
    rows: deque[Row] = deque(maxlen=max_rows)
    count = chunks = 0
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
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
            count += 1
            if archive is not None:
                archive.append(msg)
            row = describe(msg, show_status)
            if row is None:
                chunks += "/media/" in msg.topic
                continue
            rows.append(row)
            if live is None:
                console.print(
                    f"{_clock(row.received_ms)} {row.dev} {row.what}"
                    f"{'' if row.seq is None else f' seq={row.seq}'} {row.summary}",
                    markup=False,
                    highlight=False,
                )
            else:
                caption = f"{count} messages, {chunks} media chunks"
                if archive is not None:
                    caption += f", archived in {archive.dir}"
                live.update(_table(rows, caption), refresh=True)
    finally:
        if live is not None:
            live.stop()
        # Whatever is already queued is archived too, so a stop loses nothing received.
        while archive is not None and (msg := client.get(0)) is not None:
            archive.append(msg)
            count += 1
    return count

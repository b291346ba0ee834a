"""`ops devices`: one row per device from retained state and the live traffic of a window."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from agent.ops.mqtt import Message, OpsClient
from agent.ops.output import Output
from sync.envelope import PREFIX

TOPICS = (
    f"{PREFIX}/+/state",
    f"{PREFIX}/+/reported",
    f"{PREFIX}/+/status",
    f"{PREFIX}/+/ack",
    f"{PREFIX}/+/evt/+",
)
_NOT_DEVICES = {"central", "zone"}  # grid/v1/central/state matches grid/v1/+/state
BACKLOG_DEPTH = 1000  # an outbox deeper than this, or older than BACKLOG_AGE_MS, is in trouble
BACKLOG_AGE_MS = 15 * 60_000
LOW_DISK_MB = 200


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """What central knows about one device."""

    dev: str
    online: bool | None
    reason: str | None  # why offline: `lost` (will) or `shutdown`
    bdseq: int | None
    agent: str | None
    role: str | None
    config_ver: int | None
    tasks_ver: int | None
    mode: str | None
    mode_scope: str | None
    last_seen_ms: int | None  # when a live (not retained) message of it arrived here
    zones: list[str] = field(default_factory=list)
    state_ts: int | None = None  # the device's own time of its newest state/reported/status
    status: dict[str, Any] | None = None  # the last status body seen in the window
    last_ack: dict[str, Any] | None = None  # the last ack body seen in the window
    trouble: list[str] = field(default_factory=list)
    problems: list[str] | None = None  # retained `reported.problems`; None: the agent has none
    progress: dict[str, int] | None = None  # `reported.progress`: checkpoints done/missed/total
    health: str = "unknown"  # ok | trouble | unknown (nothing heard that tells)
    # Offline: the device's newest time in its retained birth or `reported`, its last sign of
    # life; it went offline then or later (a will carries no time).
    offline_since_ms: int | None = None


def part(data: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """`data[key]` when it is an object, else {} (devices may send anything)."""
    value = data.get(key) if data else None
    return value if isinstance(value, dict) else {}


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def trouble(
    status: dict[str, Any] | None,
    online: bool | None,
    ack: dict[str, Any] | None,
    now_ms: int,
    problems: list[str] | None = None,
) -> list[str]:
    """Why a device needs a look (empty: fine), from its state, `reported.problems`, last
    status and last ack."""
    out: list[str] = []
    if online is False:
        out.append("offline")
    out += problems or []
    if ack is not None and ack.get("status") in ("rejected", "rolled_back"):
        out.append(
            f"{ack.get('typ')} {ack.get('status')}: {ack.get('detail') or ack.get('reason')}"
        )
    if status is None:
        return out
    box = part(status, "outbox")
    depth, oldest = box.get("depth"), box.get("oldest_ms")
    if isinstance(depth, int) and depth > BACKLOG_DEPTH:
        out.append(f"outbox {depth} deep")
    if isinstance(oldest, int) and now_ms - oldest > BACKLOG_AGE_MS:
        out.append(f"outbox oldest {(now_ms - oldest) // 60_000} min")
    if box.get("media_refused"):
        out.append("media refused (outbox full)")
    gps = part(status, "gps")
    if gps.get("fix") == "none":
        out.append("no GPS fix")
    # The device's own problems name its parts; the status only says so for older agents.
    cams = part(status, "cameras") if problems is None else {}
    out += [
        f"camera {cid} {c.get('state')}"
        for cid, c in sorted(cams.items())
        if isinstance(c, dict) and c.get("state") != "running"
    ]
    disk = status.get("disk_free_mb")
    if isinstance(disk, int) and disk < LOW_DISK_MB:
        out.append(f"disk {disk} MB free")
    return out


def health(row_trouble: list[str], problems: list[str] | None, status: object) -> str:
    """`trouble`, `ok` (the device told us: a `reported.problems` or a status), or `unknown`."""
    if row_trouble:
        return "trouble"
    return "ok" if problems is not None or status is not None else "unknown"


def _problems(reported: dict[str, Any]) -> list[str] | None:
    value = reported.get("problems")
    return [str(p) for p in value] if isinstance(value, list) else None


def _progress(reported: dict[str, Any]) -> dict[str, int] | None:
    value = reported.get("progress")
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if k in ("done", "missed", "total") and type(v) is int}


def _row(
    dev: str,
    s: dict[str, Any],
    r: dict[str, Any],
    st: dict[str, Any] | None,
    ack: dict[str, Any] | None,
    live_ms: int | None,
    now: int,
) -> DeviceRow:
    """One device from its retained state `s`, `reported` `r`, and what the window heard."""
    # `reported` follows every apply; a birth only every connect. The newer one wins.
    use_reported = bool(r) and (r.get("ts") or 0) >= (s.get("ts") or 0)
    mode = r.get("mode") if use_reported else None
    online = s.get("online")
    online = online if isinstance(online, bool) else (True if live_ms else None)
    zones = s.get("zones")
    problems = _problems(r)
    why = trouble(st, online, ack, now, problems)
    stamps = [t for t in (s.get("ts"), r.get("ts")) if isinstance(t, int)]
    heard = [t for t in [(st or {}).get("ts")] if isinstance(t, int)]
    return DeviceRow(
        dev=dev,
        online=online,
        reason=s.get("reason") if online is False else None,
        bdseq=s.get("bdseq"),
        agent=s.get("agent"),
        role=s.get("role"),
        config_ver=(r if use_reported else s).get("config_ver"),
        tasks_ver=(r if use_reported else s).get("tasks_ver"),
        mode=mode.get("name") if isinstance(mode, dict) else s.get("mode"),
        mode_scope=mode.get("scope") if isinstance(mode, dict) else None,
        last_seen_ms=live_ms,
        zones=[z for z in zones if isinstance(z, str)] if isinstance(zones, list) else [],
        state_ts=max([*stamps, *heard], default=None),
        status=st,
        last_ack=ack,
        trouble=why,
        problems=problems,
        progress=_progress(r),
        health=health(why, problems, st),
        offline_since_ms=max(stamps, default=None) if online is False else None,
    )


def rows(
    messages: Iterable[Message | tuple[str, bytes]], now_ms: int | None = None
) -> list[DeviceRow]:
    """Fold messages, oldest first, into rows sorted by device id (tuples count as retained)."""
    state: dict[str, dict[str, Any]] = {}
    reported: dict[str, dict[str, Any]] = {}
    status: dict[str, dict[str, Any]] = {}
    acks: dict[str, dict[str, Any]] = {}
    live: dict[str, int] = {}
    for m in messages:
        topic, payload, retained, received = (
            (m.topic, m.payload, m.retain, m.received_ms)
            if isinstance(m, Message)
            else (*m, True, 0)
        )
        parts = topic.split("/")
        if len(parts) < 4 or parts[:2] != PREFIX.split("/") or parts[2] in _NOT_DEVICES:
            continue
        dev, what = parts[2], parts[3]
        data = _json(payload)
        if data is None:
            continue
        if not retained:
            live[dev] = max(live.get(dev, 0), received)
        if what == "state":
            state[dev] = data
        elif what == "reported":
            reported[dev] = data
        elif what == "status":
            status[dev] = data
        elif what == "ack" and isinstance(data.get("body"), dict):
            acks[dev] = data["body"]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return [
        _row(
            dev,
            state.get(dev, {}),
            reported.get(dev, {}),
            status.get(dev),
            acks.get(dev),
            live.get(dev),
            now,
        )
        for dev in sorted(set(state) | set(reported) | set(status))
    ]


def collect(
    client: OpsClient, wait_s: float, settle_s: float = 0.5, listen_s: float = 0.0
) -> list[Message]:
    """Retained messages (until quiet for `settle_s`, at most `wait_s`), then `listen_s` live."""
    client.subscribe(TOPICS)
    deadline = time.monotonic() + wait_s
    got: list[Message] = []
    while (left := deadline - time.monotonic()) > 0:
        msg = client.get(min(settle_s, left))
        if msg is None:
            break  # the broker sends retained messages right after the SUBACK; quiet = done
        got.append(msg)
    deadline = time.monotonic() + listen_s
    while (left := deadline - time.monotonic()) > 0:
        msg = client.get(left)
        if msg is not None:
            got.append(msg)
    return got


def _ago(ts: int | None, now_ms: int) -> str:
    if ts is None:
        return "-"
    s = max(0, (now_ms - ts) // 1000)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    return f"{s // 3600} h ago"


def _outbox(st: dict[str, Any] | None, now_ms: int) -> str:
    box = st.get("outbox") if st else None
    if not isinstance(box, dict):
        return "-"
    oldest = box.get("oldest_ms")
    age = f", {_ago(oldest, now_ms).replace(' ago', '')}" if isinstance(oldest, int) else ""
    return f"{box.get('depth')}{age}"


def _gps_cams(st: dict[str, Any] | None) -> str:
    if not st:
        return "-"
    cams = st.get("cameras")
    if isinstance(cams, dict) and cams:
        up = sum(1 for c in cams.values() if isinstance(c, dict) and c.get("state") == "running")
        return f"cams {up}/{len(cams)}"
    gps = part(st, "gps")
    if gps.get("fix") is None:
        return "-"  # no GPS receiver
    return f"gps {gps.get('fix')}" + (f" ±{gps['acc_m']} m" if gps.get("acc_m") else "")


def _clock_ago(ts: int | None, now_ms: int) -> str:
    if ts is None:
        return "?"
    clock = datetime.fromtimestamp(ts / 1000).strftime("%m-%d %H:%M")
    return f"{clock} ({_ago(ts, now_ms)})"


def _state(r: DeviceRow, now_ms: int) -> str:
    """`online`, `?`, or `offline (lost), last heard 12-07 07:01 (12 min ago)`."""
    if r.online is None:
        return "?"
    if r.online:
        return "online"
    return f"offline ({r.reason}), last heard {_clock_ago(r.offline_since_ms, now_ms)}"


def _progress_text(r: DeviceRow) -> str:
    p = r.progress
    if not p:
        return "-"
    return f"{p.get('done', 0)} done, {p.get('missed', 0)} missed, of {p.get('total', 0)}"


def _health_text(r: DeviceRow) -> str:
    return "; ".join(r.trouble) if r.trouble else r.health


def _line(r: DeviceRow, now_ms: int) -> str:
    """One whole line for a pipe or a log."""
    return (
        f"{r.dev} {_state(r, now_ms)} role={r.role or '-'} agent={r.agent or '-'} "
        f"config={r.config_ver if r.config_ver is not None else 'local'} "
        f"tasks={r.tasks_ver if r.tasks_ver is not None else '-'} "
        f"progress={_progress_text(r)} mode={r.mode or '-'} "
        f"outbox={_outbox(r.status, now_ms)} {_gps_cams(r.status)} "
        f"seen={_ago(r.last_seen_ms, now_ms) if r.last_seen_ms else 'not-in-window'} "
        f"health={r.health}" + (f": {'; '.join(r.trouble)}" if r.trouble else "")
    )


def summary(table_rows: list[DeviceRow]) -> str:
    """`5 devices: 3 ok, 1 in trouble, 1 unknown (nothing heard)`."""
    n = {h: sum(1 for r in table_rows if r.health == h) for h in ("ok", "trouble", "unknown")}
    text = f"{len(table_rows)} devices: {n['ok']} ok, {n['trouble']} in trouble"
    return text + (f", {n['unknown']} unknown (nothing heard)" if n["unknown"] else "")


def render(table_rows: list[DeviceRow], o: Output, now_ms: int) -> None:
    """A table in a terminal, a line a device in a pipe, a JSON line a device with --json."""
    if o.json:
        for r in table_rows:
            o.record(asdict(r))
        return
    if not table_rows:
        o.say("no device seen (no retained state and no traffic in the window)")
        return
    if not o.terminal:
        for r in table_rows:
            o.say(_line(r, now_ms))
        o.say(summary(table_rows))
        return
    o.show(_table(table_rows, now_ms))
    o.say(summary(table_rows))


_COLOUR = {"ok": "green", "trouble": "red", "unknown": "yellow"}


def _table(table_rows: list[DeviceRow], now_ms: int) -> Table:
    t = Table(title="devices")
    cols = ("device", "online", "role", "agent", "config", "tasks", "progress", "mode", "outbox")
    for col in (*cols, "gps/cams", "last seen", "health"):
        t.add_column(col)
    for r in table_rows:
        online = Text(
            _state(r, now_ms), "green" if r.online else "red" if r.online is False else ""
        )
        mode = r.mode or "-"
        if r.mode_scope and r.mode_scope != "default":
            mode += f" ({r.mode_scope})"
        t.add_row(
            Text(r.dev, "bold red" if r.trouble else ""),
            online,
            Text(r.role or "-"),
            Text(r.agent or "-"),
            str(r.config_ver) if r.config_ver is not None else "local",
            str(r.tasks_ver) if r.tasks_ver is not None else "-",
            _progress_text(r),
            Text(mode),
            _outbox(r.status, now_ms),
            Text(_gps_cams(r.status)),
            _ago(r.last_seen_ms, now_ms) if r.last_seen_ms else "not in window",
            Text(_health_text(r), _COLOUR[r.health]),
        )
    return t

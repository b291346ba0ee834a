"""`ops devices`: one row per device from retained state and the live traffic of a window."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.ops.mqtt import Message, OpsClient
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
    status: dict[str, Any] | None, online: bool | None, ack: dict[str, Any] | None, now_ms: int
) -> list[str]:
    """Why a device needs a look (empty: fine), from its state, last status and last ack."""
    out: list[str] = []
    if online is False:
        out.append("offline")
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
    cams = part(status, "cameras")
    out += [
        f"camera {cid} {c.get('state')}"
        for cid, c in sorted(cams.items())
        if isinstance(c, dict) and c.get("state") != "running"
    ]
    disk = status.get("disk_free_mb")
    if isinstance(disk, int) and disk < LOW_DISK_MB:
        out.append(f"disk {disk} MB free")
    return out


def rows(
    messages: Iterable[Message | tuple[str, bytes]], now_ms: int | None = None
) -> list[DeviceRow]:
    """Fold messages, oldest first, into rows sorted by device id (tuples count as retained)."""
    state: dict[str, dict[str, Any]] = {}
    reported: dict[str, dict[str, Any]] = {}
    status: dict[str, dict[str, Any]] = {}
    acks: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
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
        if what in ("state", "reported", "status"):
            ts = data.get("ts")
            if isinstance(ts, int) and ts > seen.get(dev, 0):
                seen[dev] = ts
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: list[DeviceRow] = []
    for dev in sorted(set(state) | set(reported) | set(status)):
        s, r, st = state.get(dev, {}), reported.get(dev, {}), status.get(dev)
        # `reported` follows every apply; a birth only every connect. The newer one wins.
        use_reported = bool(r) and (r.get("ts") or 0) >= (s.get("ts") or 0)
        mode = r.get("mode") if use_reported else None
        online = s.get("online")
        online = online if isinstance(online, bool) else (True if dev in live else None)
        zones = s.get("zones")
        out.append(
            DeviceRow(
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
                last_seen_ms=live.get(dev),
                zones=[z for z in zones if isinstance(z, str)] if isinstance(zones, list) else [],
                state_ts=seen.get(dev),
                status=st,
                last_ack=acks.get(dev),
                trouble=trouble(st, online, acks.get(dev), now),
            )
        )
    return out


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
    return f"gps {gps.get('fix')}" + (f" ±{gps['acc_m']} m" if gps.get("acc_m") else "")


def render(table_rows: list[DeviceRow], console: Console, now_ms: int, as_json: bool) -> None:
    """Print the rows as a table (devices in trouble flagged), or as JSON for scripts."""
    if as_json:
        console.print(json.dumps([asdict(r) for r in table_rows]), soft_wrap=True, markup=False)
        return
    if not table_rows:
        console.print("[yellow]no device seen (no retained state and no traffic in the window)[/]")
        return
    if not console.is_terminal:
        # A pipe or a log: one line a device, whole, instead of a squeezed table.
        for r in table_rows:
            state = "?" if r.online is None else "online" if r.online else f"offline ({r.reason})"
            console.print(
                f"{r.dev} {state} role={r.role or '-'} agent={r.agent or '-'} "
                f"config={r.config_ver if r.config_ver is not None else 'local'} "
                f"tasks={r.tasks_ver if r.tasks_ver is not None else '-'} mode={r.mode or '-'} "
                f"outbox={_outbox(r.status, now_ms)} {_gps_cams(r.status)} "
                f"seen={_ago(r.last_seen_ms, now_ms) if r.last_seen_ms else 'not-in-window'} "
                f"trouble={'; '.join(r.trouble) or 'ok'}",
                markup=False,
                soft_wrap=True,
            )
        console.print(
            f"{len(table_rows)} devices, {sum(1 for r in table_rows if r.trouble)} in trouble"
        )
        return
    t = Table(title="devices")
    cols = ("device", "online", "role", "agent", "config", "tasks", "mode", "outbox", "gps/cams")
    for col in (*cols, "last seen", "trouble"):
        t.add_column(col)
    for r in table_rows:
        if r.online is None:
            online = Text("?")
        else:
            online = Text("online", "green") if r.online else Text(f"offline ({r.reason})", "red")
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
            Text(mode),
            _outbox(r.status, now_ms),
            Text(_gps_cams(r.status)),
            _ago(r.last_seen_ms, now_ms) if r.last_seen_ms else "not in window",
            Text("; ".join(r.trouble) or "ok", "red" if r.trouble else "green"),
        )
    console.print(t)
    bad = sum(1 for r in table_rows if r.trouble)
    console.print(f"{len(table_rows)} devices, {bad} in trouble")

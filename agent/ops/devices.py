"""`ops devices`: one row per device from the retained state/reported (and any status seen)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.ops.mqtt import Message, OpsClient
from sync.envelope import PREFIX

TOPICS = (f"{PREFIX}/+/state", f"{PREFIX}/+/reported", f"{PREFIX}/+/status")
_NOT_DEVICES = {"central", "zone"}  # grid/v1/central/state matches grid/v1/+/state


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
    last_seen_ms: int | None


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def rows(messages: Iterable[tuple[str, bytes]]) -> list[DeviceRow]:
    """Fold (topic, payload) messages, oldest first, into rows sorted by device id."""
    state: dict[str, dict[str, Any]] = {}
    reported: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for topic, payload in messages:
        parts = topic.split("/")
        if len(parts) != 4 or parts[:2] != PREFIX.split("/") or parts[2] in _NOT_DEVICES:
            continue
        dev, what = parts[2], parts[3]
        data = _json(payload)
        if data is None or what not in ("state", "reported", "status"):
            continue
        if what == "state":
            state[dev] = data
        elif what == "reported":
            reported[dev] = data
        ts = data.get("ts")
        if isinstance(ts, int) and ts > seen.get(dev, 0):
            seen[dev] = ts
    out: list[DeviceRow] = []
    for dev in sorted(set(state) | set(reported)):
        s, r = state.get(dev, {}), reported.get(dev, {})
        # `reported` follows every apply; a birth only every connect. The newer one wins.
        use_reported = bool(r) and (r.get("ts") or 0) >= (s.get("ts") or 0)
        mode = r.get("mode") if use_reported else None
        online = s.get("online")
        out.append(
            DeviceRow(
                dev=dev,
                online=online if isinstance(online, bool) else None,
                reason=s.get("reason") if online is False else None,
                bdseq=s.get("bdseq"),
                agent=s.get("agent"),
                role=s.get("role"),
                config_ver=(r if use_reported else s).get("config_ver"),
                tasks_ver=(r if use_reported else s).get("tasks_ver"),
                mode=mode.get("name") if isinstance(mode, dict) else s.get("mode"),
                mode_scope=mode.get("scope") if isinstance(mode, dict) else None,
                last_seen_ms=seen.get(dev),
            )
        )
    return out


def collect(client: OpsClient, wait_s: float, settle_s: float = 0.5) -> list[Message]:
    """Subscribe and gather the retained messages: until quiet for `settle_s`, at most `wait_s`."""
    client.subscribe(TOPICS)
    deadline = time.monotonic() + wait_s
    got: list[Message] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        msg = client.get(min(settle_s, left))
        if msg is None:
            break  # the broker sends retained messages right after the SUBACK; quiet = done
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


def render(table_rows: list[DeviceRow], console: Console, now_ms: int, as_json: bool) -> None:
    """Print the rows as a table, or as JSON for scripts."""
    if as_json:
        console.print(json.dumps([asdict(r) for r in table_rows]), soft_wrap=True, markup=False)
        return
    if not table_rows:
        console.print("[yellow]no device has a retained state or reported message[/]")
        return
    t = Table(title="devices")
    for col in ("device", "online", "agent", "role", "config", "tasks", "mode", "last seen"):
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
            Text(r.dev),
            online,
            Text(r.agent or "-"),
            Text(r.role or "-"),
            str(r.config_ver) if r.config_ver is not None else "-",
            str(r.tasks_ver) if r.tasks_ver is not None else "-",
            Text(mode),
            _ago(r.last_seen_ms, now_ms),
        )
    console.print(t)

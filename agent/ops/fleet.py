"""Fleet pushes: pick devices (list, zone, role) from what they announce; follow acks live."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent.config.role_sections import foreign_sections
from agent.ops import guards
from agent.ops.devices import DeviceRow, collect, part, rows
from agent.ops.mqtt import EXIT_NO_ACK, EXIT_REFUSED, Message, OpsClient, ack_of
from agent.ops.output import Output


@dataclass(frozen=True, slots=True)
class Inventory:
    """The devices the broker knows (retained birth/will/reported), by id."""

    devices: Mapping[str, DeviceRow]

    def select(self, *, devs: Sequence[str], zone: str | None, role: str | None) -> list[str]:
        """`devs` in order, plus every known device in `zone` and/or of `role` (both: AND)."""
        picked = list(dict.fromkeys(devs))
        if zone is not None or role is not None:
            for dev, row in sorted(self.devices.items()):
                in_zone = zone is None or zone in row.zones
                of_role = role is None or row.role == role
                if in_zone and of_role and dev not in picked:
                    picked.append(dev)
        return picked

    def unknown(self, devs: Sequence[str]) -> list[str]:
        """The ids in `devs` the broker has never seen (no retained state or reported)."""
        return [d for d in devs if d not in self.devices]

    def zones(self) -> set[str]:
        """Every zone some device announces (birth, will or shutdown state)."""
        return {z for row in self.devices.values() for z in row.zones}

    def offline(self, devs: Sequence[str]) -> list[str]:
        """The devices in `devs` whose retained state says offline (will or shutdown)."""
        return [d for d in devs if d in self.devices and self.devices[d].online is False]


def load_inventory(client: OpsClient, wait_s: float) -> Inventory:
    """Collect the retained state of every device (a few hundred ms on a quiet broker)."""
    return Inventory({r.dev: r for r in rows(collect(client, wait_s))})


def read_device_list(path: Path) -> list[str]:
    """A device list file: one id a line; blank lines and `#` comments ignored."""
    text = path.read_text(encoding="utf-8")
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def config_warnings(body: Mapping[str, Any], row: DeviceRow) -> list[str]:
    """How a config body disagrees with what the device announced in its birth."""
    out = guards.rejections(body, row)
    device = part(body, "device")
    role = device.get("role")
    zones = device.get("zones")
    if row.zones and isinstance(zones, list) and sorted(zones) != sorted(row.zones):
        out.append(f"zones {', '.join(zones) or 'none'} replace {', '.join(row.zones)}")
    foreign = foreign_sections(row.role or str(role), body)
    if foreign:
        out.append(f"sections {', '.join(foreign)} do not belong to a {row.role or role} device")
    return out


@dataclass
class AckBoard:
    """The acks expected (device -> document id) and those that came, for one push."""

    typ: str
    ver: int
    expect: dict[str, str]
    got: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Offline when the push was sent (retained state): not waited for; they apply on return.
    away: frozenset[str] = frozenset()

    def offer(self, msg: Message) -> str | None:
        """Record `msg` when it is an awaited ack; the device id, else None."""
        parts = msg.topic.split("/")
        if len(parts) != 4 or parts[2] not in self.expect or parts[2] in self.got:
            return None
        found = ack_of(msg, self.expect[parts[2]])
        if found is None:
            return None
        self.got[found[0]] = found[1]
        return found[0]

    @property
    def done(self) -> bool:
        """Every expected device that is online acked."""
        return all(dev in self.got or dev in self.away for dev in self.expect)

    def counts(self) -> dict[str, int]:
        """How many devices per ack status (and `no ack`, `offline`)."""
        out: dict[str, int] = {}
        for dev in self.expect:
            env = self.got.get(dev)
            status = "offline" if dev in self.away else "no ack"
            status = str(env["body"].get("status")) if env else status
            out[status] = out.get(status, 0) + 1
        return out

    def summary(self) -> str:
        """`20 devices: 18 applied, 1 rolled_back, 1 no ack`."""
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        return f"{len(self.expect)} devices: {parts}"

    def exit_code(self) -> int:
        """0 all applied; 1 any refused or rolled back; 3 some did not ack in time."""
        counts = self.counts()
        if set(counts) - {"applied", "no ack", "offline"}:
            return EXIT_REFUSED
        return EXIT_NO_ACK if {"no ack", "offline"} & set(counts) else 0

    def table(self, waited_s: float, timeout: float) -> Table:
        """One row per device; the caption says how long it has waited."""
        left = max(0.0, timeout - waited_s)
        caption = f"{len(self.got)}/{len(self.expect)} acked, waited {waited_s:.0f} s" + (
            f" (up to {left:.0f} s more)" if not self.done and left > 0 else ""
        )
        t = Table(title=f"acks for {self.typ} ver {self.ver}", caption=caption)
        for col in ("device", "status", "reason", "detail", "seq"):
            t.add_column(col)
        for dev in self.expect:
            env = self.got.get(dev)
            if env is None:
                waiting = "offline" if dev in self.away else "waiting" if left > 0 else "no ack"
                t.add_row(dev, Text(waiting, "yellow"), "", "", "")
                continue
            body = env["body"]
            colour = "green" if body.get("status") == "applied" else "red"
            t.add_row(
                dev,
                Text(str(body.get("status")), colour),
                Text(str(body.get("reason") or "")),
                Text(str(body.get("detail") or "")),
                str(env.get("seq")),
            )
        return t


def follow(
    client: OpsClient,
    board: AckBoard,
    timeout: float,
    o: Output,
    note_every_s: float = 10.0,
) -> None:
    """Wait for the acks with a live table (a terminal), or a line per ack and a progress note
    on stderr every `note_every_s` (a long health window must not look like a hang)."""
    start = time.monotonic()
    if o.terminal:
        with Live(board.table(0, timeout), console=o.out, refresh_per_second=4) as live:
            while not board.done and (left := timeout - (time.monotonic() - start)) > 0:
                msg = client.get(min(0.25, left))
                if msg is not None:
                    board.offer(msg)
                live.update(board.table(time.monotonic() - start, timeout))
            live.update(board.table(time.monotonic() - start, timeout))
    else:
        next_note = start + note_every_s
        while not board.done and (left := timeout - (time.monotonic() - start)) > 0:
            msg = client.get(min(1.0, left))
            if msg is not None and (dev := board.offer(msg)) is not None:
                _say_ack(o, dev, board.got[dev])
            if time.monotonic() >= next_note and not board.done:
                waited = time.monotonic() - start
                o.note(
                    f"waiting for acks: {len(board.got)}/{len(board.expect)} after {waited:.0f} s "
                    f"(timeout {timeout:g} s)"
                )
                next_note += note_every_s
        for dev in board.expect:
            if dev not in board.got:
                # Not waited for: offline when the push was sent, it applies on return.
                status = "offline" if dev in board.away else "no ack"
                o.say(f"{dev}: {status}", "ack", dev=dev, status=status)
    counts = board.counts()
    o.say(board.summary(), "summary", typ=board.typ, ver=board.ver, counts=counts)


def _say_ack(o: Output, dev: str, env: Mapping[str, Any]) -> None:
    body = env["body"]
    detail = f" ({body['detail']})" if body.get("detail") else ""
    o.say(
        f"{dev}: {body.get('status')} {body.get('reason') or ''}{detail}".rstrip(),
        "ack",
        dev=dev,
        status=body.get("status"),
        reason=body.get("reason"),
        detail=body.get("detail"),
        seq=env.get("seq"),
    )

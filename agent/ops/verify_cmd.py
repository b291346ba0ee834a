"""`ops verify DEVICE`: streamcheck over an archive or a live capture, rendered with rich."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.ops.mqtt import Message, OpsClient
from agent.ops.streamcheck import Received, Report
from agent.ops.watch import read_archive
from sync.envelope import PREFIX


def from_archive(directory: Path) -> list[Received]:
    """Every archived message (all devices; check() keeps the one asked for)."""
    return [Received(m.topic, m.payload) for m in read_archive(directory)]


def capture(client: OpsClient, dev: str, seconds: float) -> list[Received]:
    """Subscribe to `dev`'s topics and keep what arrives for `seconds`."""
    client.subscribe([f"{PREFIX}/{dev}/#"])
    deadline = time.monotonic() + seconds
    got: list[Message] = []
    while (left := deadline - time.monotonic()) > 0:
        msg = client.get(left)
        if msg is not None:
            got.append(msg)
    return [Received(m.topic, m.payload) for m in got]


def render(report: Report, console: Console, as_json: bool) -> None:
    """Print the report: a summary, then every finding (problems in red)."""
    if as_json:
        data = asdict(report)
        data["ok"] = report.ok
        console.print(json.dumps(data), soft_wrap=True, markup=False)
        return
    head = Table(title=f"stream of {report.dev}", show_header=False)
    head.add_row("messages received", str(report.received))
    head.add_row("stored messages (unique ids)", str(report.unique))
    head.add_row("harmless duplicates", str(report.duplicates))
    head.add_row("check-ins (hash chain)", str(report.checkins))
    head.add_row("photos named", str(report.media_refs))
    for i, e in enumerate(report.epochs, 1):
        span = "none" if e.last is None else f"{e.start}..{e.last}"
        label = f"epoch {i}" + (" (after state_reset)" if e.reset else "")
        head.add_row(label, f"seq {span}, {e.messages} messages")
    console.print(head)
    if report.findings:
        t = Table(title="findings")
        t.add_column("")
        t.add_column("code")
        t.add_column("what")
        for f in report.findings:
            mark = "[red]PROBLEM[/]" if f.problem else "[dim]note[/]"
            t.add_row(mark, f.code, Text(f.message))
        console.print(t)
    if report.ok:
        console.print("[green]clean:[/] nothing lost, altered or incomplete")
    else:
        console.print(f"[red]{len(report.problems)} problem(s)[/]")

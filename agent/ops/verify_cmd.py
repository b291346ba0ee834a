"""`ops verify DEVICE`: streamcheck over an archive or a live capture, rendered with rich."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from rich.table import Table
from rich.text import Text

from agent.ops.mqtt import Message, OpsClient
from agent.ops.output import Output
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


def _facts(report: Report) -> list[tuple[str, str]]:
    facts = [
        ("messages received", str(report.received)),
        ("stored messages (unique ids)", str(report.unique)),
        ("harmless duplicates", str(report.duplicates)),
        ("check-ins (hash chain)", str(report.checkins)),
        ("photos named", str(report.media_refs)),
    ]
    for i, e in enumerate(report.epochs, 1):
        span = "none" if e.last is None else f"{e.start}..{e.last}"
        label = f"epoch {i}" + (" (after state_reset)" if e.reset else "")
        facts.append((label, f"seq {span}, {e.messages} messages"))
    return facts


def render(report: Report, out: Output) -> None:
    """Print the report: a summary, then every finding (problems in red); --json: one line."""
    if out.json:
        data = asdict(report)
        data["ok"] = report.ok
        out.record(data)
        return
    if out.terminal:
        head = Table(title=f"stream of {report.dev}", show_header=False)
        for label, value in _facts(report):
            head.add_row(label, value)
        out.show(head)
    else:
        for label, value in _facts(report):
            out.say(f"{report.dev} {label}: {value}")
    if report.findings and out.terminal:
        t = Table(title="findings")
        t.add_column("")
        t.add_column("code")
        t.add_column("what")
        for f in report.findings:
            mark = "[red]PROBLEM[/]" if f.problem else "[dim]note[/]"
            t.add_row(mark, f.code, Text(f.message))
        out.show(t)
    else:
        for f in report.findings:
            out.say(f"{'PROBLEM' if f.problem else 'note'} {f.code}: {f.message}")
    if report.ok:
        out.say("[green]clean:[/] nothing lost, altered or incomplete", markup=True)
    else:
        out.say(f"[red]{len(report.problems)} problem(s)[/]", markup=True)

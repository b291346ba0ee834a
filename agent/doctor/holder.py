"""Who holds a serial port: the running agent of this config, or another program (Linux /proc)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Holder:
    """A process that has the port open; `agent` when it also has this config's state dir open
    (the outbox database): then it is the edge-agent service of this very config."""

    pid: int
    name: str
    agent: bool


def _fds(pid_dir: Path) -> list[str]:
    """Where each open file of a process points (empty when we may not look)."""
    try:
        entries = list((pid_dir / "fd").iterdir())
    except OSError:
        return []
    out = []
    for fd in entries:
        try:
            out.append(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    return out


def holders(port: str, state_dir: Path, proc: Path = PROC) -> list[Holder]:
    """Every process with `port` open, and whether it is the agent of `state_dir`."""
    try:
        target = os.path.realpath(port)
        state = os.path.realpath(state_dir)
        pids = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    out = []
    for pid_dir in pids:
        files = _fds(pid_dir)
        if target not in files:
            continue
        try:
            name = (pid_dir / "comm").read_text().strip()
        except OSError:
            name = "?"
        agent = any(f == state or f.startswith(state + os.sep) for f in files)
        out.append(Holder(int(pid_dir.name), name, agent))
    return out

"""One Mosquitto for the whole test session, a listener with its own topic prefix per test.

Each listener has a `mount_point`: a client connected to it publishes and subscribes under that
prefix without knowing it, so retained documents and messages of one test never reach another.
A test that stops, freezes or restarts its broker takes the `own_broker` fixture instead.
Caveat: MQTT sessions are keyed by client id across listeners, so two tests that reuse a client
id resume the same broker session (what the earlier test left queued for it is delivered, under
the earlier prefix, which the agent's downlink ignores as a foreign topic).
"""

from __future__ import annotations

import getpass
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from agent.demo.broker import mosquitto_path, wait_listening

LISTENERS = 120  # per Mosquitto process; another process starts when they are used up


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Lease:
    """A test's view of the shared broker: its own listener and topic prefix, Broker's fields."""

    host: str
    port: int
    dir: Path
    log_file: Path
    prefix: str
    protocol: int = 5

    def log(self) -> str:
        """The shared broker's log so far (every test's lines)."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        raise RuntimeError("this test shares the session broker: take `own_broker` to stop one")

    def start(self) -> None:
        raise RuntimeError("this test shares the session broker: take `own_broker` to start one")


@dataclass
class SharedMosquitto:
    """Mosquitto processes with LISTENERS mounted listeners each, started as leases run out."""

    workdir: Path
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _free: list[tuple[int, str, Path]] = field(default_factory=list)
    _count: int = 0

    def lease(self) -> Lease:
        """A listener no test has used in this session."""
        if not self._free:
            self._start_process()
        port, prefix, log_file = self._free.pop()
        return Lease("127.0.0.1", port, self.workdir, log_file, prefix)

    def _start_process(self) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed: scripts/test installs it")
        n = len(self._procs)
        d = self.workdir / f"mosquitto-{n}"
        d.mkdir(parents=True, exist_ok=True)
        log_file = d / "mosquitto.log"
        ports = _free_ports(LISTENERS)
        lines = [
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {log_file}",
            "max_queued_messages 100000",
            f"user {getpass.getuser()}",
        ]
        free = []
        for port in ports:
            self._count += 1
            prefix = f"t{self._count:04d}/"
            lines += [f"listener {port} 127.0.0.1", f"mount_point {prefix}"]
            free.append((port, prefix, log_file))
        conf = d / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL)
        self._procs.append(proc)
        for port in ports:
            wait_listening("127.0.0.1", port, proc, lambda: log_file.read_text(errors="replace"))
        self._free = free[::-1]

    def close(self) -> None:
        """Stop every process."""
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self._procs.clear()

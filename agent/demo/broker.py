"""A local Mosquitto on a free loopback port, for the demo and the tests (stop/start for faults)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_path() -> str | None:
    """The mosquitto binary, if installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], log: Callable[[], str]
) -> None:
    """Wait until a broker process accepts connections; RuntimeError if it exits or hangs."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited: {log()}") from None
            time.sleep(0.01)
    raise RuntimeError("broker did not start")


class Broker:
    """One mosquitto process with persistence, so a restart keeps sessions and retained messages."""

    protocol = 5  # what the agent and the test clients speak to it

    def __init__(
        self, workdir: Path, port: int | None = None, listener_conf: str = "", extra_conf: str = ""
    ) -> None:
        """`extra_conf`: more mosquitto.conf lines (limits, an ACL file) for strict-broker tests."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf = self.dir / "mosquitto.conf"
        self.log_file = self.dir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{listener_conf}"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log_file}\n"
            "max_queued_messages 100000\n"
            # Running as root, mosquitto would switch to the `mosquitto` user and lose tmp_path.
            f"user {getpass.getuser()}\n"
            f"{extra_conf}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL)
        wait_listening(self.host, self.port, self.proc, self.log)

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        """The broker's log so far."""
        p = self.log_file
        return p.read_text(errors="replace") if p.exists() else ""

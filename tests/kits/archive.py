"""Fleet traffic for the archive tests and bench: grid/v1 messages as devices publish them, a
QoS 1 publisher that survives broker restarts, and archiver processes to start and kill."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[2]
Msg = tuple[str, bytes]


def uuid7() -> str:
    """A UUIDv7-shaped id (time-ordered enough for tests)."""
    ms = int(time.time() * 1000)
    r = int.from_bytes(os.urandom(10), "big")
    n = (ms << 80) | (0x7 << 76) | ((r >> 62) & 0xFFF) << 64 | (0b10 << 62) | (r & (2**62 - 1))
    return str(uuid.UUID(int=n))


def envelope(dev: str, kind: str, seq: int, body: dict[str, Any]) -> bytes:
    """An upstream envelope (§3) as compact JSON bytes."""
    env = {
        "v": 1, "kind": kind, "id": uuid7(), "dev": dev, "seq": seq, "boot": "b-1",
        "mono_ms": seq * 10, "ts": 1_765_000_000_000 + seq, "ts_src": "ntp", "time_ok": True,
        "hist": False, "body": body,
    }  # fmt: skip
    return json.dumps(env, separators=(",", ":")).encode()


def photo(dev: str, seq: int, size: int, chunk: int, ref_id: str) -> list[Msg]:
    """A photo's chunks then its `media` event (§4)."""
    data = hashlib.sha256(f"{dev}-{seq}".encode()).digest() * (size // 32 + 1)
    data = b"\xff\xd8" + data[: size - 2]
    media_id = uuid7()
    topic = f"grid/v1/{dev}/media/{media_id}"
    out = [(f"{topic}/{i}", data[off : off + chunk]) for i, off in enumerate(range(0, size, chunk))]
    body = {
        "media_id": media_id, "sha256": hashlib.sha256(data).hexdigest(), "bytes": size,
        "chunks": len(out), "mime": "image/jpeg", "ref": {"kind": "incident", "id": ref_id},
    }  # fmt: skip
    return [*out, (f"grid/v1/{dev}/evt/media", envelope(dev, "media", seq, body))]


def fleet(devices: int, events_per_device: int, photo_every: int = 0) -> list[Msg]:
    """Births, reported, events (incidents; every photo_every-th with a photo) and acks."""
    out: list[Msg] = []
    for d in range(devices):
        dev = f"pd-{d:04d}"
        birth = {"v": 1, "online": True, "bdseq": 1, "boot": "b-1", "ts": 1, "agent": "0.1.0"}
        out.append((f"grid/v1/{dev}/state", json.dumps(birth).encode()))
        out.append((f"grid/v1/{dev}/reported", json.dumps({"v": 1, "config_ver": 3}).encode()))
        seq = 0
        for i in range(events_per_device):
            seq += 1
            body = {"category": "parking", "level": 3, "note": f"event {i}", "photos": []}
            ev = envelope(dev, "incident", seq, body)
            out.append((f"grid/v1/{dev}/evt/incident", ev))
            if photo_every and i % photo_every == 0:
                seq += 1
                out.extend(photo(dev, seq, 150_000, 65536, json.loads(ev)["id"]))
        seq += 1
        ack = {"ref": uuid7(), "typ": "config", "ver": 3, "status": "applied", "reason": None}
        out.append((f"grid/v1/{dev}/ack", envelope(dev, "ack", seq, ack)))
    return out


def event_ids(msgs: Iterable[Msg]) -> set[tuple[str, str]]:
    """(dev, id) of every evt/* and ack message."""
    out = set()
    for topic, payload in msgs:
        parts = topic.split("/")
        if parts[3] in ("evt", "ack"):
            out.add((parts[2], json.loads(payload)["id"]))
    return out


class Publisher:
    """Publishes at QoS 1 with a persistent session; paho resends what the broker did not
    acknowledge after a reconnect, so a broker restart mid-stream loses nothing (like a device's
    outbox: at least once)."""

    def __init__(self, host: str, port: int, protocol: int = 5, client_id: str = "fleet-sim"):
        v5 = protocol == 5
        self._c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
        )
        self._c.max_inflight_messages_set(200)
        self._c.reconnect_delay_set(0.1, 1.0)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        kw: dict[str, Any] = {"clean_start": False, "properties": props} if v5 else {}
        self._acked: set[int] = set()
        self._cond = threading.Condition()
        self._c.on_publish = self._on_publish
        self._c.connect(host, port, **kw)
        self._c.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def publish_all(self, msgs: Sequence[Msg], timeout: float = 120.0) -> None:
        """Publish every message and wait until the broker acknowledged each one (paho keeps
        a message published while disconnected and sends it after the reconnect)."""
        mids = {self._c.publish(t, p, qos=1).mid for t, p in msgs}
        with self._cond:
            if not self._cond.wait_for(lambda: mids <= self._acked, timeout):
                raise TimeoutError("the broker did not take every message in time")
            self._acked -= mids

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()


@dataclass
class ArchiverProc:
    """`edge-agent ops archive` in its own process (so it can be killed with SIGKILL)."""

    args: list[str]
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None
    _ready_before: int = 0

    def start(self) -> None:
        self._ready_before = self.log().count("INFO agent.ops.archive.cli: archiving ")
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "ops", "archive", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until it logged that it archives (subscribed)."""
        deadline = time.monotonic() + timeout
        ready = "INFO agent.ops.archive.cli: archiving "
        while self.log().count(ready) <= self._ready_before:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def resubscribed(self) -> int:
        """How often it subscribed again after losing the broker."""
        return self.log().count("subscribing again")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # never leave an archiver behind
            self.proc.wait(10)
            rc = -9
        self.proc = None
        return rc

    def archived(self) -> int:
        """Messages it reported at its last clean stop."""
        n = 0
        for line in self.log().splitlines():
            if "stopped: archived " in line:
                n += int(line.split("stopped: archived ")[1].split()[0])
        return n

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


def wait_until(pred: Any, timeout: float, what: str) -> None:
    """Poll `pred()` every 0.1 s (a database has no change notification here)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_in_thread(fn: Any) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t

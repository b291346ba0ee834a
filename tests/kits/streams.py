"""What a device publishes, built as a stream for the central-side checks (streamcheck, verify)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.ops.streamcheck import Received
from sync.envelope import TimeStamp, envelope, uuid7

DEV = "pd-0042"
T0 = 1_764_234_902_123


class Stream:
    """Builds what a device publishes: envelopes with seq, a check-in hash chain, photo chunks."""

    def __init__(
        self,
        dev: str = DEV,
        salt: int = 0,
        boot: str = "boot-1",
        t0: int = T0,
        time_ok: bool = True,
        mono0: int = 0,
    ) -> None:
        self.dev = dev
        self.salt = salt
        self.boot, self.t0, self.time_ok, self.mono0 = boot, t0, time_ok, mono0
        self.made = 0  # messages created: the clocks advance 100 ms each
        self.seq = 0
        self.msgs: list[Received] = []
        self.last_checkin: bytes | None = None

    def stamp(self) -> TimeStamp:
        self.made += 1
        src = "ntp" if self.time_ok else "none"
        tick = 100 * self.made
        return TimeStamp(self.t0 + tick, src, self.time_ok, self.boot, self.mono0 + tick)

    def evt(self, kind: str, body: dict[str, Any]) -> Received:
        self.seq += 1
        rand = (self.salt * 1_000_003 + self.seq).to_bytes(10, "big")
        stamp = self.stamp()
        payload = envelope(
            kind=kind,
            msg_id=uuid7(stamp.ts, rand),
            dev=self.dev,
            seq=self.seq,
            stamp=stamp,
            hist=False,
            body=body,
        )
        topic = f"grid/v1/{self.dev}/" + ("ack" if kind == "ack" else f"evt/{kind}")
        msg = Received(topic, payload)
        self.msgs.append(msg)
        return msg

    def checkin(self, cp: str = "cp-1", photos: list[dict[str, Any]] | None = None) -> Received:
        prev = hashlib.sha256(self.last_checkin).hexdigest() if self.last_checkin else None
        body = {
            "task_id": "t-1",
            "checkpoint_id": cp,
            "method": "nfc",
            "photos": photos or [],
            "prev": prev,
        }
        msg = self.evt("checkin", body)
        self.last_checkin = msg.payload
        return msg

    def photo_checkin(self, data: bytes, chunk: int = 65536) -> str:
        """A check-in naming a photo, then its chunks, then the media event (§4 order)."""
        mid = uuid7(self.t0, (self.salt + len(self.msgs)).to_bytes(10, "big"))
        sha = hashlib.sha256(data).hexdigest()
        ref = {"media_id": mid, "sha256": sha, "bytes": len(data), "mime": "image/jpeg"}
        naming = self.checkin(photos=[ref])
        parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        for n, part in enumerate(parts):
            self.msgs.append(Received(f"grid/v1/{self.dev}/media/{mid}/{n}", part))
        nid = json.loads(naming.payload)["id"]
        self.evt(
            "media",
            {
                "media_id": mid,
                "sha256": sha,
                "bytes": len(data),
                "chunks": len(parts),
                "mime": "image/jpeg",
                "ref": {"kind": "checkin", "id": nid},
            },
        )
        return mid


def full_stream() -> Stream:
    """A clean stream: an ack, 3 check-ins (one with a 2-chunk photo), an incident, completed."""
    s = Stream()
    s.evt("ack", {"ref": "d-1", "typ": "tasks", "ver": 1, "status": "applied", "reason": None})
    s.checkin("cp-1")
    s.evt("incident", {"category": "facility", "level": 3, "note": "lamp", "photos": []})
    s.photo_checkin(bytes(range(256)) * 300)  # 76800 bytes: two chunks
    s.checkin("cp-3")
    s.evt("patrol", {"task_id": "t-1", "event": "completed", "done": 3, "total": 3})
    return s

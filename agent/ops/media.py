"""`ops media`: reassemble photos and snapshots from their chunks; save them with metadata."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.ops.mqtt import Message, OpsClient
from agent.ops.output import Output
from sync.envelope import PREFIX

_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "video/mp4": ".mp4"}


@dataclass(frozen=True, slots=True)
class Photo:
    """One complete, verified media object and what central knows about it."""

    dev: str
    media_id: str
    data: bytes
    meta: dict[str, Any]  # the media event body, plus the event that named it when seen


@dataclass
class Assembler:
    """Collects chunks, media events and naming events; yields each photo once it is whole."""

    device: str | None = None
    chunks: dict[tuple[str, str], dict[int, bytes]] = field(default_factory=dict)
    media: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    named_by: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def offer(self, topic: str, payload: bytes) -> Photo | None:
        """Take one message; a Photo when it completed one (sha256 and size checked)."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[:2] != PREFIX.split("/"):
            return None
        dev = parts[2]
        if self.device is not None and dev != self.device:
            return None
        if parts[3] == "media" and len(parts) == 6 and parts[5].isdigit():
            key = (dev, parts[4])
            if key not in self.done:
                self.chunks.setdefault(key, {}).setdefault(int(parts[5]), payload)
            return self._complete(key)
        if parts[3] != "evt" or len(parts) != 5:
            return None
        try:
            env = json.loads(payload)
            body = env["body"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(body, dict):
            return None
        if parts[4] == "media" and isinstance(body.get("media_id"), str):
            key = (dev, body["media_id"])
            self.media.setdefault(key, body)
            return self._complete(key)
        # Any event naming photos (check-in, incident, snapshot notice): keep it as metadata.
        photos = body.get("photos")
        refs: list[Any] = list(photos) if isinstance(photos, list) else []
        refs += [body["media"]] if isinstance(body.get("media"), dict) else []
        for ref in refs:
            if isinstance(ref, dict) and isinstance(ref.get("media_id"), str):
                self.named_by[ref["media_id"]] = {
                    "kind": env.get("kind"),
                    "id": env.get("id"),
                    "seq": env.get("seq"),
                    "ts": env.get("ts"),
                    "body": body,
                }
        return None

    def _complete(self, key: tuple[str, str]) -> Photo | None:
        event, have = self.media.get(key), self.chunks.get(key, {})
        if event is None or key in self.done or not isinstance(event.get("chunks"), int):
            return None
        if set(have) != set(range(event["chunks"])):
            return None
        data = b"".join(have[n] for n in range(event["chunks"]))
        self.done.add(key)
        self.chunks.pop(key, None)
        if hashlib.sha256(data).hexdigest() != event.get("sha256") or len(data) != event.get(
            "bytes"
        ):
            self.problems.append(f"{key[0]} media {key[1]}: chunks do not match sha256/bytes")
            return None
        meta = {"dev": key[0], "media": event, "named_by": self.named_by.get(key[1])}
        return Photo(key[0], key[1], data, meta)

    def incomplete(self) -> list[str]:
        """Photos seen in part: `dev media_id: n/m chunks` (m unknown without the media event)."""
        out = []
        for key, have in sorted(self.chunks.items()):
            total = self.media.get(key, {}).get("chunks", "?")
            out.append(f"{key[0]} {key[1]}: {len(have)}/{total} chunks")
        return out


def save(photo: Photo, directory: Path) -> Path:
    """Write DIR/DEV/MEDIA_ID.jpg and .json (metadata); the path of the image."""
    folder = directory / photo.dev
    folder.mkdir(parents=True, exist_ok=True)
    ext = _EXT.get(str(photo.meta["media"].get("mime")), ".bin")
    path = folder / f"{photo.media_id}{ext}"
    path.write_bytes(photo.data)
    meta = folder / f"{photo.media_id}.json"
    meta.write_text(json.dumps(photo.meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def run_media(
    messages: Iterable[Message] | None,
    *,
    client: OpsClient | None,
    device: str | None,
    out_dir: Path,
    seconds: float | None,
    out: Output,
) -> int:
    """Save every photo that completes (from an archive, or live for `seconds`); how many."""
    asm = Assembler(device)
    saved = 0

    def take(msg: Message) -> None:
        nonlocal saved
        photo = asm.offer(msg.topic, msg.payload)
        if photo is not None:
            path = save(photo, out_dir)
            saved += 1
            by = photo.meta.get("named_by") or {}
            what = f"{by.get('kind')} seq {by.get('seq')}" if by else "naming event not seen"
            out.say(
                f"saved {path} ({len(photo.data)} bytes; {what})",
                "saved",
                dev=photo.dev,
                media_id=photo.media_id,
                path=str(path),
                bytes=len(photo.data),
            )

    if messages is not None:
        for msg in messages:
            take(msg)
    elif client is not None:
        client.subscribe([f"{PREFIX}/{device or '+'}/media/#", f"{PREFIX}/{device or '+'}/evt/+"])
        deadline = time.monotonic() + (seconds or 0.0)
        while (left := deadline - time.monotonic()) > 0:
            live = client.get(min(left, 1.0))
            if live is not None:
                take(live)
    for text in asm.problems + [f"incomplete: {t}" for t in asm.incomplete()]:
        out.warn(text)
    out.say(f"{saved} media file(s) saved under {out_dir}", "summary", saved=saved)
    return saved

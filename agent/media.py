"""Content-addressed photo store with a byte quota; sends chunks after the naming event (§4)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from agent.errors import MediaRefused, StoreError
from agent.events import Events, EventSink
from sync import envelope
from sync.envelope import MAX_CHUNK
from sync.messages import Priority, Stored
from sync.outbox import Outbox
from sync.statefile import read_json, write_bytes, write_json

log = logging.getLogger(__name__)


class MediaStore:
    """agent.events.MediaSink over the state dir; files go once all their chunks are acked."""

    def __init__(
        self,
        state_dir: Path,
        dev: str,
        outbox: Outbox,
        *,
        quota_bytes: int,
        events: EventSink | None = None,
    ) -> None:
        self._dir = state_dir / "media"
        self._dir.mkdir(parents=True, exist_ok=True)
        _remove_partial_writes(self._dir)
        self._index_path = self._dir / "index.json"
        self._dev = dev
        self._outbox = outbox  # chunks (not events) and the reaper's questions
        self._events = events or Events(outbox)
        self._quota = quota_bytes
        index = read_json(self._index_path, {})
        # media_id -> {"sha256", "bytes", "mime", "sent"}; survives restarts.
        self._index: dict[str, dict[str, Any]] = index if isinstance(index, dict) else {}
        self._lock = asyncio.Lock()

    def path(self, sha256: str) -> Path:
        """Where the photo with this digest lives."""
        return self._dir / f"{sha256}.jpg"

    def used_bytes(self) -> int:
        """Bytes the stored photos take."""
        return sum(p.stat().st_size for p in self._dir.glob("*.jpg"))

    async def store(self, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        """Keep the bytes durably under their SHA-256; return the §4 media ref."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        async with self._lock:
            if not path.exists():
                used = await asyncio.to_thread(self.used_bytes)
                if used + len(data) > self._quota:
                    raise MediaRefused(f"media quota {self._quota} bytes reached")
                await asyncio.to_thread(write_bytes, path, data)
            media_id = envelope.uuid7(self._outbox_ts())
            self._index[media_id] = {
                "sha256": digest,
                "bytes": len(data),
                "mime": mime,
                "sent": False,
                "stored_ms": self._outbox_ts(),
            }
            await asyncio.to_thread(write_json, self._index_path, self._index)
        return {"media_id": media_id, "sha256": digest, "bytes": len(data), "mime": mime}

    def _outbox_ts(self) -> int:
        return self._outbox.stamp().ts

    async def send(self, ref: Mapping[str, Any], naming: Stored) -> None:
        """Queue the chunks, then the `media` event, after `naming` (which lists `ref`)."""
        media_id = str(ref["media_id"])
        entry = self._index.get(media_id)
        if entry is None:
            raise StoreError(f"unknown media {media_id}")
        data = await asyncio.to_thread(self.path(entry["sha256"]).read_bytes)
        chunks = [data[i : i + MAX_CHUNK] for i in range(0, len(data), MAX_CHUNK)] or [b""]
        for n, chunk in enumerate(chunks):
            await self._outbox.append_raw(
                "media_chunk",
                envelope.topic(self._dev, "media", media_id, str(n)),
                chunk,
                priority=Priority.MEDIA,
                group=media_id,
            )
        body = {
            "media_id": media_id,
            "sha256": entry["sha256"],
            "bytes": len(data),
            "chunks": len(chunks),
            "mime": entry["mime"],
            "ref": {"kind": _kind(naming.topic), "id": naming.id},
        }
        await self._events.emit("media", body, priority=Priority.MEDIA, group=media_id)
        async with self._lock:
            entry["sent"] = True
            await asyncio.to_thread(write_json, self._index_path, self._index)

    async def reap(
        self, *, orphan_after_ms: int = 10 * 60 * 1000, keep: Collection[str] = ()
    ) -> int:
        """Delete photos whose chunks and `media` event were all acknowledged, and photos
        stored but never queued (their event failed, or a crash came between) once they are
        older than `orphan_after_ms`, except those in `keep` (named by an event still to be
        stored); return how many went."""
        async with self._lock:
            now = self._outbox_ts()
            candidates = [
                m
                for m, e in self._index.items()
                if e["sent"]
                or (m not in keep and now - int(e.get("stored_ms", 0)) > orphan_after_ms)
            ]
            pending = await self._outbox.groups_present(candidates)
            gone = [m for m in candidates if m not in pending]
            for media_id in gone:
                entry = self._index.pop(media_id)
                if not entry["sent"]:
                    log.warning("photo %s was never sent; deleting it", media_id)
                still_used = any(e["sha256"] == entry["sha256"] for e in self._index.values())
                if not still_used:
                    self.path(entry["sha256"]).unlink(missing_ok=True)
            if gone:
                await asyncio.to_thread(write_json, self._index_path, self._index)
        return len(gone)

    async def run_reaper(
        self, interval_s: float = 30.0, keep: Callable[[], Collection[str]] = frozenset
    ) -> None:
        """Reap every `interval_s` for ever (a supervised loop), sparing the ids `keep()` names.

        A failed round (disk, database) is logged and tried again next round.
        """
        while True:
            await asyncio.sleep(interval_s)
            try:
                removed = await self.reap(keep=keep())
            except (StoreError, OSError, sqlite3.Error) as exc:
                log.warning("media reaping failed: %s", exc)
                continue
            if removed:
                log.info("deleted %d uploaded photo(s)", removed)


def _remove_partial_writes(folder: Path) -> None:
    """Drop `*.tmp` files a power cut left mid-write (sync.statefile writes there, then renames):
    they are not photos anybody refers to, and the quota would not see their bytes."""
    partial = list(folder.glob("*.tmp"))
    for path in partial:
        path.unlink(missing_ok=True)
    if partial:
        log.warning("removed %d photo file(s) left half-written by a power cut", len(partial))


def _kind(topic: str) -> str:
    """`checkin` from `grid/v1/D/evt/checkin`."""
    return topic.rsplit("/", 1)[-1]

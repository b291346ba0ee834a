"""A device process cut mid-write (issue 22 point 5): during an outbox checkpoint, or a photo write.

`python -m tests.kits.kill_midwrite checkpoint STATE DEV`: appends photo-sized chunks to the
outbox, printing `ack SEQ ID` after each append returned; a second thread runs SQLite WAL
checkpoints of the same database (its own connection, as any checkpoint of the file does)
once the WAL has grown, printing `ckpt begin` before and `ckpt end` after each. The test
SIGKILLs the process as it reads `ckpt begin`.

`python -m tests.kits.kill_midwrite photo STATE DEV K`: takes check-ins with a photo each
(the media store, then the check-in, then its chunks, as the patrol driver does), printing
`ack CHECKIN_ID MEDIA_ID SHA256` once all three returned; the K-th photo's file write is cut
halfway: the fault writes half of the bytes and SIGKILLs the process, so the kill lands inside
the write itself rather than near it.

The hooks stay outside the outbox's internals: a second SQLite connection, and a fault around
`os.write` armed only while the media store writes the K-th photo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from agent import media
from agent.clock import SystemClock
from agent.media import MediaStore
from sync import envelope
from sync.messages import Priority
from sync.outbox import Outbox

CHUNK = 60_000
WAL_BEFORE_CHECKPOINT = 2 << 20  # bytes: a checkpoint with real copying to do


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def checkpointer(db: Path, stop: threading.Event) -> None:
    """Checkpoint `db` whenever its WAL has grown past WAL_BEFORE_CHECKPOINT."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
    wal = db.with_name(db.name + "-wal")
    while not stop.is_set():
        size = wal.stat().st_size if wal.exists() else 0
        if size < WAL_BEFORE_CHECKPOINT:
            time.sleep(0.005)
            continue
        say(f"ckpt begin {size}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        say("ckpt end")


async def checkpoint_mode(state: Path, dev: str) -> None:
    clock = SystemClock()
    async with Outbox(state, dev, stamp=clock.stamp, budget_bytes=1 << 30) as ob:
        stop = threading.Event()
        threading.Thread(target=checkpointer, args=(state / "outbox.db", stop), daemon=True).start()
        say("ready")
        i = 0
        while True:
            payload = os.urandom(CHUNK)
            await ob.append_raw(
                "media_chunk",
                envelope.topic(dev, "media", f"m-{i}", "0"),
                payload,
                priority=Priority.MEDIA,
                group=f"m-{i}",
            )
            stored = await ob.append("checkin", {"i": i, "group": f"m-{i}"})
            say(f"ack {stored.seq} {stored.id}")
            i += 1


def _die_halfway(fd: int, data: Any) -> int:
    """The power cut: half of the bytes reach the file, then the process is gone."""
    real_write(fd, bytes(data)[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


real_write = os.write


@contextlib.contextmanager
def cut_photo_write(at: int) -> Iterator[None]:
    """Arm the fault for the `at`-th photo the media store writes (1-based)."""
    real = media.write_bytes
    count = 0

    def write_bytes(path: Path, data: bytes) -> None:
        nonlocal count
        count += 1
        if count != at:
            real(path, data)
            return
        with mock.patch.object(os, "write", _die_halfway):
            real(path, data)

    with mock.patch.object(media, "write_bytes", write_bytes):
        yield


async def photo_mode(state: Path, dev: str, cut_at: int) -> None:
    clock = SystemClock()
    async with Outbox(state, dev, stamp=clock.stamp, budget_bytes=1 << 30) as ob:
        store = MediaStore(state, dev, ob, quota_bytes=1 << 30)
        say("ready")
        with cut_photo_write(cut_at):
            for i in range(10 * cut_at):
                photo = b"\xff\xd8\xff\xe0" + os.urandom(90_000) + b"\xff\xd9"
                ref = await store.store(photo)
                stored = await ob.append("checkin", {"i": i, "media": [ref]})
                await store.send(ref, stored)
                say(f"ack {stored.id} {ref['media_id']} {ref['sha256']}")


if __name__ == "__main__":
    mode, state_dir, device = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if mode == "checkpoint":
        asyncio.run(checkpoint_mode(state_dir, device))
    else:
        asyncio.run(photo_mode(state_dir, device, int(sys.argv[4])))

"""The outbox's writer thread answers a whole batch in one wake-up of the loop: never before the
batch's commit returned, a failed commit fails exactly its batch (nothing of it stored, no seq
used), closing commits what is queued, and a full queue makes producers wait."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.errors import StoreError
from sync.outbox import Outbox
from sync.outbox_writer import Writer

CLOCK = SystemClock(synced=lambda: True)


def outbox(state: Path, **kw: Any) -> Outbox:
    return Outbox(state, "pd-0042", stamp=CLOCK.stamp, budget_bytes=1 << 30, **kw)


async def hold_writer(ob: Outbox) -> tuple[threading.Event, asyncio.Task[None]]:
    """Keep the writer thread busy until the event is set: what is queued meanwhile is one batch."""
    started, release = threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        release.wait(10)

    task = asyncio.create_task(ob._in_writer(busy))
    await asyncio.to_thread(started.wait, 10)
    return release, task


async def seqs_stored(ob: Outbox) -> list[int]:
    rows = await ob.fetch((-1, -1), 10_000)
    return sorted(json.loads(r.payload)["seq"] for r in rows)


def patch_commit(mp: pytest.MonkeyPatch, around: Callable[..., Any]) -> list[int]:
    """Writer.commit goes through `around(real, *args)`; returns the batch sizes seen."""
    real, sizes = Writer.commit, []

    def commit(self: Writer, batch: Any, *args: Any) -> Any:
        sizes.append(len(batch))
        return around(lambda: real(self, batch, *args), len(sizes))

    mp.setattr(Writer, "commit", commit)
    return sizes


async def test_a_failed_commit_fails_exactly_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with outbox(tmp_path) as ob:
        before = [await ob.append("checkin", {"i": i}) for i in range(3)]

        def around(real: Callable[[], Any], n: int) -> Any:
            if n == 1:  # the batch queued while the writer was held
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return real()

        release, held = await hold_writer(ob)
        sizes = patch_commit(monkeypatch, around)
        first = [asyncio.create_task(ob.append("checkin", {"b": 1, "i": i})) for i in range(5)]
        await asyncio.sleep(0)  # queued behind the held call: one batch
        release.set()
        await held
        doomed = await asyncio.gather(*first, return_exceptions=True)
        assert sizes[0] == 5 and all(isinstance(d, StoreError) for d in doomed)
        after = [await ob.append("checkin", {"i": i}) for i in range(3)]
        stored = await seqs_stored(ob)
    # Nothing of the failed batch stored and none of its seqs used: no gap for central.
    assert stored == [1, *(s.seq for s in before), *(s.seq for s in after)]
    assert [s.seq for s in after] == [before[-1].seq + 1 + i for i in range(3)]


async def test_no_future_resolves_before_its_commit_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed, go_on = threading.Event(), threading.Event()

    def around(real: Callable[[], Any], n: int) -> Any:
        done = real()  # on disk now; the answer must still wait for commit() to return
        committed.set()
        go_on.wait(10)
        return done

    async with outbox(tmp_path) as ob:
        patch_commit(monkeypatch, around)
        tasks = [asyncio.create_task(ob.append("checkin", {"i": i})) for i in range(4)]
        await asyncio.to_thread(committed.wait, 10)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(t.done() for t in tasks)
        go_on.set()
        stored = await asyncio.gather(*tasks)
    assert sorted(s.seq for s in stored) == [2, 3, 4, 5]


async def test_closing_commits_what_is_queued(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        release, held = await hold_writer(ob)
        tasks = [asyncio.create_task(ob.append("checkin", {"i": i})) for i in range(50)]
        await asyncio.sleep(0)
        release.set()
        await held
    stored = await asyncio.gather(*tasks)  # every caller answered, none failed
    with pytest.raises(StoreError):
        await ob.append("checkin", {"late": True})  # closed: refused, not queued for ever
    async with outbox(tmp_path) as ob:
        assert await seqs_stored(ob) == [1, *sorted(s.seq for s in stored)]


async def test_a_full_queue_makes_producers_wait(tmp_path: Path) -> None:
    async with outbox(tmp_path, queue_size=2) as ob:
        release, held = await hold_writer(ob)
        tasks = [asyncio.create_task(ob.append("checkin", {"i": i})) for i in range(6)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert ob._handing()._queued == 2  # the others wait for room, unqueued
        release.set()
        await held
        stored = await asyncio.gather(*tasks)
        assert sorted(s.seq for s in stored) == list(range(2, 8))


async def test_a_close_cancelled_while_it_waits_leaves_the_writer_to_finish(
    tmp_path: Path,
) -> None:
    """A stop (cancellation) during `__aexit__` while the thread still commits: the thread ends
    cleanly (no exception in it) and what was queued is stored."""
    ob = outbox(tmp_path / "s")
    await ob.__aenter__()
    release, busy = await hold_writer(ob)
    pending = asyncio.create_task(ob.append("checkin", {"n": 1}))
    await asyncio.sleep(0)
    closing = asyncio.create_task(ob.__aexit__(None, None, None))
    await asyncio.sleep(0.05)  # it waits for the writer thread now
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    await busy
    await pending  # committed by the thread before it stopped
    assert ob._handoff is not None
    await ob._handoff.ended()  # the thread ended without an exception
    reopened = outbox(tmp_path / "s")
    async with reopened:
        bodies = [json.loads(r.payload)["body"] for r in await reopened.fetch((-1, -1), 10)]
    assert {"n": 1} in bodies

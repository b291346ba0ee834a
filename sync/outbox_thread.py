"""The hand-off between the event loop and the outbox's writer thread.

The loop puts appends and deletions into a thread-safe queue (the writer thread wakes only if
it sleeps); the writer thread takes everything queued as one batch, commits it, and answers
the whole batch on the loop with one `call_soon_threadsafe`. An append therefore costs the
loop no task switch of a writer task and no executor job: one wake-up each way per batch.
The queue is bounded on the loop's side (`put` waits for room).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.errors import StoreError
from sync.outbox_rows import Deletion, Pending, fail

MAX_BATCH = 2048
DELETE_BATCH = 900  # PUBACKed rows that commit at once, without waiting for an append

Batch = list[Pending | Deletion]
Answer = Callable[[], None]  # run on the loop once the batch is durable (or failed)


@dataclass(slots=True)
class Call:
    """A blocking function for the writer thread, run between batches; `future` gets its
    result (or exception) on the loop."""

    fn: Callable[[], Any]  # raises only storage errors (sqlite3, OS, ValueError, StoreError)
    future: asyncio.Future[Any]


class _Stop:
    """Ends `Handoff.serve` once everything queued before it is committed."""


_STOP = _Stop()
Item = Pending | Deletion | Call | _Stop


class Handoff:
    """The bounded queue to the writer thread and the answers back.

    Loop side: `offer`/`put`, `call`, `stop`. Writer thread: `serve`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, delete_delay: float) -> None:
        self._loop = loop
        self._q: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._limit = limit
        self._delete_delay = delete_delay
        self._queued = 0  # items put and not yet answered (loop thread only)
        self._room: asyncio.Future[None] | None = None  # a producer waits for room
        self._held: Item | None = None  # taken while batching, goes next (writer thread only)
        self.closing = False  # deletions no longer wait for an append to carry them
        self.stopped = False  # the writer thread is gone: nothing put is ever answered
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._started = False

    def start(self, commit: Callable[[Batch], Answer]) -> None:
        """Start the writer thread serving `commit` (see `serve`). A daemon thread: an outbox
        never closed must not hold up the interpreter's exit."""
        thread = threading.Thread(target=self._run, args=(commit,), name="outbox-writer")
        thread.daemon = True
        thread.start()
        self._started = True

    def _run(self, commit: Callable[[Batch], Answer]) -> None:
        try:
            self.serve(commit)
        except BaseException as exc:  # noqa: BLE001 - handed on: `ended` raises it
            self._done.set_exception(exc)  # (the supervisor's broad catch sees it there)
            return
        self._done.set_result(None)

    async def ended(self) -> None:
        """Return when the writer thread has stopped; raise what stopped it (the writer task)."""
        await asyncio.shield(asyncio.wrap_future(self._done))

    # ----- the loop's side -------------------------------------------------------------------
    def offer(self, item: Pending | Deletion) -> bool:
        """Queue `item` if there is room (False: await `put`). Raises StoreError once stopped."""
        if self.stopped:
            raise StoreError("the outbox writer stopped")
        if self._queued >= self._limit:
            return False
        self._queued += 1
        self._q.put(item)
        return True

    async def put(self, item: Pending | Deletion) -> None:
        """Queue `item`, waiting for room."""
        while not self.offer(item):
            if self._room is None:
                self._room = self._loop.create_future()
            await asyncio.shield(self._room)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the writer thread after everything queued before; its result."""
        if self.stopped:
            raise StoreError("the outbox writer stopped")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._q.put(Call(fn, fut))  # unbounded: callers of `call` are few and await it
        return await fut

    async def stop(self) -> None:
        """Let the writer thread end once everything queued so far is committed; wait for it."""
        self.closing = True
        self._q.put(_STOP)
        if self._started:
            # Shielded: a stop cancelled meanwhile must not cancel `_done` itself, which the
            # thread still completes (a cancelled one made it raise InvalidStateError).
            waiting = asyncio.shield(asyncio.wrap_future(self._done))
            await asyncio.gather(waiting, return_exceptions=True)

    def _answered(self, count: int, answer: Answer) -> None:
        """On the loop: a batch of `count` items is answered; room for producers."""
        self._queued -= count
        if self._room is not None and self._queued < self._limit:
            self._room.set_result(None)
            self._room = None
        answer()

    def _abandon(self, batch: Batch) -> None:
        """On the loop: the writer thread ended; fail its batch and whatever is still queued."""
        self.stopped = True
        items: list[Item] = list(batch)
        while True:
            try:
                items.append(self._q.get_nowait())
            except queue.Empty:
                break
        err = StoreError("the outbox writer stopped")
        for item in items:
            if isinstance(item, Call):
                if not item.future.done():
                    item.future.set_exception(err)
            elif not isinstance(item, _Stop):
                fail(item, err)
        if self._room is not None and not self._room.done():
            self._room.set_result(None)  # its producer sees `stopped`

    # ----- the writer thread -----------------------------------------------------------------
    def serve(self, commit: Callable[[Batch], Answer]) -> None:
        """Writer thread: commit batch after batch until `stop`; each batch's answer (from
        `commit`, called only after its transaction ended) runs on the loop in one wake-up."""
        batch: Batch = []
        try:
            while True:
                batch = self._next_batch()
                if not batch:
                    item = self._held
                    self._held = None
                    if isinstance(item, _Stop):
                        return
                    if isinstance(item, Call):
                        self._run_call(item)
                    continue
                answer = commit(batch)
                self._post(self._answered, len(batch), answer)
                batch = []
        finally:
            # Stopped or crashed: fail whatever was not answered (nothing on a clean stop).
            self._post(self._abandon, batch)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _run_call(self, call: Call) -> None:
        """Run a call; a storage error goes to its caller, anything else ends the thread."""
        fut = call.future
        try:
            result = call.fn()
        except (sqlite3.Error, OSError, ValueError, StoreError) as exc:
            self._post(_settle, fut, None, exc)
            return
        self._post(_settle, fut, result, None)

    def _take(self, timeout: float | None = None) -> Item | None:
        """The next item: held over from the last batch, queued, or waited for."""
        if self._held is not None:
            item, self._held = self._held, None
            return item
        try:
            if timeout is None:
                return self._q.get()
            return self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return None

    def _next_batch(self) -> Batch:
        """Everything queued, up to a call or the stop (held to go after the batch); deletions
        alone wait `delete_delay` for company (an append carries their delete). Empty when
        a held call or the stop goes first."""
        batch: Batch = []
        self._gather(batch, self._take())
        if batch and self._held is None and self._waits(batch):
            self._gather(batch, self._take(self._delete_delay))
        return batch

    def _gather(self, batch: Batch, item: Item | None) -> None:
        """Add `item` and whatever is queued after it, holding a call or the stop."""
        while item is not None:
            if isinstance(item, Call | _Stop):
                self._held = item
                return
            batch.append(item)
            if len(batch) >= MAX_BATCH:
                return
            item = self._take(0)

    def _waits(self, batch: Batch) -> bool:
        """Whether this batch is deletions only, few enough to wait for an append."""
        if self.closing:
            return False
        acked = 0
        for item in batch:
            if isinstance(item, Pending) or item.at_once:
                return False
            acked += len(item.rowids)
        return acked < DELETE_BATCH


def _settle(fut: asyncio.Future[Any], result: Any, exc: Exception | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)

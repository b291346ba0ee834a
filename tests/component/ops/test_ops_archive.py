"""`ops archive` on SQLite: rows once per (device, id), photos reassembled from the last copy of
each chunk and checked, acknowledgement only after the commit (a failed commit is redelivered)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import sqlite3
import threading
from pathlib import Path
from unittest import mock

import pytest

from agent.config.model import BrokerConfig
from agent.demo.broker import Broker
from agent.errors import ArchiveDbError
from agent.ops.archive.records import ChunkRow, EventRow, MediaRow, RejectRow, StateRow, rows_for
from agent.ops.archive.service import Archiver
from agent.ops.archive.store import SqlStore
from agent.ops.mqtt import Message, OpsClient
from tests.kits.archive import (
    ArchiverProc,
    Publisher,
    envelope,
    event_ids,
    fleet,
    photo,
    wait_until,
)
from tests.kits.paths import REPO
from tests.kits.units import verify_unit

SHARE = [f"$share/archive/{t}" for t in ("grid/v1/+/evt/+", "grid/v1/+/ack",
         "grid/v1/+/state", "grid/v1/+/reported", "grid/v1/+/media/+/+")]  # fmt: skip


def test_rows_for_each_topic() -> None:
    ev = envelope("pd-1", "incident", 7, {"category": "water"})
    (row,) = rows_for("grid/v1/pd-1/evt/incident", ev, 5)
    assert isinstance(row, EventRow) and row.seq == 7 and row.payload == ev.decode()
    (st,) = rows_for("grid/v1/pd-1/state", b'{"online":false,"bdseq":4}', 5)
    assert isinstance(st, StateRow) and st.a is False and st.b == 4
    assert rows_for("grid/v1/pd-1/status", b"{}", 5) == ()
    assert rows_for("grid/v1/pd-1/state", b"", 5) == ()  # retained message cleared
    (ch,) = rows_for("grid/v1/pd-1/media/m-1/2", b"\x00\x01", 5)
    assert isinstance(ch, ChunkRow) and ch.n == 2
    *_, media = rows_for("grid/v1/pd-1/evt/media", photo("pd-1", 1, 100, 64, "x")[-1][1], 5)
    assert isinstance(media, MediaRow) and media.chunks == 2


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("grid/v1/pd-1/evt/incident", b"\xff\xfe", "not UTF-8 JSON"),
        ("grid/v1/pd-1/evt/incident", b"[1]", "not a JSON object"),
        ("grid/v1/pd-1/ack", b'{"v":1}', "envelope without id"),
        ("grid/v1/PD_1/evt/incident", b"{}", "bad device id"),
        ("grid/v1/pd-1/evt/weather", b"{}", "unknown topic"),
    ],
)
def test_bad_messages_are_kept_as_rejects(topic: str, payload: bytes, reason: str) -> None:
    (row,) = rows_for(topic, payload, 1)
    assert isinstance(row, RejectRow) and row.reason == reason and row.payload == payload


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _sqlite(tmp_path: Path) -> SqlStore:
    return SqlStore(str(tmp_path / "archive.db"))


def test_store_writes_once_and_rechunked_photo_keeps_last_chunks(tmp_path: Path) -> None:
    store, media_dir = _sqlite(tmp_path), tmp_path / "media"
    msgs = fleet(2, 3)
    # The device re-chunked a photo: first 64 KiB chunks (only two got out), then 32 KiB ones.
    big = photo("pd-0000", 99, 100_000, 65536, "x")[:2]
    small = photo("pd-0000", 99, 100_000, 32768, "x")
    media_id = small[0][0].split("/")[4]
    big = [(t.replace(t.split("/")[4], media_id), p) for t, p in big]
    msgs += big + small
    rows = [r for t, p in msgs for r in rows_for(t, p, 1)]
    store.write(rows)
    store.write(rows)  # a redelivery of everything: no row twice
    assert store.count("events") == len(event_ids(msgs))
    assert store.count("states") == 2 and store.count("reported") == 2
    assert store.finish_media("pd-0000", media_id, media_dir) == "ok"
    db = sqlite3.connect(tmp_path / "archive.db")
    (path, status), = db.execute("SELECT path, status FROM media").fetchall()  # fmt: skip
    want = json.loads(small[-1][1])["body"]["sha256"]
    assert status == "ok" and hashlib.sha256((media_dir / path).read_bytes()).hexdigest() == want
    assert store.count("media_chunks") == 0  # assembled chunks are dropped
    store.close()


def test_photo_with_a_wrong_chunk_is_not_written(tmp_path: Path) -> None:
    store, media_dir = _sqlite(tmp_path), tmp_path / "media"
    msgs = photo("pd-1", 1, 100_000, 65536, "x")
    bad = [(msgs[0][0], b"\x00" * len(msgs[0][1])), *msgs[1:]]
    store.write([r for t, p in bad for r in rows_for(t, p, 1)])
    media_id = msgs[0][0].split("/")[4]
    assert store.finish_media("pd-1", media_id, media_dir) == "sha256_mismatch"
    assert not media_dir.exists() or not any(media_dir.rglob("*.jpg"))
    # The right chunk arrives again (republish): the photo completes.
    store.write([r for t, p in msgs[:1] for r in rows_for(t, p, 2)])
    assert store.finish_media("pd-1", media_id, media_dir) == "ok"
    store.close()


class FailingStore(SqlStore):
    """Fault injection: every write fails (the database is down)."""

    def write(self, rows: object) -> None:  # type: ignore[override]
        raise ArchiveDbError("database down (injected)")


def _client(broker: Broker, name: str) -> OpsClient:
    cfg = BrokerConfig(host=broker.host, port=broker.port)
    return OpsClient(cfg, name, persistent=True, manual_ack=True, receive_maximum=100)


def _archive(client: OpsClient, store: SqlStore, tmp_path: Path, stop: threading.Event) -> Archiver:
    return Archiver(client, store, tmp_path / "media", stop, batch_max=50)


def test_nothing_is_acknowledged_before_the_commit(broker: Broker, tmp_path: Path) -> None:
    """The archiver whose database is down stops without acking; the same session then gets
    every message again and writes each once."""
    msgs = fleet(3, 10, photo_every=5)
    down = FailingStore(str(tmp_path / "archive.db"))
    stop = threading.Event()
    with _client(broker, "archive-a") as client:
        client.subscribe(SHARE)
        pub = Publisher(broker.host, broker.port)
        pub.publish_all(msgs)
        pub.close()
        arch = _archive(client, down, tmp_path, stop)
        t = threading.Thread(target=arch.run)
        t.start()
        wait_until(lambda: arch.counters.retries >= 2, 20, "two failed commits")
        stop.set()
        t.join(20)
    assert arch.counters.messages == 0
    store, stop = _sqlite(tmp_path), threading.Event()
    with _client(broker, "archive-a") as client:
        client.subscribe(SHARE)
        arch = _archive(client, store, tmp_path, stop)
        t = threading.Thread(target=arch.run)
        t.start()
        db = tmp_path / "archive.db"
        wait_until(lambda: _count(db, "events") >= len(event_ids(msgs)), 20, "every event")
        wait_until(lambda: arch.counters.photos >= 6, 20, "every photo")
        stop.set()
        t.join(20)
    assert store.count("events") == len(event_ids(msgs))
    assert store.count("media") == 6 and len(list((tmp_path / "media").rglob("*.jpg"))) == 6
    store.close()


def test_store_reports_a_database_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(ArchiveDbError, match="cannot open the sqlite archive"):
        SqlStore(str(tmp_path / "no" / "such" / "dir" / "a.db"))


ARCHIVE_UNIT = REPO / "systemd" / "edge-archive.service"


def test_archive_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = ARCHIVE_UNIT.read_text()
    assert "Type=notify" in text and "ops archive --check" in text and "Restart=always" in text
    verify_unit(ARCHIVE_UNIT, "/opt/edge-agent/.venv/bin/edge-agent", tmp_path)


def test_service_notifies_ready_and_stops_cleanly_on_sigterm(
    broker: Broker, tmp_path: Path
) -> None:
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    args = ["--host", broker.host, "--port", str(broker.port), "--db", str(tmp_path / "a.db"),
            "--media-dir", str(tmp_path / "media"), "--name", "svc"]  # fmt: skip
    proc = ArchiverProc(args, tmp_path / "svc.log")
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    with mock.patch.dict(os.environ, env):
        proc.start()
    try:
        assert sock.recv(4096).decode().startswith("READY=1"), proc.log()
        pub = Publisher(broker.host, broker.port)
        msgs = fleet(2, 5)
        pub.publish_all(msgs)
        pub.close()
        wait_until(
            lambda: _count(tmp_path / "a.db", "events") == len(event_ids(msgs)), 20, "events"
        )
    finally:
        assert proc.stop() == 0
        sock.close()
    assert "stopped: archived" in proc.log()


class Queued:
    """The messages as the MQTT client would queue them (this test is about the database)."""

    def __init__(self, msgs: list[tuple[str, bytes]]) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        for topic, payload in msgs:
            self.messages.put(Message(topic, payload, False, 1, 1, 1, 0))
        self.acked = 0

    def ack(self, msg: Message) -> bool:
        self.acked += 1
        return True


def test_a_photo_whose_file_could_not_be_written_is_finished_at_the_next_start(
    tmp_path: Path,
) -> None:
    msgs = photo("pd-1", 1, 100_000, 65536, "x")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")  # the media "directory" is a file: writing the photo fails
    src, stop = Queued(msgs), threading.Event()
    store = _sqlite(tmp_path)
    arch = Archiver(src, store, blocked, stop, batch_max=50)
    t = threading.Thread(target=arch.run)
    t.start()
    wait_until(lambda: src.acked == len(msgs), 10, "the photo's messages committed")
    stop.set()
    t.join(10)
    assert arch.counters.photos == 0 and _count(tmp_path / "archive.db", "media_chunks") == 2
    stop = threading.Event()
    again = Archiver(Queued([]), store, tmp_path / "media", stop)
    stop.set()  # run() sweeps unfinished photos first, then sees the stop
    again.run()
    assert again.counters.photos == 1
    assert len(list((tmp_path / "media").rglob("*.jpg"))) == 1
    store.close()


@pytest.mark.slow
def test_one_machine_archive_keeps_what_arrives_right_after_a_broker_restart(
    broker: Broker, tmp_path: Path
) -> None:
    """The one-machine setup (Mosquitto, one archiver, --no-share): its subscription is part
    of the persistent session Mosquitto restores, so messages published after a restart and
    before the archiver is back wait for it (docs/central.md: shared subscriptions are not
    restored by Mosquitto 2.0.11, hence --no-share here)."""
    db = tmp_path / "a.db"
    args = ["--host", broker.host, "--port", str(broker.port), "--db", str(db), "--no-share",
            "--media-dir", str(tmp_path / "media"), "--name", "one"]  # fmt: skip
    proc = ArchiverProc(args, tmp_path / "one.log")
    proc.start()
    try:
        proc.wait_ready()
        before = fleet(2, 5)
        pub = Publisher(broker.host, broker.port)
        pub.publish_all(before)
        broker.stop()
        broker.start()
        after = fleet(2, 5)  # published at once, before the archiver reconnects
        pub.publish_all(after)
        pub.close()
        want = len(event_ids(before + after))
        wait_until(lambda: _count(db, "events") == want, 30, "every event")
    finally:
        assert proc.stop() == 0

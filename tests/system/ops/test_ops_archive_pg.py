"""`ops archive` into a real PostgreSQL with two archivers sharing one MQTT 5 shared
subscription, under chaos mid-stream: an archiver killed with SIGKILL, PostgreSQL restarted,
Mosquitto stopped and started. Every message lands exactly once (docs/central.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent.demo.broker import Broker
from tests.kits.archive import ArchiverProc, Msg, Publisher, event_ids, fleet, wait_until
from tests.kits.brokers import run_mosquitto
from tests.kits.postgres import Postgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """One PostgreSQL for the module (initdb takes seconds); tables emptied per test."""
    server = Postgres()
    try:
        server.init()
        yield server
    finally:
        server.remove()


@pytest.fixture
def db(pg: Postgres) -> Iterator[Postgres]:
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        for table in ("events", "states", "reported", "media", "media_chunks", "rejects"):
            c.execute(f"DROP TABLE IF EXISTS {table}")
    yield pg


@pytest.fixture
def mqtt(tmp_path: Path) -> Iterator[Broker]:
    yield from run_mosquitto(tmp_path / "broker")


def _rows(pg: Postgres, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg.dsn) as c:
        return list(c.execute(sql).fetchall())


def _count(pg: Postgres, table: str) -> int:
    try:
        return int(_rows(pg, f"SELECT count(*) FROM {table}")[0][0])
    except psycopg.Error:
        return -1  # down or not created yet


def _archiver(name: str, pg: Postgres, broker: Broker, tmp_path: Path) -> ArchiverProc:
    args = [
        "--host", broker.host, "--port", str(broker.port), "--dsn", pg.dsn,
        "--media-dir", str(tmp_path / "media"), "--name", name, "--batch", "200",
    ]  # fmt: skip
    return ArchiverProc(args, tmp_path / f"archiver-{name}.log")


def _publish_in_background(broker: Broker, parts: list[list[Msg]], go: list[threading.Event]):
    """Publishes part i once go[i] is set (the chaos between parts happens mid-stream)."""
    pub = Publisher(broker.host, broker.port)

    def run() -> None:
        for part, event in zip(parts, go, strict=True):
            event.wait(60)
            pub.publish_all(part)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return pub, t


def _check_everything(pg: Postgres, msgs: list[Msg], media_dir: Path) -> None:
    want = event_ids(msgs)
    got = _rows(pg, "SELECT dev, id FROM events")
    assert len(got) == len(set(got)) == len(want)  # 0 duplicate rows
    assert set(got) == want  # 0 lost
    devices = {t.split("/")[2] for t, _ in msgs}
    assert _count(pg, "states") == _count(pg, "reported") == len(devices)
    photos = _rows(pg, "SELECT path, sha256, status FROM media")
    assert photos and all(status == "ok" for _, _, status in photos)
    for path, sha, _ in photos:
        assert hashlib.sha256((media_dir / str(path)).read_bytes()).hexdigest() == sha
    assert _count(pg, "media_chunks") == 0 and _count(pg, "rejects") == 0


def test_two_archivers_under_chaos_lose_nothing_and_write_nothing_twice(
    db: Postgres, mqtt: Broker, tmp_path: Path
) -> None:
    msgs = fleet(16, 60, photo_every=20)
    parts = [msgs[i::4] for i in range(4)]  # each part interleaves every device's traffic
    a, b = _archiver("a", db, mqtt, tmp_path), _archiver("b", db, mqtt, tmp_path)
    go = [threading.Event() for _ in parts]
    pub, t = _publish_in_background(mqtt, parts, go)
    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        go[0].set()
        wait_until(lambda: _count(db, "events") > 50, 30, "archiving under way")
        a.kill()  # SIGKILL mid-stream: its unacknowledged messages wait in its session
        go[1].set()
        a.start()
        a.wait_ready()
        db.stop()  # PostgreSQL restart mid-stream: commits fail, nothing is acknowledged
        go[2].set()
        time.sleep(1.0)
        db.start()
        subs = a.resubscribed(), b.resubscribed()
        mqtt.stop()  # the broker goes away mid-stream (it keeps the sessions on disk)
        time.sleep(0.5)
        mqtt.start()
        # Mosquitto 2.0.11 does not restore shared subscriptions from its persistence file:
        # what devices publish before the archivers subscribe again finds no subscriber
        # (PUBACK reason 16) and is gone (docs/central.md). The devices' next traffic waits.
        wait_until(
            lambda: a.resubscribed() > subs[0] and b.resubscribed() > subs[1],
            30,
            "both archivers back",
        )
        go[3].set()
        t.join(120)
        wait_until(lambda: _count(db, "events") == len(event_ids(msgs)), 60, "every event")
        wait_until(
            lambda: (
                _count(db, "media") > 0
                and _rows(db, "SELECT count(*) FROM media WHERE status <> 'ok'")[0][0] == 0
            ),
            30,
            "every photo",
        )
        time.sleep(1.0)  # late redeliveries must not add rows either
    finally:
        pub.close()
        rc_a, rc_b = a.stop(), b.stop()
    assert rc_a == rc_b == 0
    _check_everything(db, msgs, tmp_path / "media")
    assert a.archived() > 0 and b.archived() > 0, "both archivers took a share"
    assert "retrying" in a.log() + b.log()  # the PostgreSQL restart was noticed


def test_check_passes_and_names_what_is_wrong(db: Postgres, mqtt: Broker, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "agent", "ops", "archive", "--check", "--name", "chk",
            "--host", mqtt.host, "--port", str(mqtt.port),
            "--media-dir", str(tmp_path / "m"), "--lang", "en"]  # fmt: skip
    ok = subprocess.run([*base, "--dsn", db.dsn], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   database (postgresql)" in ok.stdout
    bad_dsn = db.dsn.replace("/archive", "/nosuchdb")
    bad = subprocess.run([*base, "--dsn", bad_dsn], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 4 and "FAIL database" in bad.stdout
    assert json.dumps("nosuchdb")[1:-1] in bad.stdout
    zh = [*base[:-2], "--dsn", db.dsn]  # Simplified Chinese unless asked otherwise
    out = subprocess.run(zh, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert "通过 数据库(postgresql)" in out.stdout, out.stdout + out.stderr

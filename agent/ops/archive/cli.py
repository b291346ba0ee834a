"""`edge-agent ops archive`: the archive service's command line, start-up and its check.

Wires the pieces: the ops MQTT client (agent/ops/mqtt.py, the ops side's only paho user) with a
persistent session and manual acknowledgement, the database (store.py), the loop
(service.py), systemd notifications and SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import threading
import time

from agent.config.paths import expand
from agent.errors import ConfigError, LinkError
from agent.lang import Lang, pick
from agent.ops.archive.records import TOPICS
from agent.ops.archive.service import Archiver, Counters, status_line
from agent.ops.archive.store import SqlStore, StoreError
from agent.ops.mqtt import EXIT_LINK, OpsClient, settings
from agent.runtime.systemd import Notifier, notify_address
from firmware_bridge.aio import Backoff

log = logging.getLogger(__name__)

# What the check and systemd's STATUS= say to the operator (agent/lang.py: zh by default).
TEXTS: dict[Lang, dict[str, str]] = {
    "zh": {
        "ok": "通过",
        "fail": "失败",
        "db_ok": "数据库({kind}):表已就绪,已存 {n} 条事件",
        "media_ok": "照片目录 {dir} 可写",
        "broker_ok": "消息服务器 {host}:{port} 接受了订阅",
        "db": "数据库",
        "media": "照片目录",
        "broker": "消息服务器",
        "status": "已归档 {messages} 条消息({rows} 行,{photos} 张照片),{rate:.0f} 条/秒;"
        "数据库重试 {retries} 次",
    },
    "en": {
        "ok": "ok  ",
        "fail": "FAIL",
        "db_ok": "database ({kind}): schema in place, {n} events",
        "media_ok": "media directory {dir} is writable",
        "broker_ok": "broker {host}:{port} accepted the subscriptions",
        "db": "database",
        "media": "media directory",
        "broker": "broker",
        "status": "archived {messages} messages ({rows} rows, {photos} photos), {rate:.0f}/s; "
        "{retries} database retries",
    },
}

DEFAULT_DB = "/var/lib/edge-archive/archive.db"
DEFAULT_MEDIA = "/var/lib/edge-archive/media"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The archive's own flags (the broker flags come from the shared parent parser)."""
    p.add_argument(
        "--dsn",
        help="PostgreSQL DSN (postgresql://user@host:port/db); default: SQLite at --db",
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default {DEFAULT_DB})")
    p.add_argument(
        "--media-dir",
        default=DEFAULT_MEDIA,
        help=f"photos go to DIR/DEVICE/MEDIA_ID.jpg (default {DEFAULT_MEDIA}); archivers "
        "sharing one database must share this directory",
    )
    p.add_argument(
        "--name",
        default=socket.gethostname().split(".")[0].lower(),
        help="this archiver's name; its MQTT client id is archive-NAME (unique per archiver, "
        "the same across restarts: the broker keeps its session)",
    )
    p.add_argument(
        "--group",
        default="archive",
        help="shared-subscription group: archivers in one group share the load "
        "($share/GROUP/...); default archive",
    )
    p.add_argument(
        "--no-share",
        action="store_true",
        help="plain subscriptions (brokers without shared subscriptions, e.g. RabbitMQ 3.10: "
        "run one archiver per broker node or per device range, see docs/central.md)",
    )
    p.add_argument(
        "--topics",
        action="append",
        metavar="FILTER",
        help="subscribe to these filters instead of the whole fleet (repeatable), "
        "e.g. grid/v1/+/evt/+",
    )
    p.add_argument("--batch", type=int, default=500, help="messages per transaction (max)")
    p.add_argument("--lang", choices=("zh", "en"), help="check output and STATUS= (default zh)")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the database, media directory and broker subscription, then exit "
        "(0 all good); the systemd unit runs this before starting",
    )


def filters(args: argparse.Namespace) -> list[str]:
    """The subscription filters, shared (MQTT 5) unless --no-share."""
    base = list(args.topics or TOPICS)
    if args.no_share:
        return base
    return [f"$share/{args.group}/{t}" for t in base]


def open_store(args: argparse.Namespace) -> SqlStore:
    """The database named by --dsn or --db (StoreError when it cannot be opened)."""
    if args.dsn:
        return SqlStore(args.dsn)
    db = expand(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    return SqlStore(str(db))


def _client(args: argparse.Namespace) -> OpsClient:
    cfg = settings(args).broker
    if not args.no_share and cfg.protocol != 5:
        raise ConfigError([("--protocol", "shared subscriptions need MQTT 5 (or --no-share)")])
    window = max(2 * args.batch, 100)
    return OpsClient(
        cfg,
        args.client_id or f"archive-{args.name}",
        persistent=True,
        manual_ack=True,
        receive_maximum=min(window, 65535),
        queue_max=2 * window,
    )


def _open_store(args: argparse.Namespace, stop: threading.Event) -> SqlStore | None:
    """The database, waiting with backoff while it is down; None if stopped first."""
    backoff, rng, attempt = Backoff(base_s=1.0, cap_s=30.0), random.Random(), 0
    while not stop.is_set():
        try:
            return open_store(args)
        except StoreError as exc:
            delay = backoff.delay(attempt, rng)
            attempt += 1
            log.warning("%s; retrying in %.1f s", exc, delay)
            stop.wait(delay)
    return None


def _connect(client: OpsClient, stop: threading.Event) -> bool:
    """Enter the client, retrying with backoff while the broker is away; False if stopped."""
    backoff, rng, attempt = Backoff(base_s=1.0, cap_s=30.0), random.Random(), 0
    while not stop.is_set():
        try:
            client.__enter__()
            return True
        except LinkError as exc:
            delay = backoff.delay(attempt, rng)
            attempt += 1
            log.warning("%s; retrying in %.1f s", exc, delay)
            stop.wait(delay)
    return False


def check(args: argparse.Namespace) -> int:
    """The doctor for the archive: database, media directory, broker and subscription."""
    t = TEXTS[pick(args.lang, os.environ)]
    problems: list[str] = []
    try:
        store = open_store(args)
        print(f"{t['ok']} " + t["db_ok"].format(kind=store.kind, n=store.count("events")))
        store.close()
    except (StoreError, OSError) as exc:
        problems.append(f"{t['db']}: {exc}")
    media = expand(args.media_dir)
    try:
        media.mkdir(parents=True, exist_ok=True)
        probe = media / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        print(f"{t['ok']} " + t["media_ok"].format(dir=media))
    except OSError as exc:
        problems.append(f"{t['media']} {media}: {exc.strerror}")
    try:
        # A separate, clean session: the check must not take the service's messages.
        cfg = settings(args).broker
        with OpsClient(cfg, f"archive-{args.name}-check") as client:
            client.subscribe(filters(args))
        print(f"{t['ok']} " + t["broker_ok"].format(host=cfg.host, port=cfg.port))
    except (LinkError, ConfigError) as exc:
        problems.append(f"{t['broker']}: {exc}")
    for p in problems:
        print(f"{t['fail']} {p}")
    return EXIT_LINK if problems else 0


def run(args: argparse.Namespace) -> int:
    """`ops archive`: run until SIGTERM/SIGINT."""
    if args.check:
        return check(args)
    if args.batch < 1:
        raise ConfigError([("--batch", "must be at least 1")])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    store = _open_store(args, stop)
    if store is None:
        return 0
    client = _client(args)
    notifier = Notifier(notify_address(os.environ))
    try:
        if not _connect(client, stop):
            return 0
        client.subscribe(filters(args))
        log.info("archiving %s into %s", ", ".join(filters(args)), store.kind)
        notifier.send("READY=1", "STATUS=archiving")
        _loop(args, client, store, stop, notifier)
    finally:
        client.__exit__(None, None, None)
        store.close()
        notifier.close()
    return 0


def _loop(
    args: argparse.Namespace,
    client: OpsClient,
    store: SqlStore,
    stop: threading.Event,
    notifier: Notifier,
) -> None:
    started, last = time.monotonic(), [0.0]

    texts = TEXTS[pick(args.lang, os.environ)]

    def tick(c: Counters) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0:
            last[0] = now
            rate = c.messages / max(1e-9, now - started)
            status = texts["status"].format(rate=rate, **vars(c))
            notifier.send("WATCHDOG=1", f"STATUS={status}")

    archiver = Archiver(
        client, store, expand(args.media_dir), stop, batch_max=args.batch, tick=tick
    )
    log.info("stopped: %s", status_line(archiver.run(), started))

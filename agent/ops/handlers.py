"""The ops commands that are not pushes: keygen, import, devices, watch, verify, media.

Each takes the parsed arguments and returns the exit code; `guarded` turns the errors users
cause into a message on stderr and an exit code. The parser is in agent/ops/cli.py.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.markup import escape

from agent.config.paths import expand
from agent.errors import ConfigError, LinkError
from agent.lang import pick
from agent.ops import (
    devices,
    importcmd,
    keys,
    media,
    output,
    pushcmd,
    streamcheck,
    verify_cmd,
    watch,
)
from agent.ops.mqtt import EXIT_INPUT, EXIT_LINK, EXIT_REFUSED, OpsClient, settings

Handler = Callable[[argparse.Namespace], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


def guarded(fn: Handler) -> Handler:
    """Turn the errors users cause into a clear message and an exit code (never a traceback)."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        o = output.make(args)
        try:
            return fn(args)
        except ConfigError as exc:
            for where, reason in exc.problems:
                o.error(f"{where}: {reason}")
            return EXIT_INPUT
        except ValueError as exc:
            o.error(str(exc))
            return EXIT_INPUT
        except LinkError as exc:
            o.err.print(f"[red]broker:[/] {escape(str(exc))}", soft_wrap=True)
            return EXIT_LINK
        except OSError as exc:
            o.error(str(exc))
            return EXIT_INPUT
        except KeyboardInterrupt:
            return 130

    return run


# ----- input files -------------------------------------------------------------------------
def read_data(path: Path) -> Any:
    """A JSON file, or TOML when the name does not end in .json."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot parse: {exc}")]) from None


# ----- pushing documents (agent/ops/pushcmd.py) ----------------------------------------------
def cmd_push_config(args: argparse.Namespace) -> int:
    return pushcmd.cmd_push_config(args, read_data)


def cmd_push_tasks(args: argparse.Namespace) -> int:
    return pushcmd.cmd_push_tasks(args, read_data)


# ----- keys, import ---------------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    pub = keys.keygen(expand(args.out), args.kid, force=args.force)
    o = output.make(args)
    if o.json:
        o.record(
            {
                "event": "keygen",
                "key_file": args.out,
                "kid": args.kid,
                "entry": pub.entry(),
                "trust_toml": pub.trust_toml(),
                "provision_flag": pub.provision_flag(),
            }
        )
        return 0
    o.say(f"private key written to {args.out} (mode 0600): keep it on this machine only")
    o.say(
        "in the [trust] section of every device that must accept it, add this item to the "
        "ops_keys list (or, with no keys yet, use the whole line):\n"
    )
    o.say(pub.entry())
    o.say(pub.trust_toml())
    o.say(
        "\nor, on a device being provisioned (replaces the example key of the shipped configs):\n"
    )
    o.say(pub.provision_flag())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    return importcmd.cmd_import(args, read_data)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM set `stop` instead of raising.

    A watch ends that way between messages: a KeyboardInterrupt could land inside the message
    queue's lock, leave it held, and hang the last drain of the archive (a test saw a watch
    ignore SIGINT). Only the main thread can set handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# ----- central views -------------------------------------------------------------------------
def cmd_devices(args: argparse.Namespace) -> int:
    cfg = settings(args)
    with OpsClient(cfg.broker, args.client_id) as client:
        got = devices.collect(client, args.wait, listen_s=args.listen)
    now = _now_ms()
    devices.render(devices.rows(got, now), output.make(args), now)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    cfg = settings(args)
    archive = watch.Archive(expand(args.archive)) if args.archive else None
    stop = threading.Event()
    try:
        with stop_on_signals(stop), OpsClient(cfg.broker, args.client_id) as client:
            watch.run_watch(
                client,
                out=output.make(args),
                device=args.device,
                archive=archive,
                seconds=args.seconds,
                stop=stop,
                show_status=args.status,
                max_rows=args.rows,
                lang=pick(args.lang, os.environ),
            )
    finally:
        if archive is not None:
            archive.close()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    # An archive normally starts with the device; a live capture starts anywhere in its stream.
    first = args.from_seq or ("1" if args.archive else "auto")
    from_seq = None if first == "auto" else int(first)
    if args.archive:
        messages = verify_cmd.from_archive(expand(args.archive))
    else:
        cfg = settings(args)
        with OpsClient(cfg.broker, args.client_id) as client:
            messages = verify_cmd.capture(client, args.device, args.seconds)
    report = streamcheck.check(args.device, messages, from_seq=from_seq)
    if report.received == 0:
        # Nothing to check is not "clean": the device is silent, offline, or the id is wrong.
        where = f"in {args.archive}" if args.archive else f"in {args.seconds:g} s"
        output.make(args).error(
            f"no messages from {args.device} {where}: nothing was checked "
            "(is the id right? `ops devices` lists the devices the broker knows)"
        )
        return EXIT_REFUSED
    verify_cmd.render(report, output.make(args))
    return 0 if report.ok else EXIT_REFUSED


def cmd_media(args: argparse.Namespace) -> int:
    out = output.make(args)
    if args.archive:
        messages = [m for m in watch.read_archive(expand(args.archive))]
        saved = media.run_media(
            messages,
            client=None,
            device=args.device,
            out_dir=expand(args.out),
            seconds=None,
            out=out,
        )
    else:
        cfg = settings(args)
        with OpsClient(cfg.broker, args.client_id) as client:
            saved = media.run_media(
                None,
                client=client,
                device=args.device,
                out_dir=expand(args.out),
                seconds=args.seconds,
                out=out,
            )
    return 0 if saved else EXIT_REFUSED

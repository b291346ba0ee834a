"""`edge-agent ops`: the operations tool's sub-commands; thin I/O around the pure ops modules."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from agent.config.paths import expand
from agent.documents.appliers import CMD_ACTIONS
from agent.errors import ConfigError, LinkError
from agent.ops import (
    checkpoints,
    devices,
    documents,
    importcmd,
    keys,
    media,
    pushcmd,
    streamcheck,
    verify_cmd,
    watch,
)
from agent.ops.alerts import service as alerts_service
from agent.ops.archive import cli as archive_cli
from agent.ops.mqtt import (
    EXIT_INPUT,
    EXIT_LINK,
    EXIT_REFUSED,
    OpsClient,
    broker_flags,
    settings,
    signing_flags,
)
from agent.ops.report import cmd as report_cmd

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]
DAY_MS = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    # soft_wrap: a message keeps its words together however narrow the terminal or log is.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _guarded(fn: Handler) -> Handler:
    """Turn the errors users cause into a clear message and an exit code (never a traceback)."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        err = _err()
        try:
            return fn(args)
        except ConfigError as exc:
            for where, reason in exc.problems:
                err.print(f"[red]error:[/] {escape(f'{where}: {reason}')}", soft_wrap=True)
            return EXIT_INPUT
        except ValueError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            return EXIT_INPUT
        except LinkError as exc:
            err.print(f"[red]broker:[/] {escape(str(exc))}", soft_wrap=True)
            return EXIT_LINK
        except OSError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            return EXIT_INPUT
        except KeyboardInterrupt:
            return 130

    return run


# ----- input files -------------------------------------------------------------------------
def _read_data(path: Path) -> Any:
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
def _cmd_push_config(args: argparse.Namespace) -> int:
    return pushcmd.cmd_push_config(args, _read_data)


def _cmd_push_tasks(args: argparse.Namespace) -> int:
    return pushcmd.cmd_push_tasks(args, _read_data)


# ----- keys, import ---------------------------------------------------------------------------
def _cmd_keygen(args: argparse.Namespace) -> int:
    pub = keys.keygen(expand(args.out), args.kid, force=args.force)
    out = _out()
    out.print(f"private key written to {args.out} (mode 0600): keep it on this machine only")
    out.print(
        "in the [trust] section of every device that must accept it, add this item to the "
        "ops_keys list (or, with no keys yet, use the whole line):\n",
        markup=False,
    )
    out.print(pub.entry(), markup=False, soft_wrap=True)
    out.print(pub.trust_toml(), markup=False, soft_wrap=True)
    out.print(
        "\nor, on a device being provisioned (replaces the example key of the shipped configs):\n",
        markup=False,
    )
    out.print(pub.provision_flag(), markup=False, soft_wrap=True)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    return importcmd.cmd_import(args, _read_data)


# ----- central views -------------------------------------------------------------------------
def _cmd_devices(args: argparse.Namespace) -> int:
    cfg = settings(args)
    with OpsClient(cfg.broker, args.client_id) as client:
        got = devices.collect(client, args.wait, listen_s=args.listen)
    now = _now_ms()
    devices.render(devices.rows(got, now), _out(), now, args.json)
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    cfg = settings(args)
    archive = watch.Archive(expand(args.archive)) if args.archive else None
    try:
        with OpsClient(cfg.broker, args.client_id) as client:
            watch.run_watch(
                client,
                console=_out(),
                device=args.device,
                archive=archive,
                seconds=args.seconds,
                show_status=args.status,
                max_rows=args.rows,
            )
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch normally ends
    finally:
        if archive is not None:
            archive.close()
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
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
        _err().print(
            f"[red]no messages from {escape(args.device)} {where}[/]: nothing was checked "
            "(is the id right? `ops devices` lists the devices the broker knows)"
        )
        return EXIT_REFUSED
    verify_cmd.render(report, _out(), args.json)
    return 0 if report.ok else EXIT_REFUSED


def _cmd_media(args: argparse.Namespace) -> int:
    out = _out()
    if args.archive:
        messages = [m for m in watch.read_archive(expand(args.archive))]
        saved = media.run_media(
            messages,
            client=None,
            device=args.device,
            out_dir=expand(args.out),
            seconds=None,
            console=out,
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
                console=out,
            )
    return 0 if saved else EXIT_REFUSED


# ----- parser --------------------------------------------------------------------------------
def _from_seq(text: str) -> str:
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError("a seq number >= 1, or auto")
    return text


def _minutes(text: str) -> float:
    try:
        return documents.parse_minutes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _doc_flags() -> argparse.ArgumentParser:
    doc = argparse.ArgumentParser(add_help=False)
    g = doc.add_argument_group("document")
    g.add_argument("--ver", type=int, help="document version (default: now in ms)")
    g.add_argument(
        "--expires",
        metavar="WHEN",
        help="30m, 2h, 1d, epoch ms or ISO-8601 with offset; default never",
    )
    g.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for acks")
    g.add_argument("--no-wait", action="store_true", help="publish and do not wait for acks")
    g.add_argument("--dry-run", action="store_true", help="print the signed document only")
    return doc


def add_ops_parser(subparsers: Any) -> None:
    """Add `ops` and its sub-commands to the `edge-agent` sub-parsers."""
    broker, signing, doc = broker_flags(), signing_flags(), _doc_flags()
    ops = subparsers.add_parser(
        "ops",
        help="operations tool for the centre (sign, push, watch, verify)",
        description="Operations tool for the staff at the centre: keys, signed documents "
        "(config, tasks, mode, cmd), device list, live watch and stream verification. "
        "Documents are signed on this machine; the private key never leaves it.",
    )
    sub = ops.add_subparsers(dest="ops_command", required=True, metavar="COMMAND")

    def add(name: str, fn: Handler, help_: str, *parents: argparse.ArgumentParser) -> Any:
        p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
        p.set_defaults(func=_guarded(fn))
        return p

    p = add("keygen", _cmd_keygen, "make an Ed25519 signing key (file mode 0600)")
    p.add_argument("--out", required=True, metavar="PEM", help="where to write the private key")
    p.add_argument("--kid", required=True, help="key id, e.g. ops-2026a")
    p.add_argument("--force", action="store_true", help="replace an existing key file")

    p = add(
        "push-config",
        _cmd_push_config,
        "sign and push a config document to a device",
        broker,
        signing,
        doc,
    )
    pushcmd.add_targets(p)
    p.add_argument(
        "--file", required=True, help="config as TOML or .json (local-only keys are left out)"
    )

    p = add(
        "push-tasks",
        _cmd_push_tasks,
        "sign and push a tasks document (the whole set)",
        broker,
        signing,
        doc,
    )
    pushcmd.add_targets(p)
    p.add_argument("--file", required=True, help="tasks body JSON (see import-checkpoints)")

    p = add(
        "set-mode",
        pushcmd.cmd_set_mode,
        "sign and push a work mode for a device or a zone",
        broker,
        signing,
        doc,
    )
    p.add_argument("mode", choices=("normal", "holiday", "major_event", "emergency"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dev", help="device id")
    where.add_argument("--zone", help="zone id, e.g. ruyihu.cbd")
    p.add_argument("--reason", required=True, help="why (kept with the mode on the device)")
    p.add_argument(
        "--expect",
        action="append",
        metavar="DEVICE",
        help="with --zone: also wait for this device's ack (the zone's devices are awaited)",
    )
    pushcmd.add_targets(p, positional=False)

    p = add("cmd", pushcmd.cmd_cmd, "sign and send a one-off command", broker, signing, doc)
    p.add_argument("device")
    p.add_argument("action", choices=CMD_ACTIONS)
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        help="command argument, e.g. snapshot --arg camera_id=cam-2 (unknown names refused)",
    )
    p.add_argument(
        "--exp",
        dest="exp_minutes",
        type=_minutes,
        default=documents.CMD_EXP_MINUTES,
        metavar="MINUTES",
        help=f"the command expires this many minutes after it is sent (default "
        f"{documents.CMD_EXP_MINUTES:g}): a device that gets it later acks expired and does not "
        "run it",
    )
    pushcmd.add_targets(p, positional=False)

    p = add(
        "retract",
        pushcmd.cmd_retract,
        "remove a retained document from the broker (e.g. sent to a mistyped device id)",
        broker,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("device", nargs="?")
    where.add_argument("--zone", help="the zone's mode document")
    p.add_argument("--typ", choices=("config", "tasks", "mode"), help="default: all three")

    p = add("import-checkpoints", _cmd_import, "CSV, GeoJSON, KML or KMZ points -> a tasks body")
    p.add_argument(
        "file",
        help=f"CSV (comma/semicolon/tab; UTF-8 or GBK) with columns "
        f"{','.join(checkpoints.CSV_COLUMNS)} or 名称,经度,纬度,半径...; "
        "GeoJSON, KML or KMZ points",
    )
    importcmd.add_import_flags(p)
    p.add_argument("--task-id", required=True)
    p.add_argument("--task-name", required=True)
    p.add_argument("--staff", default=None, help="staff id (default: any)")
    p.add_argument("--start", help="epoch ms, ISO-8601 or a duration from now (default now)")
    p.add_argument("--end", help="epoch ms, ISO-8601 or a duration from start (default +1d)")
    p.add_argument("--order", choices=("any", "sequence"), default="any")
    p.add_argument("--radius", type=float, default=25.0, help="default radius_m")
    p.add_argument("--dwell", type=float, default=10.0, help="default dwell_s")
    p.add_argument("--photo", action="store_true", help="default photo = true")
    p.add_argument("--into", metavar="JSON", help="add to (or replace in) this tasks body")
    p.add_argument("--out", metavar="JSON", help="write here (default stdout)")

    p = add("devices", _cmd_devices, "devices: state, last status, health, trouble", broker)
    p.add_argument(
        "--wait", type=float, default=3.0, help="at most this long for retained messages"
    )
    p.add_argument(
        "--listen",
        type=float,
        default=5.0,
        help="then listen this long to live traffic (status, births, acks); longer than the "
        "status interval to see every device's status",
    )
    p.add_argument("--json", action="store_true")

    p = add("watch", _cmd_watch, "live table of events, acks and state", broker)
    p.add_argument("--device", help="only this device")
    p.add_argument("--archive", metavar="DIR", help="append every message to DIR/grid-DAY.jsonl")
    p.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--status", action="store_true", help="show status messages too")
    p.add_argument("--rows", type=int, default=30, help="rows kept in the live table")

    p = add("media", _cmd_media, "save photos and snapshots as files with their metadata", broker)
    p.add_argument("--device", help="only this device")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/DEVICE/MEDIA_ID.jpg")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", metavar="DIR", help="a watch --archive directory")
    src.add_argument("--seconds", type=float, help="collect live for this long")

    p = add(
        "verify", _cmd_verify, "check a device's stream: dedupe, gaps, hash chain, media", broker
    )
    p.add_argument("device")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", metavar="DIR", help="a watch --archive directory")
    src.add_argument("--seconds", type=float, help="capture live for this long")
    p.add_argument(
        "--from-seq",
        type=_from_seq,
        default=None,
        help="first seq expected, or auto (the lowest seen); default 1 for --archive, "
        "auto for --seconds",
    )
    p.add_argument("--json", action="store_true")

    report_cmd.register(sub, _guarded)
    alerts_service.register(sub, _guarded, broker)
    p = add(
        "archive",
        archive_cli.run,
        "service: write every fleet message once into SQLite or PostgreSQL (docs/central.md)",
        broker,
    )
    archive_cli.add_arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    """`edge-agent ops ARGS` as a function: `argv` is what follows `ops`."""
    parser = argparse.ArgumentParser(prog="edge-agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_ops_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ops", *(sys.argv[1:] if argv is None else argv)])
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

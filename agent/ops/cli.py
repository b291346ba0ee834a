"""`edge-agent ops`: the operations tool's sub-commands; thin I/O around the pure ops modules."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from agent.appliers import CMD_ACTIONS
from agent.errors import ConfigError, LinkError
from agent.lang import pick
from agent.ops import (
    checkpoints,
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
from agent.ops.mqtt import (
    EXIT_INPUT,
    EXIT_LINK,
    EXIT_REFUSED,
    OpsClient,
    broker_flags,
    settings,
    signing_flags,
)
from agent.paths import expand

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]
DAY_MS = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _guarded(fn: Handler) -> Handler:
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
    o = output.make(args)
    if o.json:
        o.record(
            {
                "event": "keygen",
                "key_file": args.out,
                "kid": args.kid,
                "entry": pub.entry(),
                "trust_toml": pub.trust_toml(),
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
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    return importcmd.cmd_import(args, _read_data)


# ----- central views -------------------------------------------------------------------------
def _cmd_devices(args: argparse.Namespace) -> int:
    cfg = settings(args)
    with OpsClient(cfg.broker, args.client_id) as client:
        got = devices.collect(client, args.wait, listen_s=args.listen)
    now = _now_ms()
    devices.render(devices.rows(got, now), output.make(args), now)
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    cfg = settings(args)
    archive = watch.Archive(expand(args.archive)) if args.archive else None
    try:
        with OpsClient(cfg.broker, args.client_id) as client:
            watch.run_watch(
                client,
                out=output.make(args),
                device=args.device,
                archive=archive,
                seconds=args.seconds,
                show_status=args.status,
                max_rows=args.rows,
                lang=pick(args.lang, os.environ),
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
        output.make(args).error(
            f"no messages from {args.device} {where}: nothing was checked "
            "(is the id right? `ops devices` lists the devices the broker knows)"
        )
        return EXIT_REFUSED
    verify_cmd.render(report, output.make(args))
    return 0 if report.ok else EXIT_REFUSED


def _cmd_media(args: argparse.Namespace) -> int:
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


# ----- parser: one function per command ----------------------------------------------------
def _from_seq(text: str) -> str:
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError("a seq number >= 1, or auto")
    return text


def _doc_flags() -> argparse.ArgumentParser:
    doc = argparse.ArgumentParser(add_help=False)
    g = doc.add_argument_group("document")
    g.add_argument("--ver", type=int, help="document version (default: now in ms)")
    g.add_argument(
        "--expires",
        metavar="WHEN",
        help="30m, 2h, 1d, epoch ms or ISO-8601 with offset; default never",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for acks (default 30; push-config: the document's health window "
        "(sync.config_health_window_s, else 60) + 30)",
    )
    g.add_argument("--no-wait", action="store_true", help="publish and do not wait for acks")
    g.add_argument("--dry-run", action="store_true", help="print the signed document only")
    return doc


@dataclass(frozen=True)
class _Parents:
    """The shared flag groups, and the sub-parser factory."""

    sub: Any
    broker: argparse.ArgumentParser
    signing: argparse.ArgumentParser
    doc: argparse.ArgumentParser
    out: argparse.ArgumentParser

    def add(self, name: str, fn: Handler, help_: str, *parents: argparse.ArgumentParser) -> Any:
        """A sub-command with `--json` and the given flag groups."""
        p = self.sub.add_parser(name, help=help_, description=help_, parents=[*parents, self.out])
        p.set_defaults(func=_guarded(fn))
        return p


def _p_keygen(ps: _Parents) -> None:
    p = ps.add("keygen", _cmd_keygen, "make an Ed25519 signing key (file mode 0600)")
    p.add_argument("--out", required=True, metavar="PEM", help="where to write the private key")
    p.add_argument("--kid", required=True, help="key id, e.g. ops-2026a")
    p.add_argument("--force", action="store_true", help="replace an existing key file")


def _p_push_config(ps: _Parents) -> None:
    help_ = "sign and push a config document to a device"
    p = ps.add("push-config", _cmd_push_config, help_, ps.broker, ps.signing, ps.doc)
    pushcmd.add_targets(p)
    p.add_argument(
        "--file", required=True, help="config as TOML or .json (local-only keys are left out)"
    )


def _p_push_tasks(ps: _Parents) -> None:
    help_ = "sign and push a tasks document (the whole set)"
    p = ps.add("push-tasks", _cmd_push_tasks, help_, ps.broker, ps.signing, ps.doc)
    pushcmd.add_targets(p)
    p.add_argument("--file", required=True, help="tasks body JSON (see import-checkpoints)")


def _p_set_mode(ps: _Parents) -> None:
    help_ = "sign and push a work mode for a device or a zone"
    p = ps.add("set-mode", pushcmd.cmd_set_mode, help_, ps.broker, ps.signing, ps.doc)
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


def _p_cmd(ps: _Parents) -> None:
    help_ = "sign and send a one-off command"
    p = ps.add("cmd", pushcmd.cmd_cmd, help_, ps.broker, ps.signing, ps.doc)
    p.add_argument("device")
    p.add_argument("action", choices=CMD_ACTIONS)
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        help="command argument, e.g. snapshot --arg camera_id=cam-2 (unknown names refused)",
    )
    pushcmd.add_targets(p, positional=False)


def _p_retract(ps: _Parents) -> None:
    help_ = "remove a retained document from the broker (e.g. sent to a mistyped device id)"
    p = ps.add("retract", pushcmd.cmd_retract, help_, ps.broker)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("device", nargs="?")
    where.add_argument("--zone", help="the zone's mode document")
    p.add_argument("--typ", choices=("config", "tasks", "mode"), help="default: all three")


def _p_import(ps: _Parents) -> None:
    p = ps.add("import-checkpoints", _cmd_import, "CSV, GeoJSON or KML points -> a tasks body")
    p.add_argument(
        "file",
        help=f"CSV (comma/semicolon/tab) with columns {','.join(checkpoints.CSV_COLUMNS)}; "
        "GeoJSON or KML points",
    )
    p.add_argument(
        "--format",
        choices=("geojson", "csv", "kml"),
        help="default: from the file name, else the content",
    )
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


def _p_devices(ps: _Parents) -> None:
    help_ = "devices: state, problems, task progress, health (retained state + live traffic)"
    p = ps.add("devices", _cmd_devices, help_, ps.broker)
    p.add_argument(
        "--wait", type=float, default=3.0, help="at most this long for retained messages"
    )
    p.add_argument(
        "--listen",
        type=float,
        default=5.0,
        help="then listen this long to live traffic (status, births, acks); health and "
        "problems come from the retained `reported` at once",
    )


def _p_watch(ps: _Parents) -> None:
    help_ = "live table of events, acks and state; alarms and level 1-2 incidents stand out"
    p = ps.add("watch", _cmd_watch, help_, ps.broker)
    p.add_argument("--device", help="only this device")
    p.add_argument("--archive", metavar="DIR", help="append every message to DIR/grid-DAY.jsonl")
    p.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--status", action="store_true", help="show status messages too")
    p.add_argument("--rows", type=int, default=30, help="rows kept in the live table")
    p.add_argument(
        "--lang", choices=("zh", "en"), default=None, help="alarm texts: zh (default) or en"
    )


def _p_media(ps: _Parents) -> None:
    help_ = "save photos and snapshots as files with their metadata"
    p = ps.add("media", _cmd_media, help_, ps.broker)
    p.add_argument("--device", help="only this device")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/DEVICE/MEDIA_ID.jpg")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", metavar="DIR", help="a watch --archive directory")
    src.add_argument("--seconds", type=float, help="collect live for this long")


def _p_verify(ps: _Parents) -> None:
    help_ = "check a device's stream: dedupe, gaps, hash chain, media"
    p = ps.add("verify", _cmd_verify, help_, ps.broker)
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


_COMMANDS = (
    _p_keygen,
    _p_push_config,
    _p_push_tasks,
    _p_set_mode,
    _p_cmd,
    _p_retract,
    _p_import,
    _p_devices,
    _p_watch,
    _p_media,
    _p_verify,
)


def add_ops_parser(subparsers: Any) -> None:
    """Add `ops` and its sub-commands to the `edge-agent` sub-parsers."""
    ops = subparsers.add_parser(
        "ops",
        help="operations tool for the centre (sign, push, watch, verify)",
        description="Operations tool for the staff at the centre: keys, signed documents "
        "(config, tasks, mode, cmd), device list, live watch and stream verification. "
        "Documents are signed on this machine; the private key never leaves it. Without a "
        "terminal every command prints plain lines (one per message); --json prints JSON "
        "lines; warnings and logs go to stderr.",
    )
    sub = ops.add_subparsers(dest="ops_command", required=True, metavar="COMMAND")
    ps = _Parents(sub, broker_flags(), signing_flags(), _doc_flags(), output.flags())
    for define in _COMMANDS:
        define(ps)


def main(argv: Sequence[str] | None = None) -> int:
    """`edge-agent ops ARGS` as a function: `argv` is what follows `ops`."""
    parser = argparse.ArgumentParser(prog="edge-agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_ops_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ops", *(sys.argv[1:] if argv is None else argv)])
    if args.verbose:
        # Logs go to stderr: stdout is the command's result (a pipe, a script, --json).
        logging.basicConfig(
            level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

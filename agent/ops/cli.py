"""`edge-agent ops`: the parser, one function per command; handlers in agent/ops/handlers.py
(and agent/ops/pushcmd.py for the pushes)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.documents.appliers import CMD_ACTIONS
from agent.ops import checkpoints, documents, importcmd, output, pushcmd
from agent.ops.alerts import service as alerts_service
from agent.ops.archive import cli as archive_cli
from agent.ops.handlers import (
    Handler,
    cmd_devices,
    cmd_import,
    cmd_keygen,
    cmd_media,
    cmd_push_config,
    cmd_push_tasks,
    cmd_verify,
    cmd_watch,
    guarded,
)
from agent.ops.mqtt import broker_flags, signing_flags
from agent.ops.report import cmd as report_cmd


# ----- parser: one function per command ----------------------------------------------------
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
        p.set_defaults(func=guarded(fn))
        return p


def _p_keygen(ps: _Parents) -> None:
    p = ps.add("keygen", cmd_keygen, "make an Ed25519 signing key (file mode 0600)")
    p.add_argument("--out", required=True, metavar="PEM", help="where to write the private key")
    p.add_argument("--kid", required=True, help="key id, e.g. ops-2026a")
    p.add_argument("--force", action="store_true", help="replace an existing key file")


def _p_push_config(ps: _Parents) -> None:
    help_ = "sign and push a config document to a device"
    p = ps.add("push-config", cmd_push_config, help_, ps.broker, ps.signing, ps.doc)
    pushcmd.add_targets(p)
    p.add_argument(
        "--file", required=True, help="config as TOML or .json (local-only keys are left out)"
    )


def _p_push_tasks(ps: _Parents) -> None:
    help_ = "sign and push a tasks document (the whole set)"
    p = ps.add("push-tasks", cmd_push_tasks, help_, ps.broker, ps.signing, ps.doc)
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


def _p_retract(ps: _Parents) -> None:
    help_ = "remove a retained document from the broker (e.g. sent to a mistyped device id)"
    p = ps.add("retract", pushcmd.cmd_retract, help_, ps.broker)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("device", nargs="?")
    where.add_argument("--zone", help="the zone's mode document")
    p.add_argument("--typ", choices=("config", "tasks", "mode"), help="default: all three")


def _p_import(ps: _Parents) -> None:
    help_ = "CSV, GeoJSON, KML or KMZ points -> a tasks body"
    p = ps.add("import-checkpoints", cmd_import, help_)
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


def _p_devices(ps: _Parents) -> None:
    help_ = "devices: state, problems, task progress, health (retained state + live traffic)"
    p = ps.add("devices", cmd_devices, help_, ps.broker)
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
    p = ps.add("watch", cmd_watch, help_, ps.broker)
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
    p = ps.add("media", cmd_media, help_, ps.broker)
    p.add_argument("--device", help="only this device")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/DEVICE/MEDIA_ID.jpg")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", metavar="DIR", help="a watch --archive directory")
    src.add_argument("--seconds", type=float, help="collect live for this long")


def _p_verify(ps: _Parents) -> None:
    help_ = "check a device's stream: dedupe, gaps, hash chain, media"
    p = ps.add("verify", cmd_verify, help_, ps.broker)
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
    report_cmd.register(sub, guarded)
    alerts_service.register(sub, guarded, ps.broker)
    # A service: it writes to its database and logs to stderr, so it takes no --json.
    what = "service: write every fleet message once into SQLite or PostgreSQL (docs/central.md)"
    p = sub.add_parser("archive", help=what, description=what, parents=[ps.broker])
    p.set_defaults(func=guarded(archive_cli.run))
    archive_cli.add_arguments(p)


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

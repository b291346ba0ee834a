"""`edge-agent config show|reset`: which config a device runs, and back to the local file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.config.mergepatch import lookup, removals, sources
from agent.config.model import Config, load
from agent.config.paths import expand
from agent.documents.remote_config import (
    ConfigStore,
    describe,
    file_data,
    local_fingerprint,
    remote_config,
)
from agent.errors import ConfigError


def _store(args: argparse.Namespace) -> tuple[Any, ConfigStore]:
    local = load(expand(args.config))
    return local, ConfigStore(local.device.state_dir)


def _show(args: argparse.Namespace) -> int:
    local, store = _store(args)
    applied, staged = store.applied(), store.pending()
    ver = int(applied["ver"]) if applied is not None else None
    print(f"{local.device.id} ({local.device.role}): {describe(args.config, ver, staged)}")
    body: dict[str, Any] | None = None
    if staged is not None:  # in its health window, the staged document is what runs
        body, ver = dict(staged.body), staged.ver
    elif applied is not None and applied.get("local_sha256") not in (
        None,
        local_fingerprint(local),
    ):
        print(
            "the local file changed after the remote config was applied: "
            "at the next start the local file wins"
        )
    elif applied is not None:
        body = dict(applied["body"])
    try:
        lines = provenance(local, body, ver)
    except ConfigError as exc:
        print(f"remote config ver {ver} no longer fits the local file ({exc}): the file runs")
        lines = provenance(local, None, None)
    for line in lines:
        print(line)
    return 0


def provenance(local: Config, body: dict[str, Any] | None, ver: int | None) -> list[str]:
    """`key = value  (file | remote ver N | default)` for every value the agent runs with,
    then the file's keys the remote document removed."""
    effective = remote_config(local, body) if body is not None else local
    file = file_data(local)
    rows = sources(effective.model_dump(mode="json"), file, body)
    label = {"file": "file", "remote": f"remote ver {ver}", "default": "default"}
    width = min(56, max((len(r.key) + len(json.dumps(r.value)) for r in rows), default=0) + 3)
    out = [f"  {f'{r.key} = {json.dumps(r.value)}':<{width}} ({label[r.origin]})" for r in rows]
    gone = [p for p in removals(body or {}) if lookup(file, p)[0]]
    out += [f"  {'.'.join(p)}: set in the file, removed by remote ver {ver}" for p in gone]
    return out


def _reset(args: argparse.Namespace) -> int:
    local, store = _store(args)
    ver = store.reset()
    if ver is None:
        print(f"{local.device.id}: already running the local file {args.config} only")
        return 0
    print(
        f"{local.device.id}: remote config ver {ver} dropped; the local file {args.config} "
        "applies from the next start (restart the agent: systemctl restart edge-agent). "
        f"The retained document ver {ver} is not applied again; a newer push is."
    )
    return 0


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except ConfigError as exc:
            print(f"{args.config}: invalid config", file=sys.stderr)
            for key, reason in exc.problems:
                print(f"  {key}: {reason}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def add_config_parser(subparsers: Any) -> None:
    """Add `config show` and `config reset` to the `edge-agent` sub-parsers."""
    p = subparsers.add_parser(
        "config", help="which config runs (local file + remote), or reset to the local file"
    )
    sub = p.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    for name, fn, help_ in (
        ("show", _show, "which config runs, and where each value comes from (file/remote/default)"),
        ("reset", _reset, "drop the remote config: the local file alone applies after restart"),
    ):
        q = sub.add_parser(name, help=help_, description=help_)
        q.add_argument("--config", required=True, help="the agent's TOML config file")
        q.set_defaults(func=_guarded(fn))

"""The `edge-agent doctor` subcommand."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/edge-agent/agent.toml"


def add_doctor_parser(sub: Any) -> None:
    """Register `doctor` on the edge-agent subcommands."""
    p = sub.add_parser(
        "doctor",
        help="check this device on site: config, ports, cameras, broker, certificates, clock, disk",
    )
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"TOML config (default {DEFAULT_CONFIG})"
    )
    p.add_argument("--lang", choices=("zh", "en"), default=None, help="zh (default) or en; or LANG")
    p.add_argument(
        "--user",
        default=None,
        help="the service user the fixes name (default: User= of the installed edge-agent unit)",
    )
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from agent.config import model as config
    from agent.doctor import run
    from agent.errors import ConfigError
    from agent.lang import pick

    lang = pick(args.lang, os.environ)
    path = Path(args.config)
    try:
        cfg = config.load(path)
    except ConfigError as exc:
        return run.report(run.config_problems(path, exc.problems), lang, sys.stdout)
    findings = asyncio.run(run.diagnose(cfg, path, user=args.user))
    return run.report(findings, lang, sys.stdout)

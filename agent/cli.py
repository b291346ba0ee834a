"""The `edge-agent` command: run, check-config, demo and the operations tool."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent import __version__
from agent.config.paths import expand
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config.model import Config


def _setup_logging(verbose: bool) -> None:
    # stdout, no timestamps of our own: journald adds them.
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _load(path: str) -> Config | None:
    from agent.config import model as config

    try:
        return config.load(expand(path))
    except ConfigError as exc:
        _print_problems(path, exc)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config.isolated import load_in_child
    from agent.runtime.memory import defer_imports

    defer_imports()  # before the libraries that import them (issue 22)
    from agent.runtime import run as supervisor

    try:
        cfg = load_in_child(expand(args.config))  # no validator built in this process
    except ConfigError as exc:
        _print_problems(args.config, exc)
        return 2
    from agent.runtime.private import lock_down

    lock_down(cfg.device.state_dir)  # owner-only state files from here on
    if args.log_json or cfg.logging.json_lines:
        from agent.logs import use_json_logs

        use_json_logs(cfg.device.id)
    return asyncio.run(supervisor.run(cfg, args.config))


def _print_problems(path: str, exc: ConfigError) -> None:
    print(f"{path}: invalid config", file=sys.stderr)
    for key, reason in exc.problems:
        print(f"  {key}: {reason}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 ready; 1 invalid (or trusting the example key); 3 valid but files missing here."""
    from agent.commands import check_config as checkconfig

    try:
        cfg = checkconfig.check_file(expand(args.file))
    except ConfigError as exc:
        _print_problems(args.file, exc)
        return 1
    if problems := checkconfig.example_key_problems(cfg):
        _print_problems(args.file, ConfigError(problems))
    missing: list[tuple[str, str]] = []
    if not args.no_files:  # TLS files, credentials, passwords must exist and be readable
        from agent.doctor.files import unreadable

        missing = unreadable(cfg)
    if missing:
        # An example config or an image being built: valid, only not installed on this machine.
        print(
            f"{args.file}: valid ({cfg.device.role} {cfg.device.id}), but these files are not "
            "on this machine (`edge-agent provision` puts them in place on a device; "
            "--no-files checks the config alone):",
            file=sys.stderr,
        )
        for key, reason in missing:
            print(f"  {key}: {reason}", file=sys.stderr)
    if problems:
        return 1
    if missing:
        return 3
    print(f"{args.file}: ok ({cfg.device.role} {cfg.device.id})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run as demo

    return asyncio.run(demo.main(seconds=args.seconds, workdir=args.workdir, verbose=args.verbose))


def _cmd_companion_code(args: argparse.Namespace) -> int:
    from agent.patrol.companion.files import device_code

    cfg = _load(args.config)
    if cfg is None:
        return 2
    print(device_code(cfg.device.state_dir, cfg.companion.code_digits))
    return 0


def build_parser(run_only: bool = False) -> argparse.ArgumentParser:
    """The argument parser of `edge-agent`; with `run_only`, the `run` command alone.

    The other commands' modules are imported here, at function level on purpose: the
    operations tool alone (rich, the KML reader, ...) is about 7 MB resident that the
    long-running `run` process never uses (issue 22: an idle patrol device under 40 MB).
    """
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the agent")
    p.add_argument("--config", required=True, help="TOML config file")
    p.add_argument("--log-json", action="store_true", help="JSON log lines (for log shippers)")
    p.set_defaults(func=_cmd_run)
    if run_only:
        return parser
    from agent.commands.config_cmd import add_config_parser
    from agent.commands.provision import add_provision_parser
    from agent.doctor.cli import add_doctor_parser
    from agent.ops.cli import add_ops_parser
    from agent.vision.cli import add_detect_parser, add_models_parser

    p = sub.add_parser(
        "check-config",
        help="validate a config file: exit 1 invalid, 3 valid but its files are not here",
    )
    p.add_argument("file")
    p.add_argument("--no-files", action="store_true", help="skip the TLS/credential file checks")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("demo", help="run against a local broker with simulated devices")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--workdir", default=None, help="where to keep state (default: a temp dir)")
    p.add_argument("--verbose", action="store_true", help="raw event bodies and agent logs")
    p.set_defaults(func=_cmd_demo)
    add_config_parser(sub)
    p = sub.add_parser("companion-code", help="print the companion page's pairing code")
    p.add_argument("--config", required=True, help="TOML config file")
    p.set_defaults(func=_cmd_companion_code)
    add_ops_parser(sub)
    add_doctor_parser(sub)
    add_provision_parser(sub)
    add_models_parser(sub)
    add_detect_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The global options take no value, so the first word that is not one names the command.
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(run_only=command == "run").parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

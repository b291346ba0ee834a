"""How every ops command writes, so scripts and pipes can rely on it.

- In a terminal: tables, live views and colour on stdout.
- When stdout is not a terminal: plain lines, one per message, never wrapped or cut at a
  width (a pipe has none), no colour codes.
- With `--json`: one JSON object per line on stdout (`{"event": ..., fields..., "text": ...}`),
  the same facts a person reads in `text`, nothing else on stdout.
- Warnings, progress notes and logs always go to stderr, so stdout stays the command's result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text


@dataclass(frozen=True, slots=True)
class Output:
    """stdout (`out`) and stderr (`err`) consoles, and whether stdout takes JSON lines."""

    out: Console
    err: Console
    json: bool = False

    @property
    def terminal(self) -> bool:
        """True for a person at a terminal (tables and live views), False for pipes and --json."""
        return self.out.is_terminal and not self.json

    def say(self, text: str, event: str = "info", markup: bool = False, **fields: Any) -> None:
        """One message: `text` for people, or `{"event", **fields, "text"}` as a JSON line."""
        if self.json:
            plain = Text.from_markup(text).plain if markup else text
            self.record({"event": event, **fields, "text": plain})
            return
        self.out.print(text, markup=markup, highlight=False, soft_wrap=True)

    def record(self, data: Mapping[str, Any]) -> None:
        """One JSON line on stdout (only with --json; plain text callers use `say`)."""
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        self.out.file.write(line + "\n")
        self.out.file.flush()

    def show(self, renderable: RenderableType) -> None:
        """A table or other rich renderable, for a terminal."""
        self.out.print(renderable)

    def note(self, text: str) -> None:
        """Progress or a remark for people: stderr, so stdout stays the result."""
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """`warning: text` on stderr (`text` is shown as is, never read as markup)."""
        self.err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        """`error: text` on stderr."""
        self.err.print(f"[red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def make(
    args: argparse.Namespace | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> Output:
    """The output for a command: `--json` from `args` when it has one."""
    out_file = stdout if stdout is not None else sys.stdout
    err_file = stderr if stderr is not None else sys.stderr
    # soft_wrap: a line is never broken at a width; a pipe or a log file has none.
    out = Console(file=out_file, highlight=False, soft_wrap=not out_file.isatty())
    err = Console(file=err_file, stderr=stderr is None, highlight=False, soft_wrap=True)
    return Output(out, err, json=bool(getattr(args, "json", False)))


def flags() -> argparse.ArgumentParser:
    """`--json`, shared by every ops command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--json", action="store_true", help="JSON lines on stdout (one object per message)"
    )
    return p

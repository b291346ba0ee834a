"""Paths as people write them: `~` and `~user` expanded wherever a path is read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator


def expand(path: str | Path) -> Path:
    """`path` with a leading `~` or `~user` expanded (unchanged when there is none)."""
    return Path(path).expanduser()


# A config field holding a path: `~/.grid/ops.pem` means the reader's home, never a folder "~".
UserPath = Annotated[Path, AfterValidator(expand)]

"""Keep the agent's state private: owner-only files, a state dir closed to other users."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

# Group may traverse (to reach the local API socket by its path, mode 0660) but not list.
STATE_DIR_MODE = 0o710


def lock_down(state_dir: Path) -> None:
    """Set the process umask to 077 and strip group/other access from existing state files.

    Called once by `edge-agent run` before anything is opened: the outbox, state files, photos
    and the journal hold positions and names, so no other local user may read them.
    """
    os.umask(0o077)
    state_dir.mkdir(parents=True, exist_ok=True)
    changed = 0
    for path, mode in [(state_dir, STATE_DIR_MODE), *_open_to_others(state_dir)]:
        try:
            os.chmod(path, mode)
            changed += path != state_dir
        except OSError as exc:  # not ours (e.g. made by root): say so, run anyway
            log.warning("cannot make %s private: %s", path, exc.strerror)
    if changed:
        log.info("made %d state files private (older versions left them readable)", changed)


def _open_to_others(state_dir: Path) -> list[tuple[Path, int]]:
    """Files and dirs below `state_dir` with group/other bits, and their owner-only mode."""
    out = []
    for path in state_dir.rglob("*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) and st.st_mode & 0o077:
            out.append((path, stat.S_IMODE(st.st_mode) & 0o700))
    return out

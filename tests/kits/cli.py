"""The `edge-agent` command as a person runs it: a subprocess from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kits.paths import REPO


def edge_agent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`edge-agent ARGS` from this checkout, with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )

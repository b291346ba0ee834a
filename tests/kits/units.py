"""systemd unit files for tests: `systemd-analyze verify` on a copy whose ExecStart= exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def verify_unit(unit: Path, exec_path: str, tmp_path: Path) -> None:
    """Verify `unit` with `exec_path` pointed at `true` (verify wants ExecStart= to exist):
    no error and no warning that names the unit. Skips without systemd-analyze."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(exec_path, shutil.which("true") or ""))
    out = subprocess.run([exe, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert unit.name not in out.stderr, out.stderr

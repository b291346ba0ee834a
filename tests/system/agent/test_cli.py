"""The edge-agent command: help, check-config on the shipped examples and on broken files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kits.paths import REPO

ROOT = REPO


def edge_agent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`edge-agent ARGS` from this checkout, with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_help_lists_the_commands() -> None:
    out = edge_agent("--help")
    assert out.returncode == 0
    for cmd in ("run", "check-config", "demo"):
        assert cmd in out.stdout


def test_shipped_examples_are_valid() -> None:
    for example in sorted((ROOT / "configs").glob("*.toml")):
        out = edge_agent("check-config", "--no-files", str(example))
        assert out.returncode == 0, out.stderr


def test_broken_config_names_key_paths_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[device]\nid = "PD 1"\nrole = "patrol"\ncolor = 1\n[broker]\nport = 0\n')
    out = edge_agent("check-config", str(bad))
    assert out.returncode == 1
    assert "device.id" in out.stderr and "device.color: unknown key" in out.stderr
    assert "broker.port" in out.stderr
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"\xff\xfe[[[")
    out = edge_agent("check-config", str(garbage))
    assert out.returncode == 1 and "not valid TOML" in out.stderr
    out = edge_agent("run", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "cannot read" in out.stderr

"""The edge-agent command: help, check-config on the shipped examples and on broken files."""

from __future__ import annotations

from pathlib import Path

from agent.commands.check_config import EXAMPLE_KEY_WHY
from tests.kits.cli import edge_agent
from tests.kits.paths import REPO

ROOT = REPO
EXAMPLE = "o7zB1YpXvG8bK0cRj7oV1m3yOqk9Xx6iW2c5r1sTnEw"  # the shipped configs' example ops key


def test_help_lists_the_commands() -> None:
    out = edge_agent("--help")
    assert out.returncode == 0
    for cmd in ("run", "check-config", "demo"):
        assert cmd in out.stdout


def test_shipped_examples_are_valid_but_not_ready(tmp_path: Path) -> None:
    for example in sorted((ROOT / "configs").glob("*.toml")):
        # Valid as a config; the one error is the example ops key it trusts.
        out = edge_agent("check-config", "--no-files", str(example))
        assert out.returncode == 1, out.stderr
        problems = [ln for ln in out.stderr.splitlines() if ln.startswith("  ")]
        assert problems == [f"  trust.ops_keys[ops-2026a]: {EXAMPLE_KEY_WHY}"], out.stderr
        # With a real key: ready, but for the files a provisioned device has (exit 3).
        mine = tmp_path / example.name
        mine.write_text(
            example.read_text().replace(EXAMPLE, "vpigkJU_oVveaPChpTXFzIVert8rn37vHPJChThi10w")
        )
        assert edge_agent("check-config", "--no-files", str(mine)).returncode == 0
        out = edge_agent("check-config", str(mine))
        assert out.returncode == 3, out.stderr
        assert "valid (" in out.stderr and "these files are not on this machine" in out.stderr
        assert "invalid" not in out.stderr and "broker.ca_file" in out.stderr


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

"""Operator traps seen in the field, on the ops tool's side (each reproduces one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import parse
from agent.ops.mqtt import load_ops_config


def test_tilde_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Trap: `~/` in ops.toml (and in the agent's config) was taken literally.
    monkeypatch.setenv("HOME", str(tmp_path))
    ops = tmp_path / "ops.toml"
    ops.write_text(
        '[broker]\ntls = true\nca_file = "~/ca.pem"\npassword_file = "~/.grid/pw"\n'
        'username = "ops-li"\n[signing]\nkey_file = "~/.grid/ops.pem"\nkid = "ops-2026a"\n'
    )
    cfg = load_ops_config(ops)
    assert cfg.signing.key_file == tmp_path / ".grid" / "ops.pem"
    assert cfg.broker.ca_file == tmp_path / "ca.pem"
    assert cfg.broker.password_file == tmp_path / ".grid" / "pw"
    agent = parse({"device": {"id": "pd-1", "role": "patrol", "state_dir": "~/state"}})
    assert agent.device.state_dir == tmp_path / "state"

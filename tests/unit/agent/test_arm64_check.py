"""scripts/arm64-check's pieces, quickly (the check itself takes minutes: docs/hardware.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.kits.paths import REPO

ROOT = REPO
SCRIPT = ROOT / "scripts" / "arm64-check"


def test_help_names_the_options_and_builds_nothing() -> None:
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for option in ("--cache", "--rebuild", "--seconds", "--build-only"):
        assert option in proc.stdout
    bad = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr


def test_script_parses_and_never_registers_binfmt() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    # The kernel's binfmt table may be shared: the interpreter is always run through qemu.
    assert "binfmt_misc/register" not in text and "update-binfmts" not in text
    assert 'qemu" -L "$root"' in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_is_clean() -> None:
    subprocess.run(["shellcheck", str(SCRIPT)], check=True)


def test_run_half_has_a_help() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "arm64_run.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "--native" in proc.stdout and "--root" in proc.stdout

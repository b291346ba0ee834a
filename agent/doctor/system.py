"""Disk space, state-dir permissions for the service user, GPIO pin library."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.doctor.finding import Finding

SERVICE_USER = "edge-agent"
MIN_FREE_MB = 64  # below this the outbox cannot even hold a few photos


def disk_verdict(free_mb: int | None, budget_mb: int) -> Finding:
    """Fail under MIN_FREE_MB, warn under the outbox budget."""
    if free_mb is None:
        return Finding("disk", "fail", "disk_unknown")
    params = {"free_mb": free_mb, "budget_mb": budget_mb}
    if free_mb < MIN_FREE_MB:
        return Finding("disk", "fail", "disk_full", params)
    if free_mb < budget_mb:
        return Finding("disk", "warn", "disk_low", params)
    return Finding("disk", "pass", "disk_ok", params)


@dataclass(frozen=True, slots=True)
class DirFacts:
    """What the state-dir check looks at (probed by dir_facts)."""

    path: str
    exists: bool
    is_dir: bool = False
    owner: int = -1
    group: int = -1
    mode: int = 0
    write_error: str | None = None  # a real write attempt by this process failed (read-only fs)


def user_may_write(facts: DirFacts, uid: int, gids: frozenset[int]) -> bool:
    """Whether the mode bits let `uid` (with `gids`) create files in the dir (no root bypass)."""
    if facts.owner == uid:
        return bool(facts.mode & stat.S_IWUSR and facts.mode & stat.S_IXUSR)
    if facts.group in gids:
        return bool(facts.mode & stat.S_IWGRP and facts.mode & stat.S_IXGRP)
    return bool(facts.mode & stat.S_IWOTH and facts.mode & stat.S_IXOTH)


def state_dir_verdict(facts: DirFacts, user: str, uid: int, gids: frozenset[int]) -> Finding:
    """The state dir exists, is a directory, and `user` can write it."""
    params = {"path": facts.path, "user": user}
    if not facts.exists:
        return Finding("state_dir", "fail", "state_missing", params)
    if not facts.is_dir:
        return Finding("state_dir", "fail", "state_not_dir", params)
    if facts.write_error is not None:
        return Finding("state_dir", "fail", "state_readonly", {**params, "why": facts.write_error})
    if not user_may_write(facts, uid, gids):
        return Finding(
            "state_dir", "fail", "state_not_writable", {**params, "mode": oct(facts.mode)}
        )
    return Finding("state_dir", "pass", "state_ok", params)


def dir_facts(path: Path) -> DirFacts:
    """Stat the dir and try a real write (catches a read-only file system)."""
    try:
        st = path.stat()
    except OSError:
        return DirFacts(str(path), exists=False)
    if not stat.S_ISDIR(st.st_mode):
        return DirFacts(str(path), exists=True)
    error = None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-") as fh:
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        error = exc.strerror or type(exc).__name__
    return DirFacts(str(path), True, True, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), error)


UNIT_FILES = (
    Path("/etc/systemd/system/edge-agent.service"),
    Path("/usr/lib/systemd/system/edge-agent.service"),
    Path("/lib/systemd/system/edge-agent.service"),
)


def unit_user(texts: list[str]) -> str | None:
    """The last `User=` of a unit and its drop-ins, in the order systemd reads them."""
    user = None
    for text in texts:
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() == "User" and value.strip():
                user = value.strip()
    return user


def configured_user(units: tuple[Path, ...] = UNIT_FILES) -> str:
    """The service user of the installed edge-agent unit (drop-ins included), else the default."""
    for unit in units:
        if not unit.is_file():
            continue
        drop_ins = sorted(unit.with_name(unit.name + ".d").glob("*.conf"))
        texts = []
        for f in (unit, *drop_ins):
            try:
                texts.append(f.read_text())
            except OSError:
                continue
        return unit_user(texts) or SERVICE_USER
    return SERVICE_USER


def service_identity(name: str) -> tuple[str, int, frozenset[int]]:
    """The service user's name, uid and groups; this process's own when that user is absent."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        uid = os.getuid()
        return pwd.getpwuid(uid).pw_name, uid, frozenset(os.getgroups()) | {os.getgid()}
    gids = {g.gr_gid for g in grp.getgrall() if name in g.gr_mem} | {pw.pw_gid}
    return name, pw.pw_uid, frozenset(gids)


def state_dir_finding(cfg: Any, user: str = SERVICE_USER) -> Finding:
    """The state-dir check for the configured dir and the service user."""
    name, uid, gids = service_identity(user)
    return state_dir_verdict(dir_facts(cfg.device.state_dir), name, uid, gids)


def disk_finding(cfg: Any) -> Finding:
    """The disk check on the file system of the state dir (or its parent while it is missing)."""
    from firmware_bridge.board import disk_free_mb

    path = cfg.device.state_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    return disk_verdict(disk_free_mb(path), cfg.sync.outbox_budget_bytes // (1024 * 1024))


def gpio_finding(cfg: Any) -> Finding:
    """With [buttons] configured: can gpiozero load a pin library here?"""
    if cfg.buttons is None:
        return Finding("gpio", "skip", "gpio_unused")
    try:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory
    except ImportError as exc:
        return Finding("gpio", "fail", "gpio_no_factory", {"why": str(exc)})
    with warnings.catch_warnings(record=True) as tried:
        warnings.simplefilter("always")
        try:
            factory = Device._default_pin_factory()
        except BadPinFactory:
            # gpiozero warns once per library it tried: those reasons are the diagnosis.
            why = "; ".join(str(w.message) for w in tried) or "no pin library"
            return Finding("gpio", "fail", "gpio_no_factory", {"why": why})
    try:
        name = type(factory).__name__
    finally:
        factory.close()
    return Finding("gpio", "pass", "gpio_ok", {"factory": name})

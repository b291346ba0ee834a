"""The files a config names (TLS, password): present and readable; certificates in date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from agent.doctor.finding import Finding

WARN_DAYS = 30  # a certificate expiring this soon gets a warning: renewal takes a visit


def named_files(cfg: Any) -> list[tuple[str, Path]]:
    """(config key, path) of every file the config names: broker TLS and password, camera
    event logins, the alarm receiver's token and TLS files (relative paths are left out:
    they resolve against the config's folder at start-up)."""
    b = cfg.broker
    keys = ("ca_file", "cert_file", "key_file", "password_file")
    out = [(f"broker.{k}", getattr(b, k)) for k in keys if getattr(b, k) is not None]
    for cam in cfg.cameras:
        if cam.events is not None and cam.events.password_file is not None:
            out.append((f"cameras[{cam.id}].events.password_file", cam.events.password_file))
    if cfg.alarm_http is not None:
        for k in ("token_file", "cert_file", "key_file"):
            if getattr(cfg.alarm_http, k) is not None:
                out.append((f"alarm_http.{k}", getattr(cfg.alarm_http, k)))
    return [(key, path) for key, path in out if key.startswith("broker.") or path.is_absolute()]


def read_problem(path: Path) -> str | None:
    """Why `path` cannot be read by this process (None when it can)."""
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def unreadable(cfg: Any) -> list[tuple[str, str]]:
    """(key path, reason) for every named file that is missing or unreadable: check-config's
    own error list."""
    out = []
    for key, path in named_files(cfg):
        problem = read_problem(path)
        if problem is not None:
            out.append((key, f"{path}: {problem}"))
    return out


def file_findings(cfg: Any) -> list[Finding]:
    """A finding per named file."""
    out = []
    for key, path in named_files(cfg):
        problem = read_problem(path)
        if problem is None:
            out.append(Finding(key, "pass", "file_ok", {"path": str(path)}))
        else:
            out.append(Finding(key, "fail", "file_unreadable", {"path": str(path), "why": problem}))
    return out


def expiry_verdict(
    check: str, not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime
) -> Finding:
    """Expired, not yet valid (a clock far behind), expiring soon, or fine."""
    days = (not_after - now).days
    params = {"until": not_after.date().isoformat(), "days": days}
    if now >= not_after:
        return Finding(check, "fail", "cert_expired", params)
    if now < not_before:
        return Finding(check, "fail", "cert_not_yet", {"since": not_before.isoformat()})
    if days < WARN_DAYS:
        return Finding(check, "warn", "cert_expiring", params)
    return Finding(check, "pass", "cert_ok", params)


def cert_findings(cfg: Any, now: dt.datetime) -> list[Finding]:
    """Expiry of the CA and the client certificate (unreadable files are file_findings' job)."""
    from cryptography import x509

    out = []
    for key, path in named_files(cfg):
        if key not in ("broker.ca_file", "broker.cert_file") or read_problem(path) is not None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            out.append(Finding(key, "fail", "cert_bad", {"path": str(path)}))
            continue
        out.append(expiry_verdict(key, cert.not_valid_before_utc, cert.not_valid_after_utc, now))
    return out

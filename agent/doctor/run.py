"""Runs every doctor check for a config and prints the table; the exit code says if any failed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from agent.config.model import example_keys
from agent.doctor import brokercheck, camcheck, files, modelcheck, serialcheck, system, timecheck
from agent.doctor.finding import Finding, worst
from agent.doctor.holder import Holder, holders
from agent.doctor.texts import CHECKS, HEADERS, LEVELS, SUMMARY, render
from agent.lang import Lang


async def diagnose(
    cfg: Any,
    path: Path,
    *,
    synced: Callable[[], bool | None] = timecheck.ntp_synced,
    now: dt.datetime | None = None,
    user: str | None = None,
    listen_s: float = serialcheck.LISTEN_S,
) -> list[Finding]:
    """Every check of `cfg` (loaded from `path`); probes that wait run side by side in threads.

    `user` is the service user the fixes name (default: the installed unit's `User=`). Each
    finding's params carry `user` and `item` (the config item or part it is about).
    """
    service_user = user or system.configured_user()
    params = {"path": str(path), "role": cfg.device.role, "dev": cfg.device.id}
    out = [Finding("config", "pass", "config_ok", params), trust_finding(cfg)]
    out += files.file_findings(cfg)
    out += files.cert_findings(cfg, now or dt.datetime.now(dt.UTC))
    probes: list[Any] = [asyncio.to_thread(brokercheck.probe_broker, cfg)]
    ports = [(name, part) for name in ("gps", "nfc") if (part := getattr(cfg, name)) is not None]
    probe = {"gps": serialcheck.probe_gps, "nfc": serialcheck.probe_pn532}
    probes += [asyncio.to_thread(probe[n], p.port, p.baud, listen_s) for n, p in ports]
    cams = camcheck.cameras_of(cfg)
    probes += [asyncio.to_thread(camcheck.probe_camera, cam) for cam in cams]
    results = list(await asyncio.gather(*probes))
    b = cfg.broker
    out += brokercheck.broker_verdict(f"{b.host}:{b.port}", b.tls, results.pop(0))
    serial = await _serial_findings(cfg, ports, [results.pop(0) for _ in ports])
    out += serial
    for cam, facts in zip(cams, results, strict=True):
        out.append(camcheck.camera_verdict(f"camera {cam.id}", cam.source, facts))
    out += modelcheck.model_findings(cfg, path)
    gps = dict(zip([n for n, _ in ports], serial, strict=True)).get("gps")
    gps_time = bool(gps.params.get("time")) if gps is not None else None
    held = gps is not None and gps.key == "port_agent"
    out.append(timecheck.clock_finding(gps_time, cfg.gps is not None, synced, held))
    out.append(system.disk_finding(cfg))
    out.append(system.state_dir_finding(cfg, service_user))
    out.append(system.gpio_finding(cfg))
    return [Finding(f.check, f.level, f.key, _named(f, service_user)) for f in out]


def _named(f: Finding, user: str) -> dict[str, Any]:
    """A finding's params plus the service user and the item its fix refers to."""
    item = {"gps": "[gps] port", "nfc": "[nfc] port"}.get(f.check, f.check)
    return {"user": user, "item": item, **f.params}


async def _serial_findings(
    cfg: Any, ports: list[tuple[str, Any]], facts: list[serialcheck.PortFacts]
) -> list[Finding]:
    """The GPS and NFC verdicts; a port that is locked is traced to the process holding it."""
    out = []
    verdict = {"gps": serialcheck.gps_verdict, "nfc": serialcheck.nfc_verdict}
    for (name, part), f in zip(ports, facts, strict=True):
        held_by: list[Holder] = []
        if serialcheck.busy(f):
            held_by = await asyncio.to_thread(holders, part.port, cfg.device.state_dir)
        found = verdict[name](name, part.port, part.baud, f, held_by)
        if name == "gps" and f.gps_time:
            found = Finding(found.check, found.level, found.key, {**found.params, "time": True})
        out.append(found)
    return out


def trust_finding(cfg: Any) -> Finding:
    """The ops keys: the shipped example key must not be trusted."""
    kids = example_keys(cfg.trust.ops_keys)
    if kids:
        return Finding("trust", "fail", "example_key", {"kids": ", ".join(kids)})
    return Finding("trust", "pass", "trust_ok", {"n": len(cfg.trust.ops_keys)})


def config_problems(path: Path, problems: list[tuple[str, str]]) -> list[Finding]:
    """A failed config load as findings (the other checks need a config: none run)."""
    return [
        Finding("config", "fail", "config_bad", {"key": k, "why": why, "path": str(path)})
        for k, why in problems
    ]


def report(findings: list[Finding], lang: Lang, out: TextIO) -> int:
    """Print the table and a summary line; 1 when anything failed, else 0."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    style = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    table = Table(*HEADERS[lang], show_lines=False)
    for f in findings:
        msg, fix = render(f.key, lang, dict(f.params))
        label = CHECKS[lang].get(f.check, f.check)
        # Text, not markup: messages contain "[gps]"-like brackets.
        table.add_row(label, Text(LEVELS[lang][f.level], style[f.level]), Text(msg), Text(fix))
    console = Console(file=out, width=160)
    console.print(table)
    level = worst(findings)
    n = sum(1 for f in findings if f.level == level)
    console.print(SUMMARY[lang].get(level, SUMMARY[lang]["pass"]).format(n=n))
    return 1 if level == "fail" else 0

"""Runs every doctor check for a config and prints the table; the exit code says if any failed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from agent.doctor import brokercheck, camcheck, files, modelcheck, serialcheck, system, timecheck
from agent.doctor.finding import Finding, worst
from agent.doctor.texts import CHECKS, HEADERS, LEVELS, SUMMARY, render
from agent.lang import Lang


async def diagnose(
    cfg: Any,
    path: Path,
    *,
    synced: Callable[[], bool | None] = timecheck.ntp_synced,
    now: dt.datetime | None = None,
    user: str = system.SERVICE_USER,
    listen_s: float = serialcheck.LISTEN_S,
) -> list[Finding]:
    """Every check of `cfg` (loaded from `path`); probes that wait run side by side in threads."""
    params = {"path": str(path), "role": cfg.device.role, "dev": cfg.device.id}
    out = [Finding("config", "pass", "config_ok", params)]
    out += files.file_findings(cfg)
    out += files.cert_findings(cfg, now or dt.datetime.now(dt.UTC))
    probes: list[Any] = [asyncio.to_thread(brokercheck.probe_broker, cfg)]
    if cfg.gps is not None:
        probes.append(
            asyncio.to_thread(serialcheck.probe_gps, cfg.gps.port, cfg.gps.baud, listen_s)
        )
    if cfg.nfc is not None:
        probes.append(
            asyncio.to_thread(serialcheck.probe_pn532, cfg.nfc.port, cfg.nfc.baud, listen_s)
        )
    cams = camcheck.cameras_of(cfg)
    probes += [asyncio.to_thread(camcheck.probe_camera, cam) for cam in cams]
    results = list(await asyncio.gather(*probes))
    b = cfg.broker
    out += brokercheck.broker_verdict(f"{b.host}:{b.port}", b.tls, results.pop(0))
    gps_time = None
    if cfg.gps is not None:
        gps = results.pop(0)
        out.append(serialcheck.gps_verdict("gps", cfg.gps.port, cfg.gps.baud, gps))
        gps_time = gps.gps_time
    if cfg.nfc is not None:
        out.append(serialcheck.nfc_verdict("nfc", cfg.nfc.port, cfg.nfc.baud, results.pop(0)))
    for cam, facts in zip(cams, results, strict=True):
        out.append(camcheck.camera_verdict(f"camera {cam.id}", cam.source, facts))
    out += modelcheck.model_findings(cfg, path)
    out.append(timecheck.clock_finding(gps_time, cfg.gps is not None, synced))
    out.append(system.disk_finding(cfg))
    out.append(system.state_dir_finding(cfg, user))
    out.append(system.gpio_finding(cfg))
    return out


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

"""The person model: present and intact for every camera that uses it, else `degraded`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.doctor.finding import Finding


def model_findings(cfg: Any, path: Path) -> list[Finding]:
    """One finding per models folder the gateway's SSD cameras use (none without such cameras)."""
    from agent.vision import models  # no OpenCV: hashes and the graph reader only

    roots: dict[Path, list[str]] = {}
    for cam in cfg.cameras:
        det = cam.detector
        if det.kind != "ssd":
            continue
        root = det.model_dir
        if root is None:
            root = models.default_dir()
        elif not root.is_absolute():
            root = path.parent / root
        roots.setdefault(root, []).append(cam.id)
    out = []
    for root, cams in roots.items():
        state = models.check(root)
        params = {"path": state.path, "why": state.problem, "cams": ", ".join(cams)}
        if state.verified:
            out.append(Finding("person model", "pass", "model_ok", params))
        else:
            out.append(Finding("person model", "warn", "model_degraded", params))
    return out

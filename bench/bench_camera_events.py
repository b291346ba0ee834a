"""Camera event intake benchmark: multipart pushes with pictures and pulled event-stream blocks.

Run: .venv/bin/python bench/bench_camera_events.py [--seconds 2]
Prints figures only; it asserts nothing. One thread, no network: the parsers are fed in 64 KiB
slices (pushes) and as whole chunks of a stream (pulls), the way the endpoint and the
subscription feed them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.vision.alarm_multipart import alarm_from_parts, checked_jpeg  # noqa: E402
from agent.vision.alarm_parse import parse_code_line, parse_xml  # noqa: E402
from agent.vision.multipart import Limits, MultipartReader, Part  # noqa: E402
from tests.kits.camera_bodies import alert_block, alert_xml, code_block, xml_push  # noqa: E402


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of fn over about `seconds`."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def camera_picture(width: int, height: int) -> bytes:
    """A JPEG with a camera-like amount of detail (noise over gradients), quality 85."""
    rng = np.random.default_rng(5)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None].repeat(height, 0)
    img = np.clip(base + rng.normal(0, 18, (height, width, 3)), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    s = ap.parse_args().seconds
    cv2.setNumThreads(1)
    print(f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    for w, h in ((704, 576), (1920, 1080)):
        pic = camera_picture(w, h)
        body = xml_push(pictures=[pic])

        def push(body: bytes = body) -> None:
            parts: list[Part] = []
            reader = MultipartReader(b"MIME_boundary", Limits(), parts.append)
            for i in range(0, len(body), 65536):
                reader.feed(body[i : i + 65536])
            reader.finish()
            alarm_from_parts("cam", parts)

        r = rate(push, s)
        mbps = r * len(body) / 1e6
        print(f"push {w}x{h} ({len(body) // 1024} KiB): parse {r:.0f}/s = {mbps:.0f} MB/s")
        check = rate(lambda pic=pic: checked_jpeg(pic), s)
        print(f"picture check {w}x{h} (decode at 1/8 scale): {check:.0f}/s")
    blocks = b"".join(alert_block(alert_xml("vmd", count=i)) for i in range(100))

    def alerts() -> None:
        parts: list[Part] = []
        reader = MultipartReader(b"boundary", Limits(max_parts=10**9), parts.append)
        reader.feed(blocks)
        for part in parts:
            parse_xml("cam", part.data)

    print(f"alert stream blocks (parse + XML): {rate(alerts, s) * 100:.0f}/s")
    codes = b"".join(code_block("VideoMotion", ("Start", "Stop")[i % 2]) for i in range(100))

    def code_lines() -> None:
        parts: list[Part] = []
        reader = MultipartReader(b"myboundary", Limits(max_parts=10**9), parts.append)
        reader.feed(codes)
        for part in parts:
            parse_code_line("cam", part.data, 300)

    print(f"event-code blocks (parse + line): {rate(code_lines, s) * 100:.0f}/s")


if __name__ == "__main__":
    main()

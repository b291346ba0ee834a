"""People detectors side by side: precision, recall and fps of HOG alone and the people cascade.

Run: .venv/bin/python bench/bench_people.py [--seconds 2]
Prints figures only; it asserts nothing
(tests/component/vision/test_vision_people.py holds the floors).
Scenes: the labelled shared photos (tests/data/people_truth.json) and the scenes made from them
in tests/kits/people.py (close-ups, small people with their motion regions, no-person
pictures). A hit is IoU >= 0.5 with a labelled person. fps: whole 640x480 frames (the census
after a camera opens) and the small-people frames searched only in their motion regions (what
the pipeline does on a moving scene), one OpenCV thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.vision.config import HogDetectorConfig, PeopleDetectorConfig  # noqa: E402
from agent.vision.detectors import Detector, HogDetector  # noqa: E402
from agent.vision.people import PeopleDetector  # noqa: E402
from tests.kits.people import H, Scene, Score, W, all_scenes, available, score  # noqa: E402

KINDS = ("shared", "close-up", "small", "empty")


def detectors() -> dict[str, Detector]:
    return {
        "HOG alone": HogDetector(HogDetectorConfig()),
        "people cascade": PeopleDetector(PeopleDetectorConfig()),
    }


def fps(det: Detector, frames: list[tuple[object, object]], seconds: float) -> float:
    """Frames per second of det.detect over the frames in turn."""
    n, start = 0, time.perf_counter()
    while True:
        image, rois = frames[n % len(frames)]
        det.detect(image, rois)  # type: ignore[arg-type]
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= len(frames):
            return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per fps figure")
    ap.add_argument("--verbose", action="store_true", help="every detection of every scene")
    args = ap.parse_args()
    if not available():
        print("bench_people: ../shared/data/images is absent; nothing to measure")
        return
    cv2.setNumThreads(1)
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(f"people bench: {cpu}, {os.cpu_count()} cores, OpenCV {cv2.__version__}, 1 thread\n")
    scenes: list[Scene] = all_scenes()
    dets = detectors()
    table: dict[str, dict[str, Score]] = {name: {} for name in dets}
    for name, det in dets.items():
        for sc in scenes:
            found = det.detect(sc.image, sc.rois)
            s = score(found, sc)
            table[name][sc.kind] = table[name].get(sc.kind, Score()) + s
            if args.verbose:
                boxes = [(tuple(round(v) for v in d.box), round(d.score, 2)) for d in found]
                print(f"  {name:15s} {sc.name:32s} tp={s.tp} fp={s.fp} fn={s.fn} {boxes}")
    print(f"{'scenes':10s} {'people':>6s} | " + " | ".join(f"{n:^26s}" for n in dets))
    print(f"{'':10s} {'':>6s} | " + " | ".join(f"{'hit  false  prec.  recall':^26s}" for _ in dets))
    for kind in (*KINDS, "all"):
        row = {
            n: sum((v for k, v in t.items() if kind in (k, "all")), Score())
            for n, t in table.items()
        }
        people = next(iter(row.values()))
        total = people.tp + people.fn
        cells = [f"{s.tp:3d} {s.fp:6d} {s.precision:6.2f} {s.recall:7.2f}" for s in row.values()]
        print(f"{kind:10s} {total:6d} | " + " | ".join(f"{c:^26s}" for c in cells))
    variants = {
        "cascade, faces = false": PeopleDetector(PeopleDetectorConfig(faces=False)),
        "cascade, upscale = 1": PeopleDetector(PeopleDetectorConfig(upscale=1.0)),
    }
    for name, det in variants.items():
        s = sum((score(det.detect(sc.image, sc.rois), sc) for sc in scenes), Score())
        print(f"{name:24s} all scenes: hit {s.tp}, false {s.fp}, recall {s.recall:.2f}")
    dets.update(variants)
    whole = [(cv2.resize(s.image, (W, H), interpolation=cv2.INTER_AREA), None) for s in scenes[:5]]
    moving = [(s.image, s.rois) for s in scenes if s.kind == "small"]
    print("\nfps, one core:")
    for name, det in dets.items():
        full = fps(det, whole, args.seconds)
        rois = fps(det, moving, args.seconds)
        print(f"  {name:24s} whole 640x480 frame {full:6.1f}   motion regions only {rois:6.1f}")


if __name__ == "__main__":
    main()

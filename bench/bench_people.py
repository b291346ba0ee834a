"""People detectors side by side: the SSD person model, the people cascade and HOG alone.

Run: .venv/bin/python bench/bench_people.py [--seconds 2] [--eval-only]
Prints figures only; it asserts nothing (tests/component/vision/test_vision_eval.py and
tests/component/vision/test_vision_people.py hold the floors).
First the evaluation photos (tests/data/people_eval.json: 41 real photos, a third held out):
recall per height band, precision, false boxes on photos with nobody and ms per photo, per
split, each beside the issue's target (recall >= 0.65 over people >= 40 px, precision >= 0.9,
<= 60 ms per frame); then the SSD's forward pass under the system OpenCV (Debian's
python3-opencv 4.6) when /usr/bin/python3 has it. Then, when ../shared/data/images is there:
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

from agent.vision.detector_config import HogDetectorConfig, PeopleDetectorConfig  # noqa: E402
from agent.vision.detectors import Detector, HogDetector  # noqa: E402
from agent.vision.people import PeopleDetector  # noqa: E402
from tests.kits import people_eval  # noqa: E402
from tests.kits.people import H, Scene, Score, W, all_scenes, available, score  # noqa: E402

TARGET = {"recall": 0.65, "precision": 0.9, "ms": 60.0}


def eval_detectors() -> dict[str, Detector]:
    """The SSD as configured by default, without the far-people pass, with it unbounded."""
    from agent.vision import models
    from agent.vision.detector_config import SsdDetectorConfig
    from agent.vision.ssd import SsdDetector

    out: dict[str, Detector] = {}
    files = models.ModelFiles(models.default_dir())
    if files.graph.is_file():
        out["ssd, full frame only"] = SsdDetector(SsdDetectorConfig(small_budget_ms=0), files)
        out["ssd (default, 80 ms tiles)"] = SsdDetector(SsdDetectorConfig(), files)
        out["ssd, every tile"] = SsdDetector(SsdDetectorConfig(small_budget_ms=10_000), files)
    else:
        print("the person model is not fetched (edge-agent models fetch): no SSD rows")
    out["people cascade"] = PeopleDetector(PeopleDetectorConfig())
    out["HOG alone"] = HogDetector(HogDetectorConfig())
    return out


def eval_set() -> None:
    """Recall by height band, precision and ms on the evaluation photos, per split."""
    dets = eval_detectors()
    for split in ("tune", "held_out"):
        photos = people_eval.photos(split)
        n = {b: 0 for b in people_eval.BANDS}
        for p in photos:
            for box in p.people:
                n[people_eval.band(box[3])] += 1
        bands = ", ".join(f"{lo}-{hi if hi < 10_000 else ''} px: {k}" for (lo, hi), k in n.items())
        print(f"\n{split}: {len(photos)} photos, people by height {bands}")
        print(
            f"  {'detector':28s} {'rec>=40':>7s} {'<40':>5s} {'40-110':>6s} {'>=110':>6s} "
            f"{'prec':>5s} {'fp@empty':>8s} {'ms':>6s}"
        )
        for name, det in dets.items():
            t = people_eval.Tally()
            for p in photos:
                t0 = time.perf_counter()
                found = det.detect(p.image, None)
                people_eval.add(t, found, p, (time.perf_counter() - t0) * 1000.0)
            print(
                f"  {name:28s} {t.recall():7.3f} {t.recall(0, 40):5.2f} {t.recall(40, 110):6.2f} "
                f"{t.recall(110):6.2f} {t.precision():5.2f} {t.fp_empty:8d} {t.ms / t.frames:6.1f}"
            )
    print(
        f"  target: recall >= {TARGET['recall']} over >= 40 px, precision >= "
        f"{TARGET['precision']}, <= {TARGET['ms']:g} ms per 640x480 frame (one core)"
    )
    system_opencv_ms()


def system_opencv_ms() -> None:
    """The SSD's forward pass under /usr/bin/python3's OpenCV (Debian python3-opencv)."""
    import subprocess

    from agent.vision import models

    files = models.ModelFiles(models.default_dir())
    code = (
        "import cv2, sys, time, numpy as np; cv2.setNumThreads(1);"
        "net = cv2.dnn.readNetFromTensorflow(sys.argv[1], sys.argv[2]);"
        "b = cv2.dnn.blobFromImage(np.full((480, 640, 3), 90, np.uint8), 1/127.5, (300, 300),"
        " (127.5, 127.5, 127.5), swapRB=True); net.setInput(b); net.forward();"
        "t = time.perf_counter(); [net.setInput(b) or net.forward() for _ in range(20)];"
        "print(cv2.__version__, round((time.perf_counter() - t) * 50, 1))"
    )
    for py in ("/usr/bin/python3", sys.executable):
        if not files.graph.is_file() or not Path(py).exists():
            return
        args = [py, "-c", code, str(files.graph), str(files.text_graph)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode == 0:
            version, ms = done.stdout.split()
            print(f"  forward pass only, OpenCV {version} ({py}): {ms} ms (ceiling 60 ms)")


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
    ap.add_argument("--eval-only", action="store_true", help="only the evaluation photos")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    eval_set()
    if args.eval_only:
        return
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

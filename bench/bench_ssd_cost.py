"""What the person model costs: peak RSS it adds and frames per second at 640x480, one core.

Run: .venv/bin/python bench/bench_ssd_cost.py
Each figure comes from a fresh bare process (python -c) so the numbers are the model's own:
peak RSS (ru_maxrss) after importing OpenCV and numpy only, after building the HOG + faces
fallback and running it once, and after loading the SSD and running it once; then the SSD's
frames per second over a real photo, full pass only and with the default far-people budget.
Prints figures beside their ceilings; asserts nothing. Machine load changes every figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "people_eval" / "opencv_vtest_330.jpg"

PRE = (
    f"import resource, sys, time; sys.path.insert(0, {str(ROOT)!r}); import cv2, numpy as np;"
    f"cv2.setNumThreads(1); img = cv2.imread({str(PHOTO)!r});"
)
RSS = "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
CASES = {
    "OpenCV + numpy imported": "",
    "HOG + faces fallback, one frame": (
        "from agent.vision.people import PeopleDetector;"
        "from agent.vision.detector_config import PeopleDetectorConfig;"
        "PeopleDetector(PeopleDetectorConfig()).detect(img, None);"
    ),
    "SSD person model, one frame": (
        "from agent.vision.ssd import build_ssd;"
        "from agent.vision.detector_config import SsdDetectorConfig;"
        "build_ssd(SsdDetectorConfig(), None, 0.4).detect(img, None);"
    ),
}
FPS = (
    "from agent.vision.ssd import build_ssd;"
    "from agent.vision.detector_config import SsdDetectorConfig;"
    "d = build_ssd(SsdDetectorConfig(small_budget_ms=BUDGET), None, 0.4); d.detect(img, None);"
    "n = 0; t = time.perf_counter()\n"
    "while time.perf_counter() - t < 5: d.detect(img, None); n += 1\n"
    "print(round(n / (time.perf_counter() - t), 1))"
)


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    for name, code in CASES.items():
        print(f"peak RSS, {name:34s} {run(PRE + code + RSS):>5s} MB")
    for budget, label in (("0", "full pass only"), ("80", "default far-people budget 80 ms")):
        fps = run(PRE + FPS.replace("BUDGET", budget))
        print(f"fps 640x480, one core, {label:32s} {fps:>5s} (target >= 16.7: 60 ms)")


if __name__ == "__main__":
    main()

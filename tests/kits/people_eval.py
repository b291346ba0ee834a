"""The evaluation photos (tests/data/people_eval.json): real photos with a box per person.

Scoring as in tests/kits/people.py (IoU >= 0.5, greedy by score, ignore regions), plus recall
per height band of the labelled people (far people are the hard part) and the split: the
held-out photos are never used to choose settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agent.vision.geometry import Box, intersection, iou
from agent.vision.tracker import Detection

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "tests" / "data" / "people_eval.json"
IMAGES = ROOT / "tests" / "data" / "people_eval"
# Height bands in pixels of the photo (<= 640 px): under the 40 px floor, far, near.
BANDS = ((0, 40), (40, 110), (110, 10_000))


@dataclass(frozen=True)
class Photo:
    """One labelled photo."""

    name: str
    split: str
    image: np.ndarray
    people: tuple[Box, ...]
    ignore: tuple[Box, ...]


@dataclass
class Tally:
    """Hits and misses per height band, false positives, frames and time."""

    hits: dict[tuple[int, int], int] = field(default_factory=lambda: dict.fromkeys(BANDS, 0))
    people: dict[tuple[int, int], int] = field(default_factory=lambda: dict.fromkeys(BANDS, 0))
    fp: int = 0
    fp_empty: int = 0  # false boxes on photos with nobody labelled
    frames: int = 0
    ms: float = 0.0

    def recall(self, lo: int = 40, hi: int = 10_000) -> float:
        """Recall over people whose height is in [lo, hi)."""
        bands = [b for b in BANDS if b[0] >= lo and b[1] <= hi]
        n = sum(self.people[b] for b in bands)
        return sum(self.hits[b] for b in bands) / n if n else 1.0

    def precision(self) -> float:
        """Hits over everything reported (ignore regions aside)."""
        tp = sum(self.hits.values())
        return tp / (tp + self.fp) if tp + self.fp else 1.0


def photos(split: str | None = None) -> list[Photo]:
    """The labelled photos, of one split or all."""
    doc = json.loads(TRUTH.read_text())["images"]
    out = []
    for name, t in sorted(doc.items()):
        if split is not None and t["split"] != split:
            continue
        image = cv2.imread(str(IMAGES / name))
        people = tuple(tuple(float(v) for v in p["box"]) for p in t["people"])
        ignore = tuple(tuple(float(v) for v in p["box"]) for p in t["ignore"])
        out.append(Photo(name, t["split"], image, people, ignore))  # type: ignore[arg-type]
    return out


def band(h: float) -> tuple[int, int]:
    return next(b for b in BANDS if b[0] <= h < b[1])


def add(tally: Tally, found: Sequence[Detection], photo: Photo, ms: float) -> None:
    """Match one photo's detections (best score first) and count them into `tally`."""
    free = list(photo.people)
    for p in photo.people:
        tally.people[band(p[3])] += 1
    for d in sorted(found, key=lambda d: -d.score):
        best = max(free, key=lambda p: iou(p, d.box), default=None)
        if best is not None and iou(best, d.box) >= 0.5:
            free.remove(best)
            tally.hits[band(best[3])] += 1
        elif any(intersection(d.box, g) >= 0.5 * d.box[2] * d.box[3] for g in photo.ignore):
            continue
        else:
            tally.fp += 1
            tally.fp_empty += not photo.people
    tally.frames += 1
    tally.ms += ms

"""Labelled people scenes for the detector tests and bench: the shared photos and made scenes.

Truth: tests/data/people_truth.json (boxes by eye on ../shared/data/images). Made here, without
downloads: close-ups (crops of the bus photo, enlarged), small people (the real people cut out
with GrabCut, shrunk and set into the horse pasture and the street, with the motion regions a
camera would see), and drawn scenes with no person (poles, fences, windows, noise).
Matching: greedy by score, a hit at IoU >= 0.5 with an unmatched person; detections whose box
lies mostly (>= 50 %) on an ignore region are dropped; everything else is a false positive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agent.vision.geometry import Box, intersection, iou
from agent.vision.motion import MotionDetector
from agent.vision.tracker import Detection

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT.parent / "shared" / "data" / "images"
TRUTH = ROOT / "tests" / "data" / "people_truth.json"
W, H = 640, 480


@dataclass(frozen=True)
class Scene:
    """One labelled picture; rois are the motion regions to search (None: the whole frame)."""

    name: str
    kind: str  # "shared", "close-up", "small", "empty"
    image: np.ndarray
    people: tuple[Box, ...]
    ignore: tuple[Box, ...] = ()
    faces: tuple[bool, ...] = ()  # per person: is the face in view (close-up crops need it)
    rois: tuple[Box, ...] | None = None
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Score:
    """Hits, false positives and misses of one detector over scenes."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(found: Sequence[Detection], scene: Scene, iou_min: float = 0.5) -> Score:
    """Greedy matching of detections (best score first) to the scene's people."""
    free = list(scene.people)
    tp = fp = 0
    for d in sorted(found, key=lambda d: -d.score):
        best = max(free, key=lambda p: iou(p, d.box), default=None)
        if best is not None and iou(best, d.box) >= iou_min:
            free.remove(best)
            tp += 1
        elif any(intersection(d.box, g) >= 0.5 * d.box[2] * d.box[3] for g in scene.ignore):
            continue
        else:
            fp += 1
    return Score(tp, fp, len(free))


def _boxes(items: list[dict]) -> tuple[Box, ...]:
    return tuple(tuple(float(v) for v in it["box"]) for it in items)  # type: ignore[misc]


def available() -> bool:
    """The shared images are there (CI has them beside the checkout)."""
    return all((IMAGES / n).is_file() for n in json.loads(TRUTH.read_text())["images"])


def shared_scenes() -> list[Scene]:
    """The five shared photos with their labels, at their own size."""
    truth = json.loads(TRUTH.read_text())["images"]
    out = []
    for name, t in truth.items():
        image = cv2.imread(str(IMAGES / name))
        notes = tuple(p.get("note", "") for p in t["people"])
        faces = tuple(p.get("face", True) for p in t["people"])
        people, ignore = _boxes(t["people"]), _boxes(t["ignore"])
        out.append(Scene(name, "shared", image, people, ignore, faces, notes=notes))
    return out


def _crop_scene(name: str, bus: Scene, x: int, y: int, w: int, h: int) -> Scene:
    """A crop of the bus photo enlarged to 640x480; people keep the part inside the crop."""
    f = W / w
    image = cv2.resize(bus.image[y : y + h, x : x + w], (W, H), interpolation=cv2.INTER_CUBIC)

    def inside(boxes: Sequence[Box], min_part: float) -> list[Box]:
        kept = []
        for b in boxes:
            x1, y1 = max(b[0], x), max(b[1], y)
            x2, y2 = min(b[0] + b[2], x + w), min(b[1] + b[3], y + h)
            if x2 > x1 and y2 > y1 and (x2 - x1) * (y2 - y1) >= min_part * b[2] * b[3]:
                kept.append(((x1 - x) * f, (y1 - y) * f, (x2 - x1) * f, (y2 - y1) * f))
        return kept

    # A person counts when their face is in the crop (the head is the top ~15 % of the box);
    # slivers of someone else at the crop edge become ignore regions.
    people, ignore = [], inside(bus.ignore, 0.0)
    for b, face in zip(bus.people, bus.faces, strict=True):
        part = inside([b], 0.0)
        if not part:
            continue
        head_in = face and x <= b[0] + b[2] / 2 <= x + w and y <= b[1] + 0.08 * b[3] <= y + h
        (people if head_in else ignore).append(part[0])
    return Scene(name, "close-up", image, tuple(people), tuple(ignore))


def cutout(image: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The person in `box` and a soft mask of them (GrabCut seeded by the box)."""
    x, y, w, h = (round(v) for v in box)
    m = 8
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(image.shape[1], x + w + m), min(image.shape[0], y + h + m)
    patch = image[y0:y1, x0:x1].copy()
    mask = np.zeros(patch.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(12)
    rect = (
        x - x0,
        y - y0,
        min(w, patch.shape[1] - (x - x0) - 1),
        min(h, patch.shape[0] - (y - y0) - 1),
    )
    cv2.grabCut(patch, mask, rect, bgd, fgd, 4, cv2.GC_INIT_WITH_RECT)
    fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    ys, xs = np.nonzero(fg)
    t, b, left, r = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return patch[t:b, left:r], cv2.GaussianBlur(fg[t:b, left:r], (5, 5), 0)


def paste(canvas: np.ndarray, person: np.ndarray, alpha: np.ndarray, x: int, y: int, h: int) -> Box:
    """Blend the person into the canvas, `h` pixels tall with the feet at (x, y + h)."""
    f = h / person.shape[0]
    pw = max(1, round(person.shape[1] * f))
    p = cv2.resize(person, (pw, h), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha, (pw, h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None]
    region = canvas[y : y + h, x : x + pw].astype(np.float32)
    canvas[y : y + h, x : x + pw] = (p * (a / 255.0) + region * (1 - a / 255.0)).astype(np.uint8)
    return (float(x), float(y), float(pw), float(h))


def _motion_rois(background: np.ndarray, frame: np.ndarray) -> tuple[Box, ...]:
    """The blobs the real motion stage reports when the people appear on the background."""
    from agent.vision.config import MotionConfig

    md = MotionDetector(MotionConfig())
    for i in range(10):
        md.apply(background, i * 0.2)
    return md.apply(frame, 2.2).blobs


# (source person index in the shared truth, x, feet y, height) on 640x480 backgrounds.
_CROWDS = {
    "small-people pasture": (
        "darknet_horses.jpg",
        [(0, 40, 420, 90), (1, 170, 440, 80), (2, 520, 400, 70), (0, 600, 470, 64)],
    ),
    "small-people street": (
        "pytorchyolov3_street.jpg",
        [(1, 60, 470, 100), (2, 250, 455, 84), (0, 420, 460, 72), (1, 560, 440, 60)],
    ),
}


def made_scenes(shared: list[Scene]) -> list[Scene]:
    """Close-ups, small people and scenes with no person, all made from the shared photos."""
    by = {s.name: s for s in shared}
    bus, walker = by["yolov5_bus.jpg"], by["darknet_person.jpg"]
    out = [
        _crop_scene("close-up two men", bus, 0, 370, 400, 300),
        _crop_scene("close-up one face", bus, 180, 380, 240, 180),
    ]
    sources = [cutout(walker.image, walker.people[0])]
    sources += [cutout(bus.image, b) for b in bus.people[:2]]
    for name, (bg_name, placed) in _CROWDS.items():
        background = cv2.resize(by[bg_name].image, (W, H), interpolation=cv2.INTER_AREA)
        frame = background.copy()
        people = []
        for idx, x, feet, h in placed:
            person, alpha = sources[idx]
            people.append(paste(frame, person, alpha, x, feet - h, h))
        out.append(Scene(name, "small", frame, tuple(people), rois=_motion_rois(background, frame)))
        out.append(
            Scene(
                f"{name}, nobody",
                "empty",
                background,
                (),
                rois=_motion_rois(background, background),
            )
        )
    out.extend(empty_scenes())
    return out


def empty_scenes() -> list[Scene]:
    """Drawn pictures with no person: poles and railings, a window grid, noise, a plain wall."""
    rng = np.random.default_rng(7)
    out = []
    poles = np.full((H, W, 3), 150, np.uint8)
    for x in range(20, W, 46):
        cv2.rectangle(poles, (x, 120), (x + 10, 470), (40, 40, 40), -1)
        cv2.circle(poles, (x + 5, 112), 9, (30, 30, 30), -1)
    cv2.line(poles, (0, 300), (W, 300), (60, 60, 60), 4)
    out.append(Scene("drawn railings", "empty", poles, ()))
    facade = np.full((H, W, 3), (120, 140, 170), np.uint8)
    for y in range(30, H - 60, 90):
        for x in range(30, W - 40, 80):
            cv2.rectangle(facade, (x, y), (x + 40, y + 64), (60, 50, 40), -1)
            cv2.line(facade, (x + 20, y), (x + 20, y + 64), (200, 200, 200), 2)
    out.append(Scene("drawn facade", "empty", facade, ()))
    noise = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (3, 3), 0)
    out.append(Scene("noise", "empty", noise, ()))
    out.append(Scene("grey wall", "empty", np.full((H, W, 3), 128, np.uint8), ()))
    return out


def all_scenes() -> list[Scene]:
    """Every labelled scene: the shared photos first, then those made from them."""
    shared = shared_scenes()
    return shared + made_scenes(shared)

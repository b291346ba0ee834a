"""Static objects that do not fade: a stopped blob is held while it differs from the empty scene.

MOG2 absorbs a stopped car into its background within background_s; this module keeps a
separate reference of the empty scene that never learns under motion or under held objects,
so a parked object stays visible as a difference from that reference until it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from agent.vision.config import StaticConfig
from agent.vision.geometry import Box, centre, expand, iou, scale_box
from agent.vision.rules import PERSON, SceneObject
from agent.vision.tracker import Detection, Track

OBJECT = "object"
# How far beyond a settled blob (times its size, each side) the object's own pixels are sought.
_GROW = 0.3


@dataclass(frozen=True, slots=True)
class Held:
    """A held static object: box in captured pixels, the pixels it changed (small image)."""

    id: int
    box: Box
    since: float
    last_present: float
    label: str
    score: float
    region: tuple[int, int, int, int]
    pixels: np.ndarray


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


class StaticWatch:
    """Holds settled blobs as static objects; one per camera, not thread-safe."""

    def __init__(self, cfg: StaticConfig) -> None:
        self._cfg = cfg
        self._ref: np.ndarray | None = None
        self._held: list[Held] = []
        self._next_id = 1
        self._last_t: float | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))

    def reset(self) -> None:
        """Forget the scene and every held object (the source was reopened)."""
        self._ref = None
        self._held = []
        self._last_t = None

    def reference(self) -> np.ndarray | None:
        """The learnt empty scene (the small image, float32) or None."""
        return self._ref

    @staticmethod
    def _region(box: Box, scale: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        x, y, w, h = (round(v) for v in scale_box(box, scale))
        x1, y1 = min(max(0, x), shape[1]), min(max(0, y), shape[0])
        x2, y2 = min(max(0, x + w), shape[1]), min(max(0, y + h), shape[0])
        return (x1, y1, x2, y2)

    @staticmethod
    def _patch(image: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
        x1, y1, x2, y2 = region
        return image[y1:y2, x1:x2]

    def _object_pixels(
        self, changed: np.ndarray, blob: Box, scale: float
    ) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The changed pixels connected to a settled blob, in a region around it.

        Motion works on grey: a car as grey as the road moves only by its windows and wheels,
        so its blob is smaller than the car. The car differs from the empty scene in colour,
        and the pixels connected to the blob are the rest of it.
        """
        region = self._region(expand(blob, _GROW), scale, changed.shape)
        pixels = self._patch(changed, region).astype(np.uint8)
        bx1, by1, bx2, by2 = self._region(blob, scale, changed.shape)
        _n, labels = cv2.connectedComponents(pixels, connectivity=8)
        core = labels[by1 - region[1] : by2 - region[1], bx1 - region[0] : bx2 - region[0]]
        touching = np.unique(core[core > 0])
        return region, np.isin(labels, touching) & (pixels > 0)

    def _still_there(self, changed: np.ndarray, held: Held) -> bool:
        # Judge only the pixels the object changed when it was held: parts of an object that
        # happen to match the scene behind it never counted, so they cannot make it fade.
        now = self._patch(changed, held.region)
        total = int(np.count_nonzero(held.pixels))
        same = int(np.count_nonzero(now & held.pixels)) if now.shape == held.pixels.shape else 0
        return total > 0 and same >= self._cfg.keep_fraction * total

    def _newly_held(
        self,
        track: Track,
        changed: np.ndarray,
        scale: float,
        t: float,
        kept: Sequence[Held],
        people: Sequence[Box],
        detections: Sequence[Detection],
    ) -> Held | None:
        """A settled blob to hold as a new object, or None (already held, a person, a ghost)."""
        c = centre(track.box)
        if any(iou(track.box, h.box) > 0.3 or _inside(c, h.box) for h in kept):
            return None
        if any(iou(track.box, p) > 0.3 or _inside(c, p) for p in people):
            return None  # a person standing still is not a parked object
        core = self._patch(changed, self._region(track.box, scale, changed.shape))
        if not core.size or np.count_nonzero(core) < self._cfg.changed_fraction * core.size:
            return None  # a ghost: the scene behind a departed object, not a new object
        region, pixels = self._object_pixels(changed, track.box, scale)
        # Report the object as the pixels it changed, not the dilated motion blob.
        ys, xs = np.nonzero(pixels)
        x0, y0 = region[0] + int(xs.min()), region[1] + int(ys.min())
        w, h = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
        box = scale_box((float(x0), float(y0), float(w), float(h)), 1.0 / scale)
        label, score = OBJECT, 1.0
        for d in detections:
            if d.label != PERSON and iou(d.box, box) > 0.3:
                label, score = d.label, d.score
        held = Held(self._next_id, box, track.still_since, t, label, score, region, pixels)
        self._next_id += 1
        return held

    def update(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        scale: float,
        t: float,
        settled: Sequence[Track],
        detections: Sequence[Detection],
    ) -> tuple[SceneObject, ...]:
        """Check held objects, hold newly settled blobs, learn the scene elsewhere.

        `image` is the small analysis image, colour or grey: in colour a car that is as grey as
        the road (red on asphalt) still differs from it.
        """
        cfg = self._cfg
        if self._ref is None or self._ref.shape != image.shape:
            self._ref = image.astype(np.float32)
            self._held = []
            self._last_t = t
            return ()
        dt = max(0.0, t - (self._last_t if self._last_t is not None else t))
        self._last_t = t
        ref_u8 = cv2.convertScaleAbs(self._ref)
        diff = cv2.absdiff(image, ref_u8)
        changed = (diff.max(axis=2) if diff.ndim == 3 else diff) > cfg.diff_level
        kept: list[Held] = []
        for held in self._held:
            if self._still_there(changed, held):
                kept.append(replace(held, last_present=t))
            elif t - held.last_present < cfg.release_s:
                kept.append(held)
        people = [d.box for d in detections if d.label == PERSON]
        for track in settled:
            new = self._newly_held(track, changed, scale, t, kept, people, detections)
            if new is not None:
                kept.append(new)
        self._held = kept
        # Learn the empty scene only where nothing moves and nothing is held.
        frozen = cv2.dilate(mask, self._kernel)
        for held in kept:
            x1, y1, x2, y2 = held.region
            frozen[y1:y2, x1:x2] = 255
        rate = min(1.0, dt / cfg.reference_s)
        if rate > 0:
            cv2.accumulateWeighted(image, self._ref, rate, mask=cv2.bitwise_not(frozen))
        return tuple(SceneObject(h.id, h.label, h.box, h.score, h.since) for h in kept)

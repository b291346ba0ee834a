"""People detector from what OpenCV ships: HOG full body (edge-padded, upscaled) and Haar faces."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from agent.errors import ConfigError
from agent.vision.detector_config import PeopleDetectorConfig
from agent.vision.detectors import HOG_WIN, fit_side, nms, search_regions
from agent.vision.geometry import Box, area, centre, clip, expand
from agent.vision.tracker import Detection

log = logging.getLogger(__name__)

# The default people detector's 64x128 window has a margin around the person: this is the part
# of the window the person fills (measured on the labelled images, tests/data/people_truth.json).
_BODY_IN_WINDOW = (0.19, 0.06, 0.62, 0.88)
# A face of width f belongs to a person about 2.4 f wide whose head starts f/4 above the face.
_BODY_WIDTH_PER_FACE = 2.4
_HEAD_ABOVE_FACE = 0.25
# A face found by the fast cascade must be found again by a second one on a crop this much
# larger than the face; the two cascades disagree on the textures that fool each of them.
_CONFIRM_CONTEXT = 0.6
_CONFIRM_SIDE = 96


# The opencv-python wheels carry the cascades (`cv2.data`); Debian's python3-opencv (Raspberry
# Pi OS) does not: they are in Debian's opencv-data package, under this folder.
DEBIAN_CASCADES = Path("/usr/share/opencv4/haarcascades")


def _cascade(name: str) -> cv2.CascadeClassifier:
    data = getattr(cv2, "data", None)
    path = (Path(data.haarcascades) if data is not None else DEBIAN_CASCADES) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        hint = "" if data is not None else " (on Debian: apt install opencv-data)"
        raise ConfigError([("detector.faces", f"OpenCV has no usable cascade {path}{hint}")])
    return cascade


def body_box(window: Box) -> Box:
    """The person inside a HOG detection window."""
    x, y, w, h = window
    fx, fy, fw, fh = _BODY_IN_WINDOW
    return (x + fx * w, y + fy * h, fw * w, fh * h)


def person_from_face(face: Box, body_per_face: float, width: float, height: float) -> Box:
    """The person a face belongs to (head to feet, or to the frame edge for a close-up)."""
    fx, fy, fw, fh = face
    cx = fx + fw / 2.0
    bw = _BODY_WIDTH_PER_FACE * fw
    return clip((cx - bw / 2.0, fy - _HEAD_ABOVE_FACE * fh, bw, body_per_face * fh), width, height)


def _face_on_body(face: Box, body: Box) -> int:
    """2: the face is where this body's head is; 1: on its upper half (HOG saw a torso); 0."""
    cx, cy = centre(face)
    x, y, w, h = body
    if not x + 0.15 * w <= cx <= x + 0.85 * w:
        return 0
    if y - 0.05 * h <= cy <= y + 0.25 * h:
        return 2
    return 1 if cy <= y + 0.6 * h else 0


class PeopleDetector:
    """Full-body HOG, a second HOG pass on small regions upscaled, faces for close-ups; fused."""

    name = "people"

    def __init__(self, cfg: PeopleDetectorConfig, full_frame_fraction: float = 0.4) -> None:
        self._cfg = cfg
        self._full = full_frame_fraction
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))
        self._faces = _cascade("haarcascade_frontalface_default.xml") if cfg.faces else None
        self._confirm = _cascade("haarcascade_frontalface_alt2.xml") if cfg.faces else None

    def _bodies(self, crop: np.ndarray, factor: float, ox: float, oy: float) -> list[Detection]:
        """HOG on a crop enlarged by `factor`; boxes back in the scaled frame (offset ox, oy)."""
        cfg = self._cfg
        step = cfg.scale
        if factor != 1.0:
            # The enlarged pass is for people too small for the 1x pass: a coarser pyramid
            # will do, bigger people were already seen at 1x.
            step = max(cfg.scale, 1.1)
            crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        if crop.shape[1] < HOG_WIN[0] or crop.shape[0] < HOG_WIN[1]:
            return []
        rects, weights = self._hog.detectMultiScale(
            crop,
            hitThreshold=cfg.hit_threshold,
            winStride=(cfg.win_stride, cfg.win_stride),
            padding=(cfg.padding, cfg.padding),
            scale=step,
        )
        out = []
        for (bx, by, bw, bh), weight in zip(rects, np.ravel(weights), strict=True):
            if float(weight) >= cfg.min_score:
                window = (bx / factor + ox, by / factor + oy, bw / factor, bh / factor)
                out.append(Detection(body_box(window), float(weight), "person"))
        return out

    def _confirmed(self, gray: np.ndarray, face: Box) -> bool:
        assert self._confirm is not None
        h, w = gray.shape[:2]
        x, y, cw, ch = (round(v) for v in clip(expand(face, _CONFIRM_CONTEXT), w, h))
        crop = gray[y : y + ch, x : x + cw]
        if crop.size == 0:
            return False
        f = _CONFIRM_SIDE / max(crop.shape[:2])
        if f > 1.0:  # the second cascade needs faces of ~40 px; small ones are enlarged
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
        found = self._confirm.detectMultiScale(crop, 1.1, 2, minSize=(20, 20))
        return len(found) > 0

    def _face_boxes(self, gray: np.ndarray, region: Box) -> list[Box]:
        """Faces found by both cascades in a region of the scaled grey frame."""
        assert self._faces is not None
        cfg = self._cfg
        x, y, cw, ch = (round(v) for v in region)
        crop = gray[y : y + ch, x : x + cw]
        if min(crop.shape[:2]) < cfg.face_min:
            return []
        found = self._faces.detectMultiScale(
            crop, 1.1, cfg.face_neighbors, minSize=(cfg.face_min, cfg.face_min)
        )
        faces = [(float(fx + x), float(fy + y), float(fw), float(fh)) for fx, fy, fw, fh in found]
        return [f for f in faces if self._confirmed(gray, f)]

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """People in the frame (or near the rois); score = HOG margin, + face_score for a face."""
        cfg = self._cfg
        img, s = fit_side(image, cfg.max_side)
        h, w = img.shape[:2]
        p = cfg.edge_pad
        # Sides and bottom only: people are cut there; a replicated top edge (sky, ceiling)
        # makes vertical streaks that HOG takes for legs.
        padded = cv2.copyMakeBorder(img, 0, p, p, p, cv2.BORDER_REPLICATE) if p else img
        gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)) if cfg.faces else None
        regions = search_regions(rois, w, h, s, cfg, self._full)
        whole = rois is None or regions == [(0.0, 0.0, float(w), float(h))]
        bodies: list[Detection] = []
        faces: list[Box] = []
        for region in regions:
            rx, ry, rw, rh = (round(v) for v in region)
            # Regions on the frame edge take the border too: a person cut by the edge.
            x0 = rx if rx > 0 else rx - p
            x1 = rx + rw if rx + rw < w else rx + rw + p
            y1 = ry + rh if ry + rh < h else ry + rh + p
            y0 = ry
            crop = padded[y0:y1, x0 + p : x1 + p]
            found = self._bodies(crop, 1.0, x0, y0)
            small = rh < cfg.upscale_below and not whole
            if cfg.upscale > 1.0 and (small or (whole and cfg.upscale_full)):
                found += self._bodies(crop, cfg.upscale, x0, y0)
            bodies += found
            # A motion region a HOG body already explains needs no face search (it costs as
            # much as HOG); whole frames always get one, close-ups fill them.
            explained = not whole and any(d.box[3] >= 0.4 * rh for d in found)
            if gray is not None and not explained:
                faces.extend(self._face_boxes(gray, region))
        people = self._fuse(nms(bodies, 0.5) if len(bodies) > 1 else bodies, faces, w, h)
        out = []
        for d in people:
            box = clip(d.box, w, h)
            if area(box) > 0:
                out.append(
                    Detection((box[0] / s, box[1] / s, box[2] / s, box[3] / s), d.score, d.label)
                )
        return nms(out, 0.5) if len(out) > 1 else out

    def _fuse(self, bodies: list[Detection], faces: list[Box], w: int, h: int) -> list[Detection]:
        """Bodies with a face on them score higher; a face with no body is a close-up person."""
        cfg = self._cfg
        boxes = [d.box for d in bodies]
        scores = [d.score for d in bodies]
        alone: list[Detection] = []
        for face in nms([Detection(f, 1.0, "face") for f in faces], 0.3):
            from_face = person_from_face(face.box, cfg.body_per_face, w, h)
            on = [(_face_on_body(face.box, b), i) for i, b in enumerate(boxes)]
            hit = [(kind, i) for kind, i in on if kind]
            if not hit:
                alone.append(Detection(from_face, cfg.face_score, "person"))
                continue
            kind, best = max(hit, key=lambda ki: (ki[0], scores[ki[1]]))
            scores[best] += cfg.face_score
            if kind == 1:  # HOG took the torso of a close-up for a person: the face knows better
                boxes[best] = from_face
        fused = [Detection(b, sc, "person") for b, sc in zip(boxes, scores, strict=True)]
        return fused + alone

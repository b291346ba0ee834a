"""Per-frame analysis (blocking, one worker thread per camera): motion gates the detector."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from agent.vision import tracker
from agent.vision.config import CameraConfig
from agent.vision.detectors import Detector
from agent.vision.geometry import Box
from agent.vision.motion import MotionDetector
from agent.vision.rules import RuleParams, Scene, SceneObject, Zone, tamper_reasons
from agent.vision.static import OBJECT, StaticWatch
from agent.vision.tamper import TamperMeter

log = logging.getLogger(__name__)

PEOPLE_RULES = frozenset({"crowd", "loitering", "water_zone"})


@dataclass(frozen=True, slots=True)
class Frame:
    """A captured BGR frame; t in seconds (monotonic domain), wall_ms when captured."""

    image: np.ndarray
    t: float
    wall_ms: int
    seq: int
    first: bool = False


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the rules need from one frame, plus counters for status and the bench."""

    scene: Scene
    frame: Frame
    detected: bool
    motion_fraction: float
    blobs: tuple[Box, ...]


def zones_of(cam: CameraConfig) -> tuple[Zone, ...]:
    """The camera's zones for the pure rules."""
    return tuple(
        Zone(z.name, tuple((float(x), float(y)) for x, y in z.polygon), frozenset(z.rules))
        for z in cam.zones
    )


def minute_of_day(wall_ms: int) -> int:
    """Local minute of the day of a wall-clock time (the gateway's time zone)."""
    tm = time.localtime(wall_ms / 1000.0)
    return tm.tm_hour * 60 + tm.tm_min


class FrameProcessor:
    """Motion, tamper, static objects, gated detection and tracking for one camera."""

    def __init__(self, cam: CameraConfig, detector: Detector | None) -> None:
        self._cam = cam
        self._zones = zones_of(cam)
        rules = cam.zone_rules()
        self._need_people = bool(rules & PEOPLE_RULES)
        self._need_static = "parking" in rules
        self._motion_zones = [z for z in self._zones if "motion" in z.rules]
        self._detector = detector if (self._need_people or self._need_static) else None
        tc = cam.tracker
        self._tparams = tracker.TrackerParams(
            iou_min=tc.iou_min, max_age_s=tc.max_age_s, min_hits=tc.min_hits, still_px=tc.still_px
        )
        self._people = tracker.TrackerState()
        self._blobs = tracker.TrackerState()
        self._last_detect = float("-inf")
        self._motion = MotionDetector(cam.motion)
        self._tamper = TamperMeter(cam.static.reference_s)
        self._static = StaticWatch(cam.static)
        self._zone_masks: dict[str, np.ndarray] = {}
        self._frame_size: tuple[int, int] | None = None
        self.detector_runs = 0

    def _check_size(self, image: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        if size == self._frame_size:
            return
        self._frame_size = size
        self._zone_masks = {}
        for z in self._cam.zones:
            if any(x > size[0] or y > size[1] for x, y in z.polygon):
                log.warning(
                    "camera %s zone %s reaches outside the %dx%d frame",
                    self._cam.id,
                    z.name,
                    size[0],
                    size[1],
                )

    def _zone_motion(self, mask: np.ndarray, scale: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for zone in self._motion_zones:
            zm = self._zone_masks.get(zone.name)
            if zm is None or zm.shape != mask.shape:
                zm = np.zeros_like(mask)
                pts = np.array([[x * scale, y * scale] for x, y in zone.polygon], dtype=np.int32)
                cv2.fillPoly(zm, [pts], 255)
                self._zone_masks[zone.name] = zm
            total = cv2.countNonZero(zm)
            out[zone.name] = cv2.countNonZero(cv2.bitwise_and(mask, zm)) / total if total else 0.0
        return out

    def process(self, frame: Frame, params: RuleParams) -> Analysis:
        """Analyse one frame with the active mode's thresholds; blocking."""
        t = frame.t
        self._check_size(frame.image)
        mo = self._motion.apply(frame.image, t)
        metrics = self._tamper.measure(mo.gray, t, params.tamper) if self._cam.tamper else None
        blind = metrics is not None and bool(
            {"covered", "blurred"} & set(tamper_reasons(metrics, params.tamper))
        )
        detections: list[tracker.Detection] = []
        detected = False
        if self._detector is not None and not blind:
            rois: list[Box] | None = list(mo.blobs)
            due = t - self._last_detect >= self._cam.tracker.recheck_s
            recheck = bool(self._people.tracks) and due
            if recheck and rois is not None:
                # People standing still make no motion; look again where they were.
                rois.extend(tr.box for tr in self._people.tracks)
            if frame.first or mo.fraction >= self._cam.motion.full_frame_fraction:
                rois = None  # census after (re)open, or the whole view changed
            if rois is None or rois:
                detections = self._detector.detect(frame.image, rois)
                detected = True
                self.detector_runs += 1
                self._last_detect = t
        if detected:
            self._people = tracker.update(self._people, detections, t, self._tparams)
        else:
            self._people = tracker.age(self._people, t, self._tparams)
        confirmed = tracker.confirmed(self._people, self._tparams)
        statics: tuple[SceneObject, ...] = ()
        if self._need_static:
            statics = self._statics(mo.blobs, mo.colour, mo.mask, mo.scale, t, detections)
        scene = Scene(
            t=t,
            minute_of_day=minute_of_day(frame.wall_ms),
            people=tuple(
                SceneObject(tr.id, tr.label, tr.box, tr.score, tr.first_seen) for tr in confirmed
            ),
            statics=statics,
            tamper=metrics,
            zone_motion=self._zone_motion(mo.mask, mo.scale) if self._motion_zones else {},
        )
        return Analysis(scene, frame, detected, mo.fraction, mo.blobs)

    def _statics(
        self,
        blobs: tuple[Box, ...],
        colour: np.ndarray,
        mask: np.ndarray,
        scale: float,
        t: float,
        detections: list[tracker.Detection],
    ) -> tuple[SceneObject, ...]:
        # Blob centres jitter by a pixel of the small mask; stillness must tolerate that.
        bparams = tracker.TrackerParams(
            iou_min=0.2,
            jump_ratio=1.0,
            max_age_s=1.0,
            min_hits=3,
            still_px=max(self._cam.tracker.still_px, 2.0 / scale),
        )
        self._blobs = tracker.update(
            self._blobs, [tracker.Detection(b, 1.0, OBJECT) for b in blobs], t, bparams
        )
        settle = self._cam.static.settle_s
        settled = [
            tr for tr in tracker.confirmed(self._blobs, bparams) if t - tr.still_since >= settle
        ]
        known = [tracker.Detection(tr.box, tr.score, tr.label) for tr in self._people.tracks]
        known.extend(d for d in detections if d.label != "person")
        return self._static.update(colour, mask, scale, t, settled, known)

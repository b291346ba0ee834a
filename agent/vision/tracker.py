"""Pure IoU tracker with centroid fallback: stable track ids for detections over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.vision.geometry import Box, Point, centre, distance, iou


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in one frame, in captured-frame pixels."""

    box: Box
    score: float
    label: str


@dataclass(frozen=True, slots=True)
class Track:
    """An object followed over frames; `still_since` is when it last moved more than still_px."""

    id: int
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int
    anchor: Point
    still_since: float


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Matching and lifetime thresholds; times in seconds, distances in pixels."""

    iou_min: float = 0.3
    # A match by centre distance when IoU fails (fast movers at low fps), relative to box size.
    jump_ratio: float = 0.75
    max_age_s: float = 2.0
    min_hits: int = 2
    still_px: float = 6.0


@dataclass(frozen=True, slots=True)
class TrackerState:
    """All live tracks and the next id to hand out."""

    tracks: tuple[Track, ...] = ()
    next_id: int = 1


def _size(box: Box) -> float:
    return float(max(box[2], box[3], 1.0))


def _pairs(
    tracks: Sequence[Track], detections: Sequence[Detection], params: TrackerParams
) -> list[tuple[float, int, int]]:
    """Candidate (cost, track index, detection index) pairs, cheapest first."""
    pairs: list[tuple[float, int, int]] = []
    for ti, track in enumerate(tracks):
        for di, det in enumerate(detections):
            if det.label != track.label:
                continue
            overlap = iou(track.box, det.box)
            if overlap >= params.iou_min:
                pairs.append((1.0 - overlap, ti, di))
                continue
            gap = distance(centre(track.box), centre(det.box))
            if gap <= params.jump_ratio * _size(track.box):
                # Ranked after every IoU match: cost 1 plus the normalised distance.
                pairs.append((1.0 + gap / _size(track.box), ti, di))
    pairs.sort()
    return pairs


def _follow(track: Track, det: Detection, t: float, params: TrackerParams) -> Track:
    here = centre(det.box)
    moved = distance(here, track.anchor) > params.still_px
    return replace(
        track,
        box=det.box,
        score=det.score,
        last_seen=t,
        hits=track.hits + 1,
        anchor=here if moved else track.anchor,
        still_since=t if moved else track.still_since,
    )


def update(
    state: TrackerState, detections: Sequence[Detection], t: float, params: TrackerParams
) -> TrackerState:
    """Match detections of the frame at time t to tracks; new ids for the rest; drop stale ones."""
    tracks = list(age(state, t, params).tracks)
    matched_tracks: set[int] = set()
    matched_dets: set[int] = set()
    for _cost, ti, di in _pairs(tracks, detections, params):
        if ti in matched_tracks or di in matched_dets:
            continue
        matched_tracks.add(ti)
        matched_dets.add(di)
        tracks[ti] = _follow(tracks[ti], detections[di], t, params)
    next_id = state.next_id
    for di, det in enumerate(detections):
        if di in matched_dets:
            continue
        tracks.append(
            Track(
                id=next_id,
                label=det.label,
                box=det.box,
                score=det.score,
                first_seen=t,
                last_seen=t,
                hits=1,
                anchor=centre(det.box),
                still_since=t,
            )
        )
        next_id += 1
    return TrackerState(tracks=tuple(tracks), next_id=next_id)


def age(state: TrackerState, t: float, params: TrackerParams) -> TrackerState:
    """Drop tracks not seen for longer than max_age_s at time t (a frame without detection)."""
    alive = tuple(tr for tr in state.tracks if t - tr.last_seen <= params.max_age_s)
    if len(alive) == len(state.tracks):
        return state
    return TrackerState(tracks=alive, next_id=state.next_id)


def confirmed(state: TrackerState, params: TrackerParams) -> tuple[Track, ...]:
    """Tracks seen at least min_hits times: single-frame false positives never reach the rules."""
    return tuple(tr for tr in state.tracks if tr.hits >= params.min_hits)

"""Pure `camera_offline` events: `start` when a camera stops giving frames, `end` when it is back.

Times are the pipeline's clock (seconds); the caller maps them to wall time. A reopen attempt
that fails without delivering a frame means the camera is gone (a recording that simply ended
and reopens at once, or a stream that drops and comes straight back, makes no event).
"""

from __future__ import annotations

from agent.vision.lifecycle import Transition

RULE = "camera_offline"


def went_offline(track: str, last_frame_t: float, now_t: float, reason: str) -> Transition:
    """The start: the camera has given no frame since `last_frame_t` (its last one)."""
    return Transition(
        state="start",
        track=track,
        rule=RULE,
        zone=None,
        count=0,
        score=0.0,
        boxes=(),
        started_t=last_frame_t,
        ended_t=None,
        t=now_t,
        detail=reason,
    )


def back_online(start: Transition, now_t: float) -> Transition:
    """The end of an offline event: a frame arrived at `now_t`."""
    return Transition(
        state="end",
        track=start.track,
        rule=RULE,
        zone=None,
        count=0,
        score=0.0,
        boxes=(),
        started_t=start.started_t,
        ended_t=now_t,
        t=now_t,
        detail="",
    )

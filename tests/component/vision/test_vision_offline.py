"""`camera_offline`: a source gone starts it, its return ends it; a looping file never does."""

from __future__ import annotations

import numpy as np

from agent.camera.sources import FrameSource
from agent.errors import DeviceError
from agent.vision.config import CameraConfig
from agent.vision.gateway import Gateway
from tests.kits.aio import wait_until
from tests.kits.vision import ListSource, MemoryMedia, MemorySink, camera


class Unplugged:
    """A USB camera or file source: gives frames, is gone for some opens, then back."""

    def __init__(self, gone_opens: set[int]) -> None:
        self.opens = 0
        self.gone = gone_opens
        self.frames = [np.full((120, 160, 3), 100 + i, np.uint8) for i in range(3)]

    def __call__(self, cam: CameraConfig) -> FrameSource:
        self.opens += 1
        if self.opens in self.gone:
            raise DeviceError("no such device")
        return ListSource(self.frames)


def gateway(factory, sink) -> Gateway:
    cam = camera(
        id="c",
        source="v4l2:0",
        fps=50,
        tamper=False,
        stall_s=0.2,
        backoff={"initial_s": 0.05, "max_s": 0.1},
    )
    return Gateway([cam], sink, MemoryMedia(), source_factory=factory, rng=lambda: 0.0)


async def test_a_source_gone_starts_camera_offline_and_its_return_ends_it():
    sink, source = MemorySink(), Unplugged(gone_opens=set(range(2, 12)))
    async with gateway(source, sink) as gw:
        await wait_until(lambda: source.opens >= 5 and gw.status()["c"]["frames"] > 3, 30, "back")
        await wait_until(lambda: len(sink.bodies("camera_offline")) == 2, 30, "end")
    start, end = sink.bodies("camera_offline")
    assert (start["state"], end["state"]) == ("start", "end")
    assert start["track"] == end["track"] and start["count"] == 0 and start["boxes"] == []
    assert end["ended_ms"] >= end["started_ms"] == start["started_ms"]


async def test_a_recording_that_loops_is_never_offline():
    sink, source = MemorySink(), Unplugged(gone_opens=set())
    async with gateway(source, sink) as gw:
        await wait_until(lambda: source.opens >= 4, 30, "several loops")
        assert gw.status()["c"]["reopenings"] >= 3
    assert sink.bodies("camera_offline") == []


async def test_stopping_while_offline_ends_the_event():
    sink, source = MemorySink(), Unplugged(gone_opens=set(range(2, 10_000)))
    async with gateway(source, sink):
        await wait_until(lambda: sink.bodies("camera_offline"), 30, "offline")
    start, end = sink.bodies("camera_offline")
    assert end["state"] == "end" and end["track"] == start["track"]


async def test_a_camera_that_never_opens_is_offline_from_the_start():
    sink, source = MemorySink(), Unplugged(gone_opens=set(range(1, 10_000)))
    async with gateway(source, sink):
        await wait_until(lambda: sink.bodies("camera_offline"), 30, "offline")
    start = sink.bodies("camera_offline")[0]
    assert start["started_ms"] <= sink.bodies("camera_offline")[1]["ended_ms"]

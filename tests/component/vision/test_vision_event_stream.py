"""Pulled camera event streams against a local streaming server: auth, heartbeats, pictures,
torn parts, slow senders, wrong boundaries, oversized pictures, reconnects with backoff."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import asynccontextmanager

import pytest

from agent.errors import ConfigError
from agent.vision.alarm_parse import parse_code_line
from agent.vision.alarms import AlarmForwarder
from agent.vision.config import ForwardingConfig
from agent.vision.event_stream import EventStream
from agent.vision.events_config import CameraEventsConfig
from agent.vision.publish import DetectionWriter
from tests.kits.aio import wait_until
from tests.kits.camera_bodies import (
    alert_block,
    alert_xml,
    camera_jpeg,
    code_block,
    heartbeat_block,
    noise_jpeg,
    stream_block,
)
from tests.kits.camera_server import HANG, CameraStreamServer, trickle
from tests.kits.vision import MemoryMedia, MemorySink, background

PASSWORD = "cam-pass-5f3a9e"
ALERT = "multipart/mixed; boundary=boundary"
CODES = "multipart/x-mixed-replace; boundary=myboundary"


class Delays:
    """Injected sleep: records the backoff delays, waits a token time."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0.01)


@asynccontextmanager
async def subscribed(server, kind="alert_stream", auth="digest", password=PASSWORD, **extra):
    cfg = CameraEventsConfig(
        kind=kind,
        url=server.url(),
        auth=auth,
        username="admin",
        password_file="unused",
        idle_timeout_s=extra.pop("idle_timeout_s", 5),
        backoff={"initial_s": 0.2, "max_s": 1.0},
        **extra,
    )
    sink, media, delays = MemorySink(), MemoryMedia(), Delays()
    fwd = AlarmForwarder(
        ForwardingConfig(hold_s=30, cooldown_s=0),
        DetectionWriter(sink, media),
        mode=lambda: "normal",
        clock=time.monotonic,
        now_ms=lambda: time.time_ns() // 1_000_000,
        sleep=asyncio.sleep,
        latest_image=lambda cam: background(),
        track_prefix="t",
    )
    async with (
        fwd,
        EventStream(
            "cam-1",
            cfg,
            password,
            fwd.handle,
            clock=time.monotonic,
            sleep=delays,
            rng=random.Random(1),
        ) as stream,
    ):
        stream.sink, stream.media, stream.delays = sink, media, delays
        yield stream


def states(stream):
    return [(b["rule"], b["zone"], b["state"]) for b in stream.sink.bodies()]


async def test_alert_stream_with_digest_pictures_and_heartbeats():
    pic = camera_jpeg(seed=4)
    script = [
        heartbeat_block(),
        alert_block(alert_xml("linedetection", pictures=1)),
        stream_block("image/jpeg", pic, "boundary"),
        heartbeat_block(),
        alert_block(alert_xml("linedetection", count=2)),  # a repeat while it lasts
        alert_block(alert_xml("linedetection", "inactive")),
        heartbeat_block(),
        HANG,
    ]
    async with (
        CameraStreamServer(ALERT, [script], password=PASSWORD) as server,
        subscribed(server) as stream,
    ):
        await wait_until(lambda: stream.status()["heartbeats"] == 3)
        assert states(stream) == [
            ("linedetection", "region-1", "start"),
            ("linedetection", "region-1", "end"),
        ]
        (ref,) = stream.sink.bodies()[0]["photos"]
        assert stream.media.photos[ref["media_id"]] == pic  # the camera's own picture
        st = stream.status()
        assert (st["state"], st["connects"], st["reconnects"]) == ("connected", 1, 0)
        assert st["skipped"] == 0
        assert server.refused == 1  # the digest challenge, answered once


async def test_event_codes_with_basic_auth_start_stop_and_channel():
    script = [
        code_block("VideoMotion", "Start"),
        stream_block("text/plain", b"Heartbeat", "myboundary"),
        code_block("CrossLineDetection", "Start", index=2),
        stream_block(
            "text/plain",
            b'Code=AlarmLocal;action=Pulse;index=0;data={\n "Name" : "door"\n}',
            "myboundary",
        ),
        code_block("VideoMotion", "Stop"),
        HANG,
    ]
    async with (
        CameraStreamServer(CODES, [script], auth="basic", password=PASSWORD) as server,
        subscribed(server, kind="event_codes", auth="basic") as stream,
    ):
        await wait_until(lambda: len(stream.sink.bodies()) == 4)
        assert states(stream) == [
            ("videomotion", None, "start"),
            ("crosslinedetection", "channel-2", "start"),
            ("alarmlocal", None, "start"),
            ("videomotion", None, "end"),
        ]
        assert stream.status()["heartbeats"] == 1
        # The gateway's frame is the photo when the camera sends none.
        assert all(len(b["photos"]) == 1 for b in stream.sink.bodies()[:3])


async def test_torn_and_slow_blocks_and_a_lost_stream_reconnects_and_ends_what_was_open():
    block = alert_block(alert_xml("fielddetection", pictures=1))
    pic_block = stream_block("image/jpeg", camera_jpeg(seed=5), "boundary")
    first = [*trickle(block + pic_block, 97, 0.001), block[:40]]  # slow, then torn mid-block
    second = [*trickle(alert_block(alert_xml("vmd")), 13, 0.001), HANG]
    async with (
        CameraStreamServer(ALERT, [first, second], password=PASSWORD) as server,
        subscribed(server) as stream,
    ):
        await wait_until(lambda: ("vmd", "region-1", "start") in states(stream))
        assert states(stream) == [
            ("fielddetection", "region-1", "start"),
            ("fielddetection", "region-1", "end"),  # the stream went: its alarm ended
            ("vmd", "region-1", "start"),
        ]
        st = stream.status()
        assert (st["connects"], st["reconnects"]) == (2, 1)
        assert st["last_gap_s"] is not None and st["last_gap_s"] >= 0
        assert "closed" in st["last_error"]
        assert stream.delays.asked and all(0.1 <= d <= 0.2 for d in stream.delays.asked)


async def test_wrong_boundary_wrong_password_and_silence_back_off_and_recover(caplog):
    wrong = [b"--notmyboundary\r\nContent-Type: text/plain\r\n\r\nCode=X;action=Start;index=0\r\n"]
    good = [code_block("VideoMotion", "Start"), HANG]
    silent = [HANG]
    async with (
        CameraStreamServer(CODES, [wrong, silent, good], password=PASSWORD) as server,
        subscribed(server, kind="event_codes", idle_timeout_s=0.3) as stream,
    ):
        await wait_until(lambda: states(stream) == [("videomotion", None, "start")])
        st = stream.status()
        assert (st["connects"], st["reconnects"]) == (3, 2)
        delays = stream.delays.asked
        assert len(delays) == 2 and delays[1] <= 0.4  # capped exponential, with jitter
    assert "malformed multipart" in caplog.text and "ReadTimeout" in caplog.text
    async with (
        CameraStreamServer(CODES, [good], password=PASSWORD) as server,
        subscribed(server, kind="event_codes", password="wrong-pass") as stream,
    ):
        await wait_until(lambda: len(stream.delays.asked) >= 3)
        assert stream.sink.bodies() == []
        assert "HTTP 401" in stream.status()["last_error"]
        assert stream.status()["state"] in {"backoff", "connecting"}
        caps = stream.delays.asked
        assert max(caps) <= 1.0 and caps[2] >= 0.4  # doubled to the cap
    assert PASSWORD not in caplog.text and "wrong-pass" not in caplog.text


async def test_oversized_picture_and_garbage_blocks_are_skipped_not_fatal():
    big = stream_block("image/jpeg", noise_jpeg(200_000), "boundary")
    script = [
        stream_block("application/xml", b"<NotAnAlert/>", "boundary"),
        stream_block("image/jpeg", camera_jpeg(), "boundary"),  # announced by nothing
        alert_block(alert_xml("regionentrance", pictures=1)),
        big,
        heartbeat_block(),
        HANG,
    ]
    async with (
        CameraStreamServer(ALERT, [script], password=PASSWORD) as server,
        subscribed(server, max_picture_bytes=100_000) as stream,
    ):
        await wait_until(lambda: stream.status()["heartbeats"] == 1)
        (start,) = stream.sink.bodies()
        assert start["rule"] == "regionentrance"
        (ref,) = start["photos"]  # the gateway's frame stands in
        assert len(stream.media.photos[ref["media_id"]]) < 200_000
        st = stream.status()
        assert (st["skipped"], st["connects"]) == (3, 1)


def test_code_lines_and_config():
    alarm = parse_code_line("c", b"Code=VideoMotion;action=Stop;index=0", 60)
    assert (alarm.rule, alarm.active, alarm.hold_s) == ("videomotion", False, 60)
    assert parse_code_line("c", b"Heartbeat", 60) is None
    with pytest.raises(ValueError):
        CameraEventsConfig(kind="event_codes", url="http://admin:pw@10.0.0.5/cgi-bin/x")
    with pytest.raises(ValueError):
        CameraEventsConfig(kind="event_codes", url="http://10.0.0.5/x", username="admin")
    with pytest.raises(ValueError):
        CameraEventsConfig(kind="other", url="http://10.0.0.5/x")
    cfg = CameraEventsConfig(
        kind="alert_stream", url="http://10.0.0.5/a", username="admin", password_file="/nonexist"
    )
    with pytest.raises(ConfigError, match=r"events\.password_file"):
        cfg.load_password()

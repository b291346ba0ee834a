"""Multipart camera pushes: the notification plus the camera's picture, limits, broken bodies."""

from __future__ import annotations

import asyncio
import contextlib

import cv2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import CodecError
from agent.vision.alarm_multipart import alarm_from_parts, checked_jpeg
from agent.vision.alarm_parse import CameraAlarm, parse_code_line
from agent.vision.alarms import AlarmForwarder
from agent.vision.config import AlarmHttpConfig
from agent.vision.gateway import Gateway
from agent.vision.multipart import Limits, MultipartReader, PartLimitError, boundary_of
from agent.vision.publish import DetectionWriter
from tests.kits.alarm_http import TOKEN, http, send
from tests.kits.camera_bodies import (
    alert_xml,
    camera_jpeg,
    form_part,
    json_push,
    multipart,
    noise_jpeg,
    xml_push,
)
from tests.kits.vision import MemoryMedia, MemorySink, background, no_sleep

FORM = "multipart/form-data; boundary=MIME_boundary"
SMALL_PIC = camera_jpeg(width=32, height=24)


@pytest.fixture
async def gateway():
    cfg = AlarmHttpConfig(
        token=TOKEN,
        port=0,
        cameras=["cam-gate-1"],
        read_timeout_s=0.5,
        multipart={
            "max_body_bytes": 400_000,
            "max_parts": 4,
            "max_part_bytes": 4096,
            "max_picture_bytes": 100_000,
            "body_timeout_s": 2,
        },
    )
    sink, media = MemorySink(), MemoryMedia()
    async with Gateway([], sink, media, alarm_http=cfg, sleep=no_sleep) as gw:
        gw.sink, gw.media = sink, media
        yield gw


def push(body: bytes, ctype: str = FORM) -> bytes:
    return http(body=body, headers={"Content-Type": ctype})


async def test_multipart_push_with_picture_makes_it_the_events_photo(gateway):
    # Before: 415 Unsupported Media Type for every multipart push.
    pic = camera_jpeg()
    status, payload, data = await send(gateway.alarm_port, push(xml_push(pictures=[pic])))
    assert status == 200, data[:300]
    assert payload == {"ok": True, "rule": "linedetection", "events": ["start"], "picture": True}
    (body,) = gateway.sink.bodies()
    assert (body["origin"], body["rule"], body["zone"]) == ("camera", "linedetection", "region-1")
    (ref,) = body["photos"]
    assert gateway.media.photos[ref["media_id"]] == pic  # the camera's bytes, untouched
    assert gateway.media.sent == [(ref["media_id"], "evt-1")]


async def test_json_part_and_picture_and_mixed_type(gateway):
    pic = camera_jpeg(seed=2)
    body = json_push("FaceDetection", pic)
    ctype = "multipart/mixed; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"
    status, payload, _ = await send(gateway.alarm_port, push(body, ctype))
    assert (status, payload["rule"], payload["picture"]) == (200, "facedetection", True)
    (ref,) = gateway.sink.bodies()[0]["photos"]
    assert gateway.media.photos[ref["media_id"]] == pic


async def test_without_a_usable_picture_the_event_still_goes(gateway):
    # No picture, a picture over the limit, a part that is not a JPEG: the event is kept.
    cases = [
        xml_push("vmd"),
        xml_push("linedetection", [noise_jpeg(150_000)]),
        xml_push("fielddetection", [b"\xff\xd8not really a jpeg" * 10]),
    ]
    for body in cases:
        status, payload, data = await send(gateway.alarm_port, push(body))
        assert (status, payload["events"], payload["picture"]) == (200, ["start"], False), data
    assert [b["photos"] for b in gateway.sink.bodies()] == [[], [], []]  # no frame to fall back on
    assert gateway.alarm_status()["requests"]["no_picture"] == 3


async def test_forwarder_falls_back_to_the_gateways_frame():
    sink, media = MemorySink(), MemoryMedia()
    fwd = AlarmForwarder(
        AlarmHttpConfig(token=TOKEN),
        DetectionWriter(sink, media),
        mode=lambda: "normal",
        clock=lambda: 1.0,
        now_ms=lambda: 1_000,
        sleep=no_sleep,
        latest_image=lambda cam: background(),
        track_prefix="r",
    )
    pic = camera_jpeg()
    await fwd.handle(CameraAlarm("cam-1", "vmd", True, picture=pic))
    await fwd.handle(CameraAlarm("cam-1", "tamper", True))
    own, fallback = (b["photos"][0]["media_id"] for b in sink.bodies())
    assert media.photos[own] == pic
    assert media.photos[fallback].startswith(b"\xff\xd8") and media.photos[fallback] != pic


PARTS5 = [form_part(f"p{i}", f"p{i}.txt", "text/plain", b"x") for i in range(5)]


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (multipart(PARTS5), FORM, 413),  # more parts than max_parts
        (
            multipart([form_part("e", "e.xml", "application/xml", alert_xml() + b" " * 5000)]),
            FORM,
            413,
        ),  # a text part over max_part_bytes
        (xml_push(pictures=[camera_jpeg()]), "multipart/form-data; boundary=other", 400),
        (xml_push(pictures=[camera_jpeg()]), "multipart/form-data", 400),  # no boundary
        (xml_push()[:-20], FORM, 400),  # closing boundary missing
        (multipart([form_part("pic", "a.jpg", "image/jpeg", camera_jpeg())]), FORM, 400),
        (xml_push(pictures=[camera_jpeg()]), "multipart/related; boundary=MIME_boundary", 415),
    ],
    ids=["parts", "part-size", "wrong-boundary", "no-boundary", "torn", "no-event", "type"],
)
async def test_broken_or_oversized_multipart_is_refused(gateway, body, ctype, status, caplog):
    got, payload, data = await send(gateway.alarm_port, push(body, ctype))
    assert got == status, data[:300]
    assert payload["ok"] is False
    assert gateway.sink.events == []
    assert TOKEN not in caplog.text


async def test_whole_body_over_the_multipart_limit_is_not_read(gateway):
    raw = http(body=b"", headers={"Content-Type": FORM, "Content-Length": "400001"})
    status, payload, _ = await send(gateway.alarm_port, raw)
    assert status == 413 and "400000" in payload["error"]


async def test_slow_and_vanishing_senders(gateway):
    body = xml_push(pictures=[camera_jpeg()])
    raw = push(body)
    # Slow: half the body, then silence past read_timeout_s.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.alarm_port)
    writer.write(raw[: len(raw) - len(body) // 2])
    await writer.drain()
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ")
    # Vanishing: the connection closes mid-picture.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.alarm_port)
    writer.write(raw[:-100])
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 400 ")
    # Trickled in small slices with pauses under the read timeout: accepted.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.alarm_port)
    for i in range(0, len(raw), 4096):
        writer.write(raw[i : i + 4096])
        await writer.drain()
        await asyncio.sleep(0.01)
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert gateway.sink.bodies()[0]["photos"]


def test_reader_parses_any_slicing_and_counts_limits():
    pic = camera_jpeg()
    body = xml_push(pictures=[pic, pic])
    for step in (1, 7, 4096, len(body)):
        parts = []
        reader = MultipartReader(b"MIME_boundary", Limits(), parts.append)
        for i in range(0, len(body), step):
            reader.feed(body[i : i + step])
        reader.finish()
        assert [p.filename for p in parts] == [
            "linedetection.xml",
            "linedetectionpicture.jpg",
            "linedetectionpicture.jpg",
        ]
        assert parts[1].data == pic and parts[1].is_picture and not parts[0].is_picture
    reader = MultipartReader(b"MIME_boundary", Limits(max_parts=2), lambda p: None)
    with pytest.raises(PartLimitError):
        reader.feed(body)
    with pytest.raises(PartLimitError):
        reader.feed(b"more")  # stays failed
    assert boundary_of('multipart/mixed; boundary="a b"') == b"a b"
    with pytest.raises(CodecError):
        boundary_of("multipart/mixed; boundary=" + "x" * 71)


def test_checked_jpeg_refuses_non_jpegs():
    pic = camera_jpeg()
    assert checked_jpeg(pic) == pic
    _, png = cv2.imencode(".png", background(64, 64))
    assert checked_jpeg(png.tobytes()) is None
    assert checked_jpeg(pic[: len(pic) // 2]) is None  # torn mid-picture
    assert checked_jpeg(b"\xff\xd8garbage") is None


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(1, 400), min_size=1, max_size=40))
def test_any_slicing_gives_the_same_parts(cuts):
    body = xml_push(pictures=[SMALL_PIC])
    parts = []
    reader = MultipartReader(b"MIME_boundary", Limits(), parts.append)
    i = 0
    for n in cuts:
        reader.feed(body[i : i + n])
        i += n
    reader.feed(body[i:])
    reader.finish()
    assert [p.data for p in parts][1] == SMALL_PIC
    alarm, pictures = alarm_from_parts("c", parts)
    assert (alarm.rule, pictures) == ("linedetection", [SMALL_PIC])


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda cut, junk: xml_push(pictures=[SMALL_PIC])[:cut] + junk,
            st.integers(0, 800),
            st.binary(max_size=80),
        ),
    )
)
def test_garbage_gives_codec_errors_only(data):
    parts = []
    reader = MultipartReader(b"MIME_boundary", Limits(max_parts=4), parts.append)
    with contextlib.suppress(CodecError):
        reader.feed(data)
        reader.finish()
        alarm_from_parts("c", parts)
    with contextlib.suppress(CodecError):
        parse_code_line("c", data, 60)

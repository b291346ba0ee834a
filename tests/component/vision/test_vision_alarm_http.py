"""The alarm endpoint: good, bad and unauthenticated pushes; camera-origin event lifecycle."""

from __future__ import annotations

import asyncio
import base64

import pytest

from agent.errors import CodecError
from agent.vision.alarm_http import HttpError, parse_head
from agent.vision.alarm_parse import CameraAlarm, parse_alarm
from agent.vision.alarms import AlarmForwarder
from agent.vision.config import AlarmHttpConfig
from agent.vision.gateway import Gateway
from agent.vision.publish import DetectionWriter
from tests.kits.alarm_http import TOKEN, http, js, send
from tests.kits.camera_bodies import alert_xml
from tests.kits.vision import MemoryMedia, MemorySink, background, no_sleep


@pytest.fixture
async def gateway():
    cfg = AlarmHttpConfig(
        token=TOKEN,
        port=0,
        cameras=["cam-gate-1"],
        max_body_bytes=2048,
        read_timeout_s=0.5,
        urgent={"emergency": ["shelteralarm"]},
    )
    sink, media = MemorySink(), MemoryMedia()
    async with Gateway([], sink, media, alarm_http=cfg, sleep=no_sleep) as gw:
        gw.sink = sink
        yield gw


async def test_json_push_active_then_inactive_is_one_camera_event(gateway):
    port = gateway.alarm_port
    status, payload, _ = await send(port, http(body=js({"type": "LineDetection", "zone": "gate"})))
    assert (status, payload["events"]) == (200, ["start"])
    status, payload, _ = await send(port, http(body=js({"type": "linedetection", "zone": "gate"})))
    assert (status, payload["events"]) == (200, [])  # a repeat while active
    status, payload, _ = await send(
        port, http(body=js({"type": "linedetection", "zone": "gate", "state": "inactive"}))
    )
    assert (status, payload["events"]) == (200, ["end"])
    bodies = gateway.sink.bodies()
    assert [(b["origin"], b["rule"], b["zone"], b["state"]) for b in bodies] == [
        ("camera", "linedetection", "gate", "start"),
        ("camera", "linedetection", "gate", "end"),
    ]
    assert bodies[0]["track"] == bodies[1]["track"]
    assert bodies[0]["camera_id"] == "cam-gate-1" and bodies[1]["ended_ms"] is not None
    assert {p for _, _, p in gateway.sink.events} == {2}
    assert gateway.alarm_status()["requests"]["accepted"] == 3


async def test_vendor_xml_and_basic_auth(gateway):
    basic = base64.b64encode(f"admin:{TOKEN}".encode()).decode()
    raw = http(
        body=alert_xml(state="active", region=2),
        headers={
            "Content-Type": "application/xml; charset=UTF-8",
            "Authorization": f"Basic {basic}",
        },
    )
    status, payload, _ = await send(gateway.alarm_port, raw)
    assert (status, payload["rule"], payload["events"]) == (200, "linedetection", ["start"])
    (body,) = gateway.sink.bodies()
    assert (body["origin"], body["zone"], body["count"]) == ("camera", "region-2", 1)


async def test_urgent_types_go_at_priority_zero_in_their_mode(gateway):
    gateway.set_mode("emergency")
    status, *_ = await send(gateway.alarm_port, http(body=js({"type": "shelteralarm"})))
    assert status == 200
    assert [p for _, _, p in gateway.sink.events] == [0]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<EventNotificationAlert><eventType>&lol2;</eventType></EventNotificationAlert>"""
UTF16 = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><EventNotificationAlert/>'


@pytest.mark.parametrize(
    "raw, status",
    [
        (http(auth=False, body=js({"type": "vmd"})), 401),
        (
            http(body=js({"type": "vmd"}), headers={"Authorization": "Bearer wrong-token-xxxxxx"}),
            401,
        ),
        (http(body=js({"type": "vmd"}), headers={"Authorization": "Basic !!notbase64"}), 401),
        (http(path=f"/alarm/cam-gate-1?token={TOKEN}", auth=False, body=js({"type": "vmd"})), 401),
        (http(path="/alarm/cam-unknown", body=js({"type": "vmd"})), 404),
        (http(path="/status", body=js({"type": "vmd"})), 404),
        (http(method="GET"), 405),
        (http(body=b"{not json"), 400),
        (http(body=js(["vmd"])), 400),
        (http(body=js({"type": "vmd", "extra": 1})), 400),
        (http(body=js({"type": "v m d"})), 400),
        (http(body=b'{"type": "vmd", "score": NaN}'), 400),
        (http(body=js({"type": "vmd", "state": "maybe"})), 400),
        (http(body=BILLION_LAUGHS, headers={"Content-Type": "application/xml"}), 400),
        (http(body=UTF16.encode("utf-16"), headers={"Content-Type": "text/xml"}), 400),
        (http(body=b"<Other/>", headers={"Content-Type": "text/xml"}), 400),
        (http(body=b"<EventNotificationAlert>", headers={"Content-Type": "text/xml"}), 400),
        (http(body=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415),
        (http(body=b"", headers={"Content-Length": None}), 411),
        (http(body=b"", headers={"Content-Length": "-5"}), 400),
        (http(body=b"", headers={"Content-Length": "99999"}), 413),
        (http(body=b"", headers={"Transfer-Encoding": "chunked"}), 501),
        (b"POST /alarm/cam-gate-1 HTTP/2.0\r\n\r\n", 505),
        (b"HELLO\r\n\r\n", 400),
        (b"POST /alarm/cam-gate-1 HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST /alarm/cam-gate-1 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"POST /alarm/cam-gate-1 HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
async def test_bad_or_unauthenticated_posts_are_refused(gateway, raw, status, caplog):
    got, payload, data = await send(gateway.alarm_port, raw)
    assert got == status, data[:300]
    assert payload["ok"] is False and payload["error"]
    assert gateway.sink.events == []
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    if status == 401:
        assert b"WWW-Authenticate: Bearer" in data


async def test_slow_client_times_out_and_big_body_is_not_read(gateway):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.alarm_port)
    writer.write(b"POST /alarm/cam-gate-1 HTTP/1.1\r\nHost: gw\r\n")  # never finishes the head
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ")
    status, _, _ = await send(
        gateway.alarm_port, http(body=b"", headers={"Content-Length": "2049"})
    )
    assert status == 413


async def test_expect_100_continue_is_answered(gateway):
    body = js({"type": "vmd"})
    raw = http(headers={"Expect": "100-continue"}, body=b"")
    raw = raw.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.alarm_port)
    writer.write(raw)
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 ")


def test_parse_head_is_strict():
    head = parse_head(b"POST /alarm/x?a=1 HTTP/1.1\r\nContent-Length: 3\r\nX-A:  b \r\n\r\n")
    assert (head.method, head.path, head.query) == ("POST", "/alarm/x", "a=1")
    assert head.headers == {"content-length": "3", "x-a": "b"}
    for bad in (
        b"POST /a HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n",
        b"post /a HTTP/1.1\r\n\r\n",
        b"POST a HTTP/1.1\r\n\r\n",
        "POST /\u00e9 HTTP/1.1\r\n\r\n".encode(),
    ):
        with pytest.raises(HttpError):
            parse_head(bad)


def test_parse_vendor_json_and_xml_states():
    alarm = parse_alarm(
        "c",
        "application/json",
        js({"ipAddress": "10.0.0.2", "eventType": "VMD", "eventState": "inactive"}),
    )
    assert alarm == CameraAlarm("c", "vmd", False)
    xml = parse_alarm("c", "text/xml", alert_xml(state="inactive", region=2))
    assert (xml.rule, xml.active, xml.zone) == ("linedetection", False, "region-2")
    with pytest.raises(CodecError):
        parse_alarm("c", "text/xml", b'<?xml version="1.0" encoding="latin-1"?><a/>')


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


async def test_forwarder_ends_silent_alarms_and_cools_down():
    clock = Clock()
    sink, media = MemorySink(), MemoryMedia()
    cfg = AlarmHttpConfig(token=TOKEN, hold_s=10, cooldown_s=30)
    image = background()
    fwd = AlarmForwarder(
        cfg,
        DetectionWriter(sink, media),
        mode=lambda: "normal",
        clock=clock,
        now_ms=lambda: 1_000_000,
        sleep=no_sleep,
        latest_image=lambda cam: image if cam == "cam-1" else None,
        track_prefix="run",
    )
    alarm = CameraAlarm("cam-1", "vmd", True)
    assert await fwd.handle(alarm) == ["start"]
    clock.t = 109.0
    assert await fwd.handle(alarm) == []  # repeat keeps it alive
    clock.t = 118.0
    await fwd.sweep()
    assert fwd.open_events() == 1
    clock.t = 119.5
    await fwd.sweep()  # no repeat for 10.5 s: over
    assert fwd.open_events() == 0
    clock.t = 125.0
    assert await fwd.handle(alarm) == []  # within the 30 s cool-down
    clock.t = 150.0
    assert await fwd.handle(alarm) == ["start"]
    clock.t = 151.0
    await fwd.__aexit__(None, None, None)  # shutdown ends what is open
    states = [(b["state"], b["track"]) for b in sink.bodies()]
    assert states == [
        ("start", "cam-1.run-1"),
        ("end", "cam-1.run-1"),
        ("start", "cam-1.run-2"),
        ("end", "cam-1.run-2"),
    ]
    end = sink.bodies()[1]
    assert end["ended_ms"] - end["started_ms"] == 9000  # last seen at 109 s, started at 100 s
    assert len(sink.bodies()[0]["photos"]) == 1  # the camera's latest frame as the snapshot

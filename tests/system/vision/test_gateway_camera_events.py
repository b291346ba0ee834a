"""Camera events end to end: a multipart push and a pulled event stream, each with the camera's
picture, reach a real Mosquitto as detection events with their photo chunks and media events."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from agent.clock import SystemClock
from agent.config.model import Config
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.camera_bodies import alert_block, alert_xml, camera_jpeg, stream_block, xml_push
from tests.kits.camera_server import HANG, CameraStreamServer
from tests.kits.mqtt import Watcher
from tests.kits.vision import background, write_video

TOKEN = "alarm-token-0123456789abcdef"
PASSWORD = "cam-pass-e2e-7731"


async def post(port: int, body: bytes) -> bytes:
    head = (
        "POST /alarm/cam-lake-1 HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
        "Content-Type: multipart/form-data; boundary=MIME_boundary\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def lake_gateway(tmp_path: Path, broker: Broker, video: Path, events_url: str) -> Config:
    """A camera gateway with cam-lake-1 on `video`, pulling the camera's event stream at
    `events_url` (password in a file) and taking pushes on an alarm endpoint on a free port."""
    (tmp_path / "cam.pass").write_text(PASSWORD + "\n")
    camera = {
        "id": "cam-lake-1",
        "source": f"file:{video}",
        "fps": 5,
        "events": {
            "kind": "alert_stream",
            "url": events_url,
            "username": "admin",
            "password_file": str(tmp_path / "cam.pass"),
        },
    }
    return make_config(
        tmp_path / "state",
        broker.port,
        OpsKey("ops-a"),
        device={"role": "camera_gateway"},
        cameras=[camera],
        alarm_http={"port": 0, "token": TOKEN},
    )


def camera_starts(w: Watcher) -> dict[str, dict]:
    """The bodies of the detection starts central got from the camera itself, by rule."""
    return {
        e["body"]["rule"]: e["body"]
        for e in w.events("/evt/detection")
        if e["body"]["state"] == "start" and e["body"]["origin"] == "camera"
    }


async def picture_arrives(w: Watcher, rule: str, pic: bytes) -> None:
    """Check that the `rule` start names `pic` as its one photo; wait until central has every
    chunk of it and its media event."""
    (ref,) = camera_starts(w)[rule]["photos"]
    assert ref["sha256"] == hashlib.sha256(pic).hexdigest()  # the camera's picture
    await wait_until(
        lambda: w.media_whole(DEV, ref["media_id"], ref["sha256"]), what=f"{rule} chunks"
    )
    await wait_until(
        lambda: any(e["body"]["media_id"] == ref["media_id"] for e in w.events("/evt/media")),
        what=f"{rule} media event",
    )


async def test_pushed_and_pulled_camera_events_arrive_with_the_cameras_pictures(
    broker: Broker, tmp_path: Path, caplog
) -> None:
    pushed_pic, pulled_pic = camera_jpeg(seed=11), camera_jpeg(seed=12)
    video = write_video(tmp_path / "lake.avi", [background() for _ in range(10)])
    script = [
        alert_block(alert_xml("fielddetection", pictures=1)),
        stream_block("image/jpeg", pulled_pic, "boundary"),
        HANG,
    ]
    async with CameraStreamServer(
        "multipart/mixed; boundary=boundary", [script], password=PASSWORD
    ) as server:
        cfg = lake_gateway(tmp_path, broker, video, server.url())
        w = Watcher(broker.host, broker.port)
        async with Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent:
            status = await agent.status_body()
            reply = await post(status["alarm_http"]["port"], xml_push(pictures=[pushed_pic]))
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
            await wait_until(lambda: {"linedetection", "fielddetection"} <= set(camera_starts(w)))
            await picture_arrives(w, "linedetection", pushed_pic)
            await picture_arrives(w, "fielddetection", pulled_pic)
            events = (await agent.status_body())["cameras"]["cam-lake-1"]["events"]
            assert events["state"] == "connected" and events["alarms"] == 1
        w.close()
    assert PASSWORD not in caplog.text and TOKEN not in caplog.text

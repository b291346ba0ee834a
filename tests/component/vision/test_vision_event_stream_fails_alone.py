"""A camera's event stream whose loop keeps crashing fails alone: the other camera's stream and
the agent's supervisor run on.

Before, the streams were spawned as essential loops: three unexpected crashes in one camera's
stream made the supervisor stop the whole gateway, as a broken detector once did. The fault
(an unexpected exception in reading one camera's stream) is injected; the streams are real
(digest auth, multipart) against loopback camera servers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from agent.vision.config import CameraConfig
from agent.vision.event_stream import EventStream
from agent.vision.gateway import Gateway
from tests.kits.aio import wait_until
from tests.kits.camera_bodies import alert_block, alert_xml
from tests.kits.camera_server import HANG, CameraStreamServer
from tests.kits.vision import (
    ListSource,
    MemoryMedia,
    MemorySink,
    background,
    camera,
    no_sleep,
    quick_supervisor,
)

PASSWORD = "cam-pass-3391"
CONTENT = "multipart/mixed; boundary=boundary"


def cam(cam_id: str, url: str, secret: Path) -> CameraConfig:
    return camera(
        id=cam_id,
        source="file:/unused",
        fps=5,
        detector={"kind": "hog"},  # no zones: the pipeline idles, the streams are the test
        events={
            "kind": "alert_stream",
            "url": url,
            "username": "admin",
            "password_file": str(secret),
            "backoff": {"initial_s": 0.01, "max_s": 0.02},
        },
    )


async def test_an_event_stream_that_keeps_crashing_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "cam.pass"
    secret.write_text(PASSWORD + "\n")
    real_consume = EventStream._consume

    async def consume(self: EventStream, stream: object) -> None:
        if self.camera_id == "cam-bad":
            raise RuntimeError("injected stream fault")
        await real_consume(self, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(EventStream, "_consume", consume)
    fatal: list[str] = []
    sup = quick_supervisor(fatal)
    script = [alert_block(alert_xml("fielddetection")), HANG]
    async with (
        CameraStreamServer(CONTENT, [script] * 10, password=PASSWORD) as good_srv,
        CameraStreamServer(CONTENT, [script] * 10, password=PASSWORD) as bad_srv,
        sup,
        Gateway(
            [cam("cam-good", good_srv.url(), secret), cam("cam-bad", bad_srv.url(), secret)],
            MemorySink(),
            MemoryMedia(),
            sleep=no_sleep,
            source_factory=lambda c: ListSource([background()]),
            spawn=sup.spawn,
            spawn_camera=functools.partial(sup.spawn, essential=False),
        ) as gateway,
    ):
        await wait_until(
            lambda: (
                any(n.startswith("loop vision:cam-bad:events") for n in sup.problems())
                and gateway.status()["cam-bad"]["events"]["state"] == "failed"
            ),
            what="the bad stream given up",
        )
        await wait_until(
            lambda: gateway.status()["cam-good"]["events"]["alarms"] >= 1, what="good stream runs"
        )
        assert gateway.status()["cam-good"]["events"]["state"] == "connected"
        assert "injected stream fault" in gateway.status()["cam-bad"]["events"]["last_error"]
        assert sup.healthy() and fatal == []

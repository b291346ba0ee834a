"""RTSP end to end: the gateway reads a real RTSP server (GStreamer's, from Debian) through
OpenCV's FFmpeg backend, survives the server going away, freezing and coming back, and keeps to
its frame budget."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import cv2
import pytest

from agent.vision.gateway import Gateway
from tests.kits.aio import wait_until
from tests.kits.paths import REPO
from tests.kits.vision import MemoryMedia, MemorySink, camera

SYSTEM_PY = "/usr/bin/python3"
SERVE = REPO / "tests" / "kits" / "rtsp_serve.py"
SERVER_FPS = 15
PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in ('videotestsrc', 'jpegenc', 'rtpjpegpay') "
    "if Gst.ElementFactory.find(e) is None]; assert not missing, missing"
)


def _why_not() -> str | None:
    if "FFMPEG:                      YES" not in cv2.getBuildInformation():
        return "this OpenCV build has no FFmpeg backend to read RTSP"
    if not os.access(SYSTEM_PY, os.X_OK):
        return f"{SYSTEM_PY} not found (the RTSP server runs on the system Python)"
    probe = subprocess.run([SYSTEM_PY, "-c", PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return (
            "GStreamer's RTSP server is not installed (scripts/setup.sh installs python3-gi, "
            "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base/-good): "
            + probe.stderr.strip().splitlines()[-1][:200]
        )
    return None


class RtspServer:
    """The server as a separate process on a fixed port, so it can go away and come back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PY, str(SERVE), str(self.port), str(SERVER_FPS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        assert ready and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), f"RTSP server did not start: {line!r}"

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture(scope="module")
def rtsp_reason() -> str | None:
    return _why_not()


@pytest.fixture
def rtsp(rtsp_reason) -> Iterator[RtspServer]:
    if rtsp_reason:
        pytest.skip(rtsp_reason)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = RtspServer(port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def status_until(gateway, predicate, what, timeout_s=60.0):
    """Poll the camera status until predicate holds (a bound, not a timing assert)."""
    await wait_until(lambda: predicate(gateway.status()["cam-rtsp"]), timeout_s, what)
    return gateway.status()["cam-rtsp"]


@pytest.mark.slow
async def test_gateway_reads_rtsp_through_a_server_restart_and_a_freeze(rtsp):
    cam = camera(
        id="cam-rtsp",
        source=rtsp.url,
        fps=5,
        stall_s=3,
        tamper=False,
        backoff={"initial_s": 0.3, "max_s": 1.0},
    )
    async with Gateway([cam], MemorySink(), MemoryMedia()) as gw:
        t0 = time.monotonic()
        st = await status_until(gw, lambda s: s["frames"] >= 10, "first frames")
        assert st["state"] == "running" and st["reconnects"] == 0
        image = gw.latest_image("cam-rtsp")
        assert image is not None and image.shape == (480, 640, 3)
        # Frame budget: the camera sends 15 fps, the gateway analyses at most its 5 fps.
        elapsed = time.monotonic() - t0
        assert st["captured"] <= 5 * elapsed + 5

        rtsp.stop()  # the server goes away
        st = await status_until(gw, lambda s: s["state"] == "reopening", "loss noticed")
        await asyncio.sleep(1.5)  # stays away a while: the gap must show it
        frames_before = gw.status()["cam-rtsp"]["frames"]
        rtsp.start()  # and comes back on the same address
        st = await status_until(
            gw, lambda s: s["reconnects"] == 1 and s["frames"] > frames_before + 5, "reconnected"
        )
        assert st["state"] == "running"
        assert st["last_gap_s"] >= 1.5 and st["reopenings"] >= 1

        rtsp.signal(signal.SIGSTOP)  # frozen: the socket stays open, nothing arrives
        st = await status_until(gw, lambda s: s["state"] == "reopening", "stall noticed")
        assert st["last_error"]
        rtsp.signal(signal.SIGCONT)
        st = await status_until(
            gw, lambda s: s["reconnects"] == 2 and s["state"] == "running", "back after freeze"
        )
        assert st["last_gap_s"] > 0


@pytest.mark.slow
async def test_camera_offline_starts_when_the_server_stops_and_ends_when_it_is_back(rtsp):
    cam = camera(
        id="cam-rtsp",
        source=rtsp.url,
        fps=5,
        stall_s=3,
        tamper=False,
        backoff={"initial_s": 0.3, "max_s": 1.0},
    )
    sink = MemorySink()
    async with Gateway([cam], sink, MemoryMedia()) as gw:
        await status_until(gw, lambda s: s["frames"] >= 5, "first frames")
        assert sink.bodies("camera_offline") == []
        rtsp.stop()
        await wait_until(lambda: sink.bodies("camera_offline"), 60, "offline start")
        (start,) = sink.bodies("camera_offline")
        assert start["state"] == "start" and start["zone"] is None and start["ended_ms"] is None
        assert start["camera_id"] == "cam-rtsp" and start["origin"] == "edge"
        assert gw.status()["cam-rtsp"]["open_events"] == 1
        await asyncio.sleep(1.0)
        rtsp.start()
        await wait_until(lambda: len(sink.bodies("camera_offline")) == 2, 60, "offline end")
        end = sink.bodies("camera_offline")[1]
        assert end["state"] == "end" and end["track"] == start["track"]
        # From the last frame before the loss to the first one after it.
        assert end["started_ms"] == start["started_ms"]
        assert end["ended_ms"] - end["started_ms"] >= 1000
        assert gw.status()["cam-rtsp"]["open_events"] == 0
    assert len(sink.bodies("camera_offline")) == 2  # nothing left open to end at stop

"""An RTSP server for tests, run by the system Python (GStreamer's RTSP server via PyGObject).

Usage: /usr/bin/python3 tests/kits/rtsp_serve.py PORT [FPS]. Serves rtsp://127.0.0.1:PORT/cam: a
generated 640x480 scene (a moving ball) as RTP/JPEG; prints "ready PORT" once it listens.
Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base and -good.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, fps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # RTP/JPEG wants planar 4:2:0; JPEG keeps the encoder cheap on a shared test machine.
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,format=I420,width=640,height=480,framerate={fps}/1 ! "
        "jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", port, flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

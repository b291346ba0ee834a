"""Camera event bodies in the vendors' published formats, built for tests (no tests here).

- Push (HTTP listening / alarm server): multipart/form-data with the EventNotificationAlert
  XML part (`name="<event>"`, `filename="<event>.xml"`) and `<event>Picture.jpg` image parts,
  or a JSON notification part.
- Pull, alert stream (GET /ISAPI/Event/notification/alertStream): an endless multipart/mixed
  body of EventNotificationAlert blocks, each with Content-Length; an inactive `videoloss`
  block every few seconds is the heartbeat.
- Pull, event codes (GET /cgi-bin/eventManager.cgi?action=attach&codes=[All]): an endless
  multipart/x-mixed-replace body of text/plain `Code=X;action=Start|Stop;index=N` blocks
  (boundary "myboundary"), "Heartbeat" blocks when asked for with &heartbeat=N.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from tests.kits.vision import background

ALERT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<ipAddress>192.168.1.64</ipAddress>
<portNo>80</portNo>
<protocol>HTTP</protocol>
<macAddress>44:19:b6:00:00:01</macAddress>
<channelID>1</channelID>
<dateTime>2026-03-01T21:14:05+08:00</dateTime>
<activePostCount>{count}</activePostCount>
<eventType>{event}</eventType>
<eventState>{state}</eventState>
<eventDescription>{event} alarm</eventDescription>
<channelName>Lakeside 1</channelName>
<DetectionRegionList>
<DetectionRegionEntry><regionID>{region}</regionID><sensitivityLevel>50</sensitivityLevel>
</DetectionRegionEntry>
</DetectionRegionList>
{pictures}</EventNotificationAlert>
"""


def alert_xml(
    event: str = "linedetection",
    state: str = "active",
    *,
    region: int = 1,
    pictures: int = 0,
    count: int = 1,
) -> bytes:
    """One EventNotificationAlert; `pictures` > 0 adds detectionPicturesNumber."""
    extra = f"<detectionPicturesNumber>{pictures}</detectionPicturesNumber>\n" if pictures else ""
    return ALERT_XML.format(
        event=event, state=state, region=region, pictures=extra, count=count
    ).encode()


def camera_jpeg(seed: int = 7, width: int = 320, height: int = 240) -> bytes:
    """A real JPEG as a camera would send it."""
    ok, buf = cv2.imencode(".jpg", background(width, height, seed), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def form_part(name: str, filename: str, ctype: str, data: bytes) -> tuple[dict[str, str], bytes]:
    """A form-data part as the cameras write it."""
    disp = f'form-data; name="{name}"; filename="{filename}"'
    return {"Content-Disposition": disp, "Content-Type": ctype}, data


def multipart(
    parts: list[tuple[dict[str, str], bytes]], boundary: str = "MIME_boundary", *, close=True
) -> bytes:
    """A multipart body: each part with its headers and Content-Length, closing boundary."""
    out = bytearray()
    for headers, data in parts:
        out += f"--{boundary}\r\n".encode()
        hdrs = {**headers, "Content-Length": str(len(data))}
        out += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode() + b"\r\n"
        out += data + b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def xml_push(event: str = "linedetection", pictures: list[bytes] | None = None) -> bytes:
    """The vendor's form-data push: the XML part then `<event>Picture.jpg` parts."""
    pics = pictures or []
    parts = [
        form_part(event, f"{event}.xml", "application/xml", alert_xml(event, pictures=len(pics)))
    ]
    for pic in pics:
        parts.append(form_part(f"{event}Picture.jpg", f"{event}Picture.jpg", "image/jpeg", pic))
    return multipart(parts)


def json_push(event: str, picture: bytes | None) -> bytes:
    """A JSON notification part and a picture part."""
    note = json.dumps({"ipAddress": "192.168.1.65", "eventType": event, "eventState": "active"})
    parts = [form_part("event_log", "event.json", "application/json", note.encode())]
    if picture is not None:
        parts.append(form_part("picture", "picture.jpg", "image/jpeg", picture))
    return multipart(parts, "----WebKitFormBoundary7MA4YWxkTrZu0gW")


def stream_block(ctype: str, data: bytes, boundary: str) -> bytes:
    """One block of an endless stream (no closing boundary)."""
    return multipart([({"Content-Type": ctype}, data)], boundary, close=False)


def alert_block(xml: bytes, boundary: str = "boundary") -> bytes:
    """An alert-stream block."""
    return stream_block('application/xml; charset="UTF-8"', xml, boundary)


def heartbeat_block(boundary: str = "boundary") -> bytes:
    """The alert stream's keep-alive: an inactive videoloss."""
    return alert_block(alert_xml("videoloss", "inactive"), boundary)


def code_block(code: str, action: str, index: int = 0, boundary: str = "myboundary") -> bytes:
    """An event-code block."""
    return stream_block(
        "text/plain", f"Code={code};action={action};index={index}".encode(), boundary
    )


def noise_jpeg(size: int) -> bytes:
    """A JPEG of about `size` bytes or more (random pixels compress badly)."""
    side = max(64, int((size / 1.2) ** 0.5))
    img = np.random.default_rng(3).integers(0, 255, (side, side, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()

"""Parse camera alarms: our JSON, vendor JSON and XML event notifications, and event-code lines.

XML is parsed with xml.etree after refusing anything that could declare entities: the body must
be UTF-8 without NUL characters (so no UTF-16 smuggling), declare no other encoding, and contain
no DOCTYPE or ENTITY declaration at all.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import CodecError
from agent.vision.rules import Marked

_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_ZONE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECL_ENCODING = re.compile(r"""^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_ACTIVE = {"active": True, "start": True, "inactive": False, "end": False}
_CODE_LINE = re.compile(r"^Code=([A-Za-z0-9_.-]{1,40});action=(Start|Stop|Pulse);index=(\d{1,4})")
_PICTURES = re.compile(r"<(?:\w+:)?detectionPicturesNumber>\s*(\d{1,2})\s*<")
# Blocks event streams send to show they are alive: not events.
HEARTBEAT_TYPES = frozenset({"heartbeat", "videoloss"})


@dataclass(frozen=True, slots=True)
class CameraAlarm:
    """An alarm an IP camera pushed: its own event type as the rule, active or over."""

    camera_id: str
    rule: str
    active: bool
    zone: str | None = None
    count: int = 1
    score: float = 1.0
    boxes: tuple[Marked, ...] = ()
    # The camera's own JPEG, shown instead of the gateway's snapshot; never logged.
    picture: bytes | None = field(default=None, repr=False)
    # How long it stays active without a repeat (None: the forwarder's hold_s).
    hold_s: float | None = None


class AlarmPush(BaseModel):
    """Our JSON push: {"type", "state", "zone", "count", "score", "boxes"}."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=40)
    state: Literal["active", "inactive", "start", "end"] = "active"
    zone: str | None = Field(None, pattern=_ZONE.pattern)
    count: int = Field(1, ge=0, le=10000)
    score: float = Field(1.0, ge=0, le=1)
    boxes: list[tuple[int, int, int, int, float, str]] = Field([], max_length=64)


class VendorJson(BaseModel):
    """The JSON form of the common vendor EventNotificationAlert (unknown keys ignored)."""

    # Field names are the vendor's own.

    model_config = ConfigDict(extra="ignore")

    eventType: str = Field(min_length=1, max_length=40)
    eventState: str = "active"
    channelID: int | str | None = None


def _rule(event_type: str) -> str:
    rule = event_type.strip().lower()
    if not _TYPE.match(rule):
        raise CodecError(f"event type {event_type[:40]!r} is not a plain name")
    return rule


def _state(value: str) -> bool:
    try:
        return _ACTIVE[value.strip().lower()]
    except KeyError:
        raise CodecError(f"event state {value[:20]!r} is not active or inactive") from None


def _no_constants(name: str) -> float:
    raise CodecError(f"{name} is not a JSON number")


def parse_json(camera_id: str, body: bytes) -> CameraAlarm:
    """Our push format, or the vendor's JSON event notification."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CodecError("JSON body must be an object")
    try:
        if "eventType" in data:
            vendor = VendorJson.model_validate(data)
            return CameraAlarm(camera_id, _rule(vendor.eventType), _state(vendor.eventState))
        push = AlarmPush.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise CodecError(f"{where}: {first['msg']}") from exc
    boxes = tuple(
        Marked((float(x), float(y), float(w), float(h)), s, label[:32])
        for x, y, w, h, s, label in push.boxes
    )
    return CameraAlarm(
        camera_id, _rule(push.type), _ACTIVE[push.state], push.zone, push.count, push.score, boxes
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(root: ET.Element, name: str) -> str | None:
    for el in root.iter():
        if _local(el.tag) == name and el.text is not None:
            return el.text.strip()
    return None


def parse_xml(camera_id: str, body: bytes) -> CameraAlarm:
    """The vendor EventNotificationAlert XML; DOCTYPE, ENTITY and non-UTF-8 are refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError("XML must be UTF-8") from exc
    if "\x00" in text:
        raise CodecError("NUL character in XML")
    if _FORBIDDEN.search(text):
        raise CodecError("DOCTYPE and ENTITY declarations are not accepted")
    declared = _DECL_ENCODING.match(text.lstrip("\ufeff"))
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise CodecError(f"XML encoding {declared.group(1)!r} is not accepted; use UTF-8")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise CodecError(f"malformed XML: {exc}") from exc
    if _local(root.tag) != "EventNotificationAlert":
        raise CodecError(f"expected EventNotificationAlert, got {_local(root.tag)[:40]}")
    event_type = _child_text(root, "eventType")
    if not event_type:
        raise CodecError("eventType missing")
    state = _child_text(root, "eventState") or "active"
    region = _child_text(root, "regionID")
    zone = f"region-{region}" if region and _ZONE.match(f"region-{region}") else None
    return CameraAlarm(camera_id, _rule(event_type), _state(state), zone)


def is_heartbeat(alarm: CameraAlarm) -> bool:
    """A keep-alive block (e.g. an inactive videoloss every few seconds), not an event."""
    return alarm.rule in HEARTBEAT_TYPES and not alarm.active


def expected_pictures(body: bytes) -> int:
    """How many pictures an XML notification says follow it (detectionPicturesNumber), or 0."""
    m = _PICTURES.search(body[:65536].decode("utf-8", "replace"))
    return int(m.group(1)) if m else 0


def parse_code_line(camera_id: str, body: bytes, hold_s: float) -> CameraAlarm | None:
    """An event-code block "Code=X;action=Start|Stop|Pulse;index=N[;data=...]"; None for a
    heartbeat; CodecError otherwise. Index N > 0 (an NVR channel) becomes zone "channel-N"."""
    text = body.decode("utf-8", "replace").strip()
    if text.lower() == "heartbeat":
        return None
    m = _CODE_LINE.match(text)
    if m is None:
        raise CodecError(f"not an event-code line: {text[:60]!r}")
    code, action, index = m.groups()
    zone = f"channel-{int(index)}" if int(index) > 0 else None
    if action == "Pulse":
        return CameraAlarm(camera_id, _rule(code), True, zone)
    return CameraAlarm(camera_id, _rule(code), action == "Start", zone, hold_s=hold_s)


def parse_alarm(camera_id: str, media_type: str, body: bytes) -> CameraAlarm:
    """Dispatch on the media type; CodecError with a reason fit for the HTTP response."""
    if media_type == "application/json":
        return parse_json(camera_id, body)
    if media_type in ("application/xml", "text/xml"):
        return parse_xml(camera_id, body)
    raise CodecError(f"unsupported media type {media_type[:60]!r}")

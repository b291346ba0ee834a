"""What the outbox hands back and how messages rank: `Stored`, named priorities (§4, §7)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Priority(enum.IntEnum):
    """Send order, most urgent first (§7); URGENT and RECORD are never evicted."""

    URGENT = 0  # alarms, and detections/incidents a mode makes urgent
    RECORD = 1  # check-ins, incidents, patrol progress, acks
    DETECTION = 2
    NOTICE = 3
    MEDIA = 4  # photo chunks and their media events


PROTECTED = Priority.RECORD  # priorities up to this one are never evicted or dropped

# Contract §4 default priority per event kind.
DEFAULT_PRIORITY: Mapping[str, Priority] = {
    "alarm": Priority.URGENT,
    "checkin": Priority.RECORD,
    "incident": Priority.RECORD,
    "patrol": Priority.RECORD,
    "ack": Priority.RECORD,
    "detection": Priority.DETECTION,
    "notice": Priority.NOTICE,
    "media": Priority.MEDIA,
}


@dataclass(frozen=True, slots=True)
class Stored:
    """What the outbox returns once an event is durable: its id, seq and exact bytes."""

    id: str
    seq: int
    topic: str
    payload: bytes
    priority: int

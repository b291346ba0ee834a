"""Patrol pure core: task set, GPS/NFC/manual check-in decisions and progress; no I/O, no clock."""

from agent.patrol.core.decisions import (
    CheckIn,
    Decision,
    NoCheckpointInReach,
    Progress,
    TagIgnored,
    TaskStatus,
    UnknownTag,
)
from agent.patrol.core.engine import PatrolEngine
from agent.patrol.core.geofence import CheckinParams
from agent.patrol.core.schema import parse_tasks_body
from agent.patrol.core.tasks import Checkpoint, Task, TaskSet, normalize_uid

__all__ = [
    "CheckIn",
    "CheckinParams",
    "Checkpoint",
    "Decision",
    "NoCheckpointInReach",
    "PatrolEngine",
    "Progress",
    "TagIgnored",
    "Task",
    "TaskSet",
    "TaskStatus",
    "UnknownTag",
    "normalize_uid",
    "parse_tasks_body",
]

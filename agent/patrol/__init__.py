"""Patrol core (issue 4): task set, GPS/NFC/manual check-in decisions and progress, all pure."""

from agent.patrol.decisions import (
    CheckIn,
    Decision,
    NoCheckpointInReach,
    Progress,
    TagIgnored,
    TaskStatus,
    UnknownTag,
)
from agent.patrol.engine import PatrolEngine
from agent.patrol.geofence import CheckinParams
from agent.patrol.schema import parse_tasks_body
from agent.patrol.tasks import Checkpoint, Task, TaskSet, normalize_uid

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

"""One doctor result: what was checked, the verdict, and the message key its text comes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Finding:
    """`check` names the thing checked (a port, a file); `key` picks the text in doctor.texts."""

    check: str
    level: Level
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


def worst(findings: list[Finding]) -> Level:
    """The most severe level among `findings` ("pass" for none)."""
    order: tuple[Level, ...] = ("fail", "warn", "pass", "skip")
    for level in order:
        if any(f.level == level for f in findings):
            return level
    return "pass"

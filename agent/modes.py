"""Pure work-mode resolution (contract §6): the most severe unexpired mode document wins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("normal", "holiday", "major_event", "emergency")
SEVERITY = {name: rank for rank, name in enumerate(MODES)}


@dataclass(frozen=True, slots=True)
class ModeDoc:
    """An applied mode document: its target key (`dev:D` / `zone:Z`), mode, ver and expiry."""

    target: str
    mode: str
    ver: int
    exp: int | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form kept in the state dir."""
        return {
            "target": self.target,
            "mode": self.mode,
            "ver": self.ver,
            "exp": self.exp,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModeDoc:
        """Inverse of to_json."""
        return cls(
            target=str(data["target"]),
            mode=str(data["mode"]),
            ver=int(data["ver"]),
            exp=None if data.get("exp") is None else int(data["exp"]),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True, slots=True)
class EffectiveMode:
    """The resolved mode with the §6 `reported.mode` fields."""

    name: str
    ver: int | None
    scope: str  # "dev", "zone:Z" or "default"

    def reported(self) -> dict[str, Any]:
        """The `mode` object of `reported`."""
        return {"name": self.name, "ver": self.ver, "scope": self.scope}


def validate_mode_body(body: Mapping[str, Any]) -> dict[str, str]:
    """Check a §6 mode body; raise ValueError naming the problem."""
    if set(body) - {"mode", "reason"}:
        raise ValueError(f"unexpected keys {sorted(set(body) - {'mode', 'reason'})}")
    mode = body.get("mode")
    if mode not in SEVERITY:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason must be text")
    return {"mode": str(mode), "reason": reason}


def _scope(target: str) -> str:
    return "dev" if target.startswith("dev:") else target


def resolve(docs: Iterable[ModeDoc], now_ms: int | None, default: str) -> EffectiveMode:
    """Most severe unexpired document wins; ties go to the device's own, then the newer ver.

    With `now_ms` None (no time known to be right) nothing counts as expired.
    """
    best: ModeDoc | None = None
    for doc in docs:
        if doc.exp is not None and now_ms is not None and doc.exp <= now_ms:
            continue
        if best is None or _rank(doc) > _rank(best):
            best = doc
    if best is None:
        return EffectiveMode(default, None, "default")
    return EffectiveMode(best.mode, best.ver, _scope(best.target))


def _rank(doc: ModeDoc) -> tuple[int, int, int, str]:
    # The target breaks the last tie so the result never depends on the order of documents.
    return (
        SEVERITY.get(doc.mode, -1),
        1 if doc.target.startswith("dev:") else 0,
        doc.ver,
        doc.target,
    )


def next_expiry(docs: Iterable[ModeDoc], now_ms: int) -> int | None:
    """The earliest expiry still in the future, when the resolution must be re-run."""
    future = [d.exp for d in docs if d.exp is not None and d.exp > now_ms]
    return min(future) if future else None

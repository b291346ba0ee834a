"""What the agent remembers in its state dir besides the outbox: versions, documents, good time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent.modes import ModeDoc
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)


class DocState:
    """Last applied ver and id per (typ, target), applied mode and tasks documents, good time."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        data = read_json(state_dir / "docs.json", {})
        data = data if isinstance(data, dict) else {}
        self._vers: dict[str, int] = {k: int(v) for k, v in data.get("vers", {}).items()}
        self._ids: dict[str, str] = dict(data.get("ids", {}))
        self.mode_docs: dict[str, ModeDoc] = {
            k: ModeDoc.from_json(v) for k, v in data.get("modes", {}).items()
        }
        good = read_json(state_dir / "clock.json", {})
        self.good_ms: int | None = good.get("good_ms") if isinstance(good, dict) else None
        tasks = read_json(state_dir / "tasks.json")
        self.tasks: dict[str, Any] | None = tasks if isinstance(tasks, dict) else None

    @staticmethod
    def key(typ: str, target: str) -> str:
        """Key of the per-(typ, target) memory."""
        return f"{typ}|{target}"

    def last_ver(self, typ: str, target: str) -> int | None:
        """Last applied ver for (typ, target key), or None."""
        return self._vers.get(self.key(typ, target))

    def last_id(self, typ: str, target: str) -> str | None:
        """Id of the last applied document for (typ, target key)."""
        return self._ids.get(self.key(typ, target))

    def applied(self, typ: str, target: str, ver: int, doc_id: str) -> None:
        """Record an applied document durably (before it is acked)."""
        self._vers[self.key(typ, target)] = ver
        self._ids[self.key(typ, target)] = doc_id
        self._save()

    def set_mode_doc(self, doc: ModeDoc) -> None:
        """Keep the applied mode document of its target (replacing the older one)."""
        self.mode_docs[doc.target] = doc
        self._save()

    def set_tasks(self, doc: dict[str, Any]) -> None:
        """Keep the applied tasks document (ver, id, body) across restarts."""
        write_json(self._dir / "tasks.json", doc)
        self.tasks = doc

    def note_good_time(self, ts: int) -> None:
        """Remember a wall time known to be right (for §6 expiry while time_ok is false)."""
        if self.good_ms is None or ts > self.good_ms:
            self.good_ms = ts
            write_json(self._dir / "clock.json", {"good_ms": ts})

    def _save(self) -> None:
        write_json(
            self._dir / "docs.json",
            {
                "vers": self._vers,
                "ids": self._ids,
                "modes": {k: d.to_json() for k, d in self.mode_docs.items()},
            },
        )

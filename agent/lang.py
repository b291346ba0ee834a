"""Which language a person-facing text is in: Simplified Chinese by default, English on request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Lang = Literal["zh", "en"]


def pick(explicit: str | None, env: Mapping[str, str]) -> Lang:
    """`explicit` (--lang) wins, then EDGE_AGENT_LANG, then LC_ALL/LANG starting with "en"."""
    for value in (explicit, env.get("EDGE_AGENT_LANG")):
        if value:
            return "en" if value.lower().startswith("en") else "zh"
    locale = env.get("LC_ALL") or env.get("LANG") or ""
    return "en" if locale.lower().startswith("en") else "zh"

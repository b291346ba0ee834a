"""How sync's components start their loops: through a `Spawn` the agent hands in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

Factory = Callable[[], Coroutine[Any, Any, Any]]
Spawn = Callable[[str, Factory], "asyncio.Task[Any]"]


def spawn_task(name: str, factory: Factory) -> asyncio.Task[Any]:
    """The default `Spawn`: a plain named task (the agent passes its supervisor's instead)."""
    return asyncio.create_task(factory(), name=name)

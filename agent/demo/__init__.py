"""`edge-agent demo`: both roles against a local broker, an operator's live view, a summary."""

from __future__ import annotations

from agent.demo.run import main

__all__ = ["main"]

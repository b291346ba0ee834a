"""`edge-agent check-config`: problems named the way people write the file, with suggestions."""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.config.deferred import Deferred
from agent.config.model import Config, example_keys, parse
from agent.config.role_sections import ROLE_SECTIONS, foreign_sections
from agent.errors import ConfigError


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (Optional, list[...], Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, Deferred):  # a section whose models load on first use
        return _models(annotation.annotation())
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    origin = typing.get_origin(annotation)
    if origin is not None and origin not in (types.UnionType, typing.Union, list, dict):
        out += _models(origin)
    return out


def known_keys(path: Sequence[str], root: type[BaseModel] = Config) -> list[str]:
    """The keys `root` (the agent's config) accepts at `path`, for "did you mean"."""
    models: list[type[BaseModel]] = [root]
    for part in path:
        if part.isdigit() or part.startswith("["):
            continue  # a list index or a camera named by id
        nxt: list[type[BaseModel]] = []
        for m in models:
            f = m.model_fields.get(part)
            if f is not None:
                # Annotated[...] metadata (a Deferred section's real type) sits beside it.
                nxt += _models(f.annotation) + [x for meta in f.metadata for x in _models(meta)]
        if not nxt:
            return []
        models = nxt
    return sorted({k for m in models for k in m.model_fields})


def _by_id(parts: list[str], data: Mapping[str, Any]) -> list[str]:
    """`cameras.2.x` -> `cameras[cam-plaza-2].x` (lists of things with an id: named by it)."""
    out: list[str] = []
    node: Any = data
    for part in parts:
        if part.isdigit() and isinstance(node, list) and int(part) < len(node):
            item = node[int(part)]
            ident = (item.get("id") or item.get("name")) if isinstance(item, Mapping) else None
            out[-1] += f"[{ident}]" if isinstance(ident, str) and ident else f"[{part}]"
            node = item
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, Mapping) else None
    return out


def explain(
    problems: Sequence[tuple[str, str]],
    data: Mapping[str, Any],
    root: type[BaseModel] = Config,
) -> list[tuple[str, str]]:
    """Rename list indexes by id; add "did you mean" to unknown keys (of `root`'s file)."""
    out: list[tuple[str, str]] = []
    for where, reason in problems:
        parts = [p for p in where.split(".") if p]
        named = ".".join(_by_id(parts, data)) or where
        if reason == "unknown key" and parts:
            known = known_keys(parts[:-1], root)
            close = difflib.get_close_matches(parts[-1], known, n=1, cutoff=0.6)
            if close:
                reason = f"unknown key (did you mean {close[0]!r}?)"
        out.append((named, reason))
    return out


def role_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Sections the file's role does not use (they would be silently ignored)."""
    device = data.get("device")
    role = device.get("role") if isinstance(device, Mapping) else None
    if role not in ROLE_SECTIONS:
        return []
    other = "camera_gateway" if role == "patrol" else "patrol"
    return [
        (section, f"a {other} section; this device is {role} (remove it, or change device.role)")
        for section in foreign_sections(str(role), data)
    ]


def check_file(path: Path) -> Config:
    """Read and check a config file; ConfigError lists every problem, named as in the file."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None
    problems: list[tuple[str, str]] = []
    cfg: Config | None = None
    try:
        cfg = parse(data)
    except ConfigError as exc:
        problems += explain(exc.problems, data)
    problems += role_problems(data)
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


EXAMPLE_KEY_WHY = (
    "the example key shipped in configs/*.toml is trusted: anyone with this source could sign "
    "documents for the device; replace it with your own (`edge-agent ops keygen`, then "
    "`edge-agent provision --ops-key KID=KEY`)"
)


def example_key_problems(cfg: Config) -> list[tuple[str, str]]:
    """The trusted example ops key as a problem (check-config and doctor fail on it)."""
    return [(f"trust.ops_keys[{kid}]", EXAMPLE_KEY_WHY) for kid in example_keys(cfg.trust.ops_keys)]

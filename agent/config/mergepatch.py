"""JSON Merge Patch (RFC 7386) and where each config value comes from (pure, no I/O).

A config document's body is merged over the device's local file (contract §6): an object
merges key by key, recursively; `null` removes a key; any other value, a list included,
replaces. These functions never change their arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Sections that wire a part of the device (a serial port, a camera, the person carrying it).
# A fleet document that removes one strips a device of its own hardware: ops refuses it.
PARTS: tuple[tuple[str, ...], ...] = (
    ("gps",),
    ("nfc",),
    ("buttons",),
    ("camera",),
    ("cameras",),
    ("alarm_http",),
    ("device", "staff_id"),
    ("device", "zones"),
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch): the patched copy of `target`."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def leaves(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every non-object value; an empty object counts as a value."""
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from leaves(value, (*prefix, str(key)))
    elif prefix:
        yield prefix, data


def lookup(data: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    """(found, value) at `path` inside nested mappings."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return False, None
        data = data[key]
    return True, data


def removals(patch: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The key paths a patch removes (its `null` values)."""
    return [path for path, value in leaves(patch) if value is None]


@dataclass(frozen=True, slots=True)
class Source:
    """Where one value of the running config comes from: `file`, `remote` or `default`."""

    path: tuple[str, ...]
    value: Any
    origin: str

    @property
    def key(self) -> str:
        """The dotted key, as in the TOML file."""
        return ".".join(self.path)


def sources(
    effective: Mapping[str, Any], file: Mapping[str, Any], patch: Mapping[str, Any] | None
) -> list[Source]:
    """Each value of `effective` with its origin: set by the patch, by the file, else default.

    A value counts as the patch's when the patch names its path or a list/value above it.
    """
    out = []
    for path, value in leaves(effective):
        origin = "default"
        if patch is not None and any(
            lookup(patch, path[:n])[0] and not isinstance(lookup(patch, path[:n])[1], Mapping)
            for n in range(1, len(path) + 1)
        ):
            origin = "remote"
        elif lookup(file, path)[0]:
            origin = "file"
        out.append(Source(path, value, origin))
    return out


def changes(patch: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(`key = value` lines the patch sets, keys it removes), dotted, in the patch's order."""
    sets, removes = [], []
    for path, value in leaves(patch):
        if value is None:
            removes.append(".".join(path))
        else:
            sets.append(f"{'.'.join(path)} = {value!r}")
    return sets, removes


def removed_parts(patch: Mapping[str, Any]) -> list[str]:
    """The wired parts (`PARTS`) a patch removes or empties: `gps`, `device.staff_id`, ..."""
    out = []
    for part in PARTS:
        found, value = lookup(patch, part)
        if found and (value is None or value in ([], {})):
            out.append(".".join(part))
    return out

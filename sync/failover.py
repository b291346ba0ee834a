"""Which broker to dial next, and with which MQTT version: a pure value, no I/O, no clock.

`broker.hosts` lists several nodes of one clustered broker. After a failed attempt or a lost
session the link dials the next node (the reconnect state machine's backoff still spaces the
attempts). A node that closes the connection at an MQTT 5 CONNECT, or answers it with
"unacceptable/unsupported protocol version", is dialled with MQTT 3.1.1 from then on (the
contract works on both, §1); the other nodes keep the configured version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# CONNACK codes that mean "not this protocol version": 3.1.1's 0x01, MQTT 5's 0x84.
PROTOCOL_REFUSED = frozenset({1, 0x84})


def parse_hosts(entries: tuple[str, ...], default_port: int) -> tuple[tuple[str, int], ...]:
    """`host`, `host:port` or `[v6addr]:port` entries as (host, port); ValueError if bad."""
    out = []
    for entry in entries:
        host, port = entry.strip(), default_port
        if host.startswith("["):
            addr, _, rest = host[1:].partition("]")
            host = addr
            if rest:
                port = _port(rest.removeprefix(":"), entry)
        elif host.count(":") == 1:
            host, raw = host.split(":")
            port = _port(raw, entry)
        if not host:
            raise ValueError(f"broker host {entry!r} has no host name")
        out.append((host, port))
    return tuple(out)


def _port(raw: str, entry: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"broker host {entry!r}: port must be 1-65535")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Failover:
    """The node list, the one to dial now, and the nodes known to speak only MQTT 3.1.1."""

    hosts: tuple[tuple[str, int], ...]
    protocol: int = 5
    index: int = 0
    v3_only: frozenset[int] = frozenset()

    @property
    def current(self) -> tuple[str, int]:
        """(host, port) to dial now."""
        return self.hosts[self.index]

    @property
    def protocol_now(self) -> int:
        """The MQTT version for the node dialled now (5 or 3)."""
        return 3 if self.index in self.v3_only else self.protocol

    def failed(self, *, refused_v5: bool = False) -> Failover:
        """After a failed attempt or a lost session. `refused_v5`: the node closed the
        connection at (or refused) an MQTT 5 CONNECT: the same node again, with 3.1.1.
        Anything else: the next node in the list."""
        if refused_v5 and self.protocol_now == 5:
            return replace(self, v3_only=self.v3_only | {self.index})
        return replace(self, index=(self.index + 1) % len(self.hosts))

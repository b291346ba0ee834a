"""Pure: what the broker's CONNACK allows, and the agent's decisions that follow from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MQTT_MAX_PACKET = 268_435_455 + 5  # the protocol's own bound: remaining length + fixed header
MAX_CHUNK = 65536  # contract §2: media chunk size as stored
MIN_CHUNK = 1024  # below this a photo would need hundreds of chunks: refuse it instead
CHUNK_ALIGN = 1024  # re-chunked sizes are whole KiB, easy to read in a log
RESERVED_INFLIGHT = 2  # Receive Maximum left for birth and `reported` (§5, §6)
# A chunk topic without its number: grid/v1/<D up to 63>/media/<UUID>.
LONGEST_CHUNK_PREFIX = "grid/v1/" + "d" * 63 + "/media/00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """The limits one CONNACK announced (MQTT 5 properties; MQTT 3.1.1 announces none)."""

    protocol: int = 5
    max_packet: int | None = None  # Maximum Packet Size; None: only the protocol's bound
    receive_max: int = 65535  # Receive Maximum: QoS 1 PUBLISHes in flight at once
    keepalive_s: int | None = None  # Server Keep Alive, when the broker overrides ours
    topic_alias_max: int = 0  # we send no aliases, so any value is honoured
    max_qos: int = 2  # Maximum QoS
    retain: bool = True  # Retain Available

    @classmethod
    def from_connack(cls, protocol: int, props: Mapping[str, object]) -> BrokerLimits:
        """Read paho's CONNACK property names (absent ones take the MQTT 5 defaults)."""

        def num(name: str, default: int) -> int:
            value = props.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else default

        if protocol != 5:
            return cls(protocol=protocol)
        packet = num("MaximumPacketSize", 0)
        keepalive = num("ServerKeepAlive", -1)
        return cls(
            protocol=5,
            max_packet=packet if packet > 0 else None,
            receive_max=max(1, num("ReceiveMaximum", 65535)),
            keepalive_s=keepalive if keepalive >= 0 else None,
            topic_alias_max=num("TopicAliasMaximum", 0),
            max_qos=num("MaximumQoS", 2),
            retain=num("RetainAvailable", 1) != 0,
        )

    def window(self, configured: int) -> int:
        """In-flight window for stored messages: Receive Maximum minus room for birth/reported."""
        return max(1, min(configured, self.receive_max - RESERVED_INFLIGHT))

    def fits(self, topic: str, payload_len: int, qos: int = 1) -> bool:
        """Whether a PUBLISH of this topic and payload is within Maximum Packet Size."""
        if self.max_packet is None:
            return True
        return publish_size(topic, payload_len, qos, self.protocol) <= self.max_packet

    def chunk_size(self, chunk_topic_prefix: str) -> int:
        """Largest chunk (<= 64 KiB, whole KiB) whose PUBLISH under `prefix/<n>` fits, for
        up to 99999 chunks; 0 when that is below MIN_CHUNK."""
        if self.max_packet is None:
            return MAX_CHUNK
        topic = chunk_topic_prefix + "/99999"
        room = self.max_packet - publish_size(topic, 0, 1, self.protocol)
        size = min(MAX_CHUNK, room - room % CHUNK_ALIGN)
        while size >= MIN_CHUNK and not self.fits(topic, size):
            size -= CHUNK_ALIGN  # the remaining-length field grew with the payload
        return size if size >= MIN_CHUNK else 0

    def problems(self) -> tuple[str, ...]:
        """What the contract needs and this broker cannot give (for the log and `status`)."""
        found = []
        if self.max_qos < 1:
            found.append("qos1_unavailable")  # §2: every stored message needs QoS 1
        if not self.retain:
            found.append("retain_unavailable")  # §5/§6: birth, will and `reported` are retained
        if self.max_packet is not None and self.chunk_size(LONGEST_CHUNK_PREFIX) == 0:
            found.append("max_packet_too_small")
        return tuple(found)

    def describe(self) -> dict[str, object]:
        """The limits as a plain dict (status and log)."""
        return {
            "protocol": self.protocol,
            "max_packet": self.max_packet,
            "receive_max": self.receive_max,
            "keepalive_s": self.keepalive_s,
            "topic_alias_max": self.topic_alias_max,
            "max_qos": self.max_qos,
            "retain": self.retain,
        }


def _varint_len(n: int) -> int:
    size = 1
    while n >= 128:
        n //= 128
        size += 1
    return size


def publish_size(topic: str, payload_len: int, qos: int, protocol: int) -> int:
    """Bytes of a PUBLISH packet with no properties (what MQTT's Maximum Packet Size counts)."""
    remaining = 2 + len(topic.encode()) + (2 if qos > 0 else 0) + payload_len
    if protocol == 5:
        remaining += 1  # property length 0
    return 1 + _varint_len(remaining) + remaining


def split(data: bytes, size: int) -> list[bytes]:
    """`data` in chunks of `size` bytes (one empty chunk for empty data)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]

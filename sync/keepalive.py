"""The MQTT keep-alive the client asks for, so a silent (half-open) link is noticed in time."""

from __future__ import annotations

POLL_S = 1  # the link checks keep-alive once a second (sync.link's housekeeping task)


def client_keepalive(configured_s: int) -> int:
    """Keep-alive to negotiate so a half-open link is dropped within 1.5 x `configured_s`.

    paho sends PINGREQ after one keep-alive of silence and gives up one keep-alive after that,
    i.e. up to 2 keep-alives (plus one poll) after the last byte received. Asking for a bit under
    3/4 of the configured interval brings that worst case to at most 1.5 configured intervals.
    """
    return max(1, (3 * configured_s - 4 * POLL_S) // 4)


def worst_detection_s(negotiated_s: int) -> int:
    """How long after the last byte received paho drops a silent link at the latest."""
    return 2 * negotiated_s + POLL_S

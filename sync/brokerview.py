"""What the link remembers of its broker across connects: the last CONNACK's limits, the will."""

from __future__ import annotations

import logging
from typing import Any

from sync.limits import BrokerLimits

log = logging.getLogger(__name__)

RC_RETAIN_NOT_SUPPORTED = 0x9A
RC_QOS_NOT_SUPPORTED = 0x9B


class BrokerView:
    """Last limits seen, and how the will must be set so the broker accepts the CONNECT."""

    def __init__(self) -> None:
        self.limits: BrokerLimits | None = None
        self.will_retain = True  # off once the broker said it has no retained messages
        self.will_qos = 1  # 0 once the broker said it takes no QoS 1

    def refused(self, rc: int) -> None:
        """A CONNACK refusal: the will may be what the broker cannot take."""
        if rc == RC_RETAIN_NOT_SUPPORTED and self.will_retain:
            log.error("broker has no retained messages: the will goes unretained (§5)")
            self.will_retain = False
        if rc == RC_QOS_NOT_SUPPORTED and self.will_qos:
            log.error("broker takes no QoS 1: the will goes at QoS 0 (§5)")
            self.will_qos = 0

    def accepted(self, limits: BrokerLimits) -> None:
        """Keep and log what this CONNACK allows; say loudly what the contract needs and lacks."""
        if limits != self.limits:
            log.info("broker limits: %s", limits.describe())
        for problem in limits.problems():
            log.error("broker cannot give what grid/v1 needs: %s", problem)
        self.will_retain = self.will_retain and limits.retain
        self.will_qos = min(self.will_qos, limits.max_qos)
        self.limits = limits

    def status(self) -> dict[str, Any]:
        """The broker part of `status.link`."""
        limits = self.limits
        return {
            "broker": limits.describe() if limits else None,
            "problems": list(limits.problems()) if limits else [],
        }

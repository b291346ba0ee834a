"""The agent's sync-stack pieces built from its config: the MQTT link and the document checks.

`agent/runtime/agent.py` wires them to the agent's own callbacks; nothing here holds state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from agent.config.model import Config
from agent.documents.appliers import validate_cmd_body
from agent.documents.remote_config import validate_body
from agent.modes import validate_mode_body
from agent.patrol.core.schema import parse_tasks_body
from firmware_bridge.aio import Backoff
from sync.downlink import Downlink
from sync.keepalive import client_keepalive
from sync.link import BdSeq, LinkSettings, MqttLink
from sync.session import Session
from sync.spawn import Spawn
from sync.verify import BodyValidator


def document_validators(
    local: Config, extra: Mapping[str, BodyValidator] | None = None
) -> dict[str, BodyValidator]:
    """The body check of each §6 document type; `extra` adds or replaces some (tests)."""
    validators: dict[str, BodyValidator] = {
        "mode": validate_mode_body,
        "cmd": validate_cmd_body,
        "tasks": parse_tasks_body,
        "config": validate_body(local),  # the local-only keys come from the local file
    }
    validators.update(extra or {})
    return validators


def link_settings(cfg: Config) -> LinkSettings:
    """The link's settings from [broker] and [device]; the keep-alive asked is 1.5x shorter."""
    b = cfg.broker
    return LinkSettings(
        dev=cfg.device.id,
        host=b.host,
        port=b.port,
        protocol=b.protocol,
        keepalive_s=client_keepalive(b.keepalive_s),  # half-open: 1.5x
        connect_timeout_s=b.connect_timeout_s,
        tls=b.tls,
        ca_file=b.ca_file,
        cert_file=b.cert_file,
        key_file=b.key_file,
        username=b.username,
        password_file=b.password_file,
        role=cfg.device.role,
        zones=tuple(cfg.device.zones),
        hosts=b.nodes() if b.hosts else (),
    )


def mqtt_link(
    cfg: Config,
    *,
    birth: Callable[[int], bytes],
    downlink: Downlink,
    on_session: Callable[[Session], Coroutine[Any, Any, None]],
    rng: random.Random,
    spawn: Spawn,
) -> MqttLink:
    """The agent's one MQTT link: subscribed to `downlink`'s topics, bdseq kept in state_dir.

    Reconnects back off by [sync] backoff_base_s/backoff_cap_s, jittered with `rng`.
    """
    return MqttLink(
        link_settings(cfg),
        bdseq=BdSeq(cfg.device.state_dir / "bdseq.json"),
        birth=birth,
        subscriptions=downlink.topics,
        on_message=downlink.on_message,
        on_session=on_session,
        backoff=Backoff(cfg.sync.backoff_base_s, cfg.sync.backoff_cap_s),
        rng=rng,
        spawn=spawn,
    )

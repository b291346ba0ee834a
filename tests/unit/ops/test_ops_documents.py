"""documents: the §6 payloads the ops tool signs, checked with the device's own verifier."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.config.model import parse
from agent.documents.appliers import validate_cmd_body
from agent.documents.remote_config import remote_config, trusted_keys
from agent.errors import ConfigError
from agent.modes import validate_mode_body
from agent.ops import documents as d
from agent.ops.keys import public_of
from agent.patrol.core.schema import parse_tasks_body
from sync.verify import Context, Document, Refusal, sign, verify
from tests.kits.agents import make_config

NOW = 1_764_234_902_123
DEV = "pd-0042"
KEY = Ed25519PrivateKey.generate()
TASKS: dict[str, Any] = {
    "tasks": [
        {
            "id": "t-1",
            "name": "Lake loop",
            "staff_id": None,
            "start_ms": NOW,
            "end_ms": NOW + 3_600_000,
            "order": "any",
            "checkpoints": [
                {
                    "id": "cp-1",
                    "name": "Pier",
                    "lat": 34.78,
                    "lon": 113.73,
                    "radius_m": 25,
                    "dwell_s": 10,
                    "tags": [],
                    "photo": False,
                }
            ],
        }
    ]
}


def device_check(
    raw: bytes, typ: str, now_ms: int = NOW, zones: frozenset[str] = frozenset()
) -> Document | Refusal:
    """The device's §6 checks, trusting KEY as it would from a pasted keygen output."""
    pub = public_of(KEY, "ops-1")
    cfg = parse(
        {
            "device": {"id": DEV, "role": "patrol"},
            "trust": {"ops_keys": [{"kid": pub.kid, "public_key": pub.public_key}]},
        }
    )
    ctx = Context(
        dev=DEV,
        zones=zones,
        keys=trusted_keys(cfg),
        last_ver=lambda typ, target: None,
        now_ms=now_ms,
        validators={
            "tasks": parse_tasks_body,
            "mode": validate_mode_body,
            "cmd": validate_cmd_body,
        },
    )
    return verify(typ, raw, ctx)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("500ms", 500), ("90s", 90_000), ("30m", 1_800_000), ("2h", 7_200_000), ("1d", 86_400_000)],
)
def test_durations(text: str, ms: int) -> None:
    assert d.parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "30", "2 hours", "-5m", "1.5h", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        d.parse_duration_ms(text)


def test_expires_forms() -> None:
    assert d.parse_expires(None, NOW) is None
    assert d.parse_expires("never", NOW) is None
    assert d.parse_expires("30m", NOW) == NOW + 1_800_000
    assert d.parse_expires(str(NOW + 5), NOW) == NOW + 5
    assert d.parse_expires("2025-11-27T17:15:02.123+08:00", NOW - 1) == NOW


def test_iso_time_needs_an_offset_and_past_expiry_is_refused() -> None:
    assert d.parse_time_ms("1970-01-01T00:00:01+00:00", NOW) == 1000
    with pytest.raises(ValueError, match="UTC offset"):
        d.parse_time_ms("2026-05-01T08:00", NOW)
    with pytest.raises(ValueError, match="already past"):
        d.parse_expires(str(NOW - 1), NOW)


@given(st.integers(1, 10_000), st.sampled_from(["ms", "s", "m", "h", "d"]), st.integers(0, 2**45))
def test_expiry_from_a_duration_is_always_after_now(n: int, unit: str, now: int) -> None:
    exp = d.parse_expires(f"{n}{unit}", now)
    assert exp is not None and exp > now


def test_topics_and_retain() -> None:
    dev, zone = d.DocTarget(dev=DEV), d.DocTarget(zone="ruyihu.cbd")
    assert d.topic_for("tasks", dev) == f"grid/v1/{DEV}/desired/tasks"
    assert d.topic_for("config", dev) == f"grid/v1/{DEV}/desired/config"
    assert d.topic_for("mode", zone) == "grid/v1/zone/ruyihu.cbd/desired/mode"
    assert d.topic_for("cmd", dev) == f"grid/v1/{DEV}/cmd"
    with pytest.raises(ValueError, match="only mode"):
        d.topic_for("tasks", zone)
    assert d.prepare("cmd", dev, {}, now_ms=NOW, doc_id="x").retain is False
    assert d.prepare("mode", dev, {}, now_ms=NOW, doc_id="x").retain is True


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError):
        d.DocTarget()
    with pytest.raises(ValueError):
        d.DocTarget(dev="PD_1")
    with pytest.raises(ValueError):
        d.DocTarget(dev="a", zone="b")
    with pytest.raises(ValueError):
        d.DocTarget(zone="ruyihu..cbd")


def test_payload_fields_and_default_ver() -> None:
    p = d.prepare("tasks", d.DocTarget(dev=DEV), TASKS, now_ms=NOW, doc_id="id-1", exp=NOW + 1)
    assert p.payload == {
        "typ": "tasks",
        "id": "id-1",
        "target": {"dev": DEV},
        "ver": NOW,
        "iat": NOW,
        "exp": NOW + 1,
        "body": TASKS,
    }
    assert (
        d.prepare("tasks", d.DocTarget(dev=DEV), TASKS, now_ms=NOW, doc_id="i", ver=7).payload[
            "ver"
        ]
        == 7
    )


@pytest.mark.parametrize(
    ("typ", "target", "body"),
    [
        ("tasks", d.DocTarget(dev=DEV), TASKS),
        ("mode", d.DocTarget(dev=DEV), d.mode_body("holiday", "festival")),
        ("mode", d.DocTarget(zone="ruyihu"), d.mode_body("emergency", "flood")),
        ("cmd", d.DocTarget(dev=DEV), d.cmd_body("status_now", {})),
    ],
)
def test_signed_documents_pass_the_device_checks(
    typ: str, target: d.DocTarget, body: dict[str, Any]
) -> None:
    p = d.prepare(
        typ,
        target,
        body,
        now_ms=NOW,
        doc_id="01936f4e-6c1a-7c3e-9a51-3f0b7f1c2d4e",
        exp=NOW + 60_000,
    )
    raw = sign(p.payload, "ops-1", KEY)
    result = device_check(raw, typ, zones=frozenset({"ruyihu"}))
    assert isinstance(result, Document), result
    assert (result.id, result.ver, result.exp) == (p.doc_id, NOW, NOW + 60_000)


def test_expired_document_is_refused_by_the_device() -> None:
    p = d.prepare("tasks", d.DocTarget(dev=DEV), TASKS, now_ms=NOW, doc_id="x", exp=NOW + 1000)
    result = device_check(sign(p.payload, "ops-1", KEY), "tasks", now_ms=NOW + 1000)
    assert isinstance(result, Refusal) and result.reason == "expired"


def test_mode_and_cmd_bodies_are_checked() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        d.mode_body("panic", "x")
    with pytest.raises(ValueError, match="reason"):
        d.mode_body("holiday", "  ")
    with pytest.raises(ValueError, match="action"):
        d.cmd_body("reboot", {})


def test_tasks_body_errors_name_the_key_path() -> None:
    bad = {"tasks": [{**TASKS["tasks"][0], "order": "random"}]}
    with pytest.raises(ConfigError) as err:
        d.tasks_body(bad)
    assert err.value.problems[0][0] == "tasks[0].order"


def test_config_body_leaves_out_local_keys_and_is_validated(tmp_path: Any) -> None:
    cfg = make_config(tmp_path, 1883)
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["broker"].update(username="pd", password_file="/etc/pw")
    body, removed = d.config_body(data, DEV)
    assert "id" not in body["device"] and "username" not in body["broker"]
    assert sorted(removed) == [
        "broker.password_file",
        "broker.username",
        "device.id",
        "device.state_dir",
    ]
    remote_config(cfg, body)  # what the device itself will accept
    assert body["modes"] == data["modes"]
    data["sync"]["inflight_window"] = 0
    with pytest.raises(ConfigError) as err:
        d.config_body(data, DEV)
    assert err.value.problems[0][0] == "sync.inflight_window"


def test_too_large_documents_are_refused_before_sending() -> None:
    d.check_size(b"x" * 262144)
    with pytest.raises(ValueError, match="at most 262144"):
        d.check_size(b"x" * 262145)

"""The local API over a real unix socket and 127.0.0.1, against the driver."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.model import ModeProfile
from agent.errors import ConfigError
from agent.patrol.camera import Camera
from agent.patrol.driver import PatrolDriver
from agent.patrol.localapi import LocalApi
from sync.outbox import Outbox
from tests.kits.aio import wait_until
from tests.kits.patrol import (
    at,
    camera_cfg,
    cp,
    fix_at,
    http,
    jpeg_folder,
    outbox_events,
    record,
    rig,
    task,
)

TASKS = record([task("t", [cp("gate", at(0, 0)), cp("kiosk", at(200, 0))])])


def jpost(where: Path | int, path: str, data: Any) -> Any:
    return http(where, "POST", path, json.dumps(data).encode(), content_type="application/json")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Path, PatrolDriver, Outbox, Any]]:
    cam = Camera(camera_cfg(jpeg_folder(tmp_path / "pics")))
    prof = ModeProfile(p0_incident_levels=[1])
    sock = tmp_path / "api.sock"
    async with (
        cam,
        rig(tmp_path / "s", TASKS, camera=cam, profile=prof) as (d, ob, _m, fed),
        LocalApi(d, socket_path=sock, max_body=1024),
    ):
        yield sock, d, ob, fed


async def test_incident_is_stored_with_position_and_photo(api: Any) -> None:
    sock, driver, outbox, fed = api
    await fed.fix(fix_at(at(3, 4), acc=2.5))
    await wait_until(lambda: driver.current_fix()[0] is not None)
    status, _, body = await jpost(
        sock, "/incident", {"category": "sanitation", "level": 2, "note": "bin overflowing"}
    )
    assert status == 201 and body["kind"] == "incident"
    stored = (await outbox_events(outbox, "incident"))[0]
    assert stored["id"] == body["id"] and stored["seq"] == body["seq"]
    b = stored["body"]
    assert (b["category"], b["level"], b["note"], b["staff_id"]) == (
        "sanitation",
        2,
        "bin overflowing",
        "s-1023",
    )
    assert b["lat"] is not None and b["acc_m"] == 2.5 and len(b["photos"]) == 1
    rows = await outbox.fetch((-1, -1), 1000)
    assert [r.priority for r in rows if r.topic.endswith("/evt/incident")] == [1]
    # Level 1 is priority 0 in this mode profile; photo: false takes none.
    status, _, body = await jpost(
        sock, "/incident", {"category": "fire", "level": 1, "photo": False}
    )
    assert status == 201
    rows = await outbox.fetch((-1, -1), 1000)
    fire = [r for r in rows if r.topic.endswith("/evt/incident") and b'"fire"' in r.payload]
    assert fire[0].priority == 0 and json.loads(fire[0].payload)["body"]["photos"] == []


async def test_sos_is_an_alarm_at_priority_0(api: Any) -> None:
    sock, _driver, outbox, _fed = api
    status, _, body = await jpost(sock, "/sos", {"note": "help at the pier"})
    assert status == 201 and body["kind"] == "alarm"
    rows = [r for r in await outbox.fetch((-1, -1), 100) if r.topic.endswith("/evt/alarm")]
    assert [r.priority for r in rows] == [0]
    alarm = json.loads(rows[0].payload)["body"]
    assert alarm == {
        "type": "sos",
        "lat": None,
        "lon": None,
        "acc_m": None,
        "note": "help at the pier",
    }
    status, _, _ = await http(sock, "POST", "/sos", b"")  # no body at all is fine for SOS
    assert status == 201


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"category": "graffiti", "level": 2}, "category", "Input should be"),
        ({"category": "fire", "level": 5}, "level", "less than or equal to 4"),
        ({"category": "fire", "level": "2"}, "level", "valid integer"),
        ({"category": "fire", "level": 2, "photo": 1}, "photo", "valid boolean"),
        ({"category": "fire", "level": 2, "severity": "high"}, "severity", "unknown field"),
        ({"level": 2}, "category", "Field required"),
    ],
)
async def test_incident_validation_names_the_field(
    api: Any, data: dict[str, Any], field: str, problem: str
) -> None:
    sock, _driver, outbox, _fed = api
    status, _, body = await jpost(sock, "/incident", data)
    assert status == 400 and body["error"] == "invalid"
    assert any(p["field"] == field and problem in p["problem"] for p in body["problems"]), body
    assert await outbox_events(outbox, "incident") == []


async def test_transport_errors_are_clear(api: Any) -> None:
    sock, _driver, _outbox, _fed = api
    good = json.dumps({"category": "fire", "level": 2}).encode()
    status, _, body = await http(sock, "POST", "/incident", good, content_type="text/plain")
    assert (status, body["error"]) == (415, "unsupported_media_type")
    big = json.dumps({"category": "fire", "level": 2, "note": "x" * 2000}).encode()
    status, _, body = await http(sock, "POST", "/incident", big, content_type="application/json")
    assert (status, body["error"]) == (413, "too_large")
    status, _, body = await http(
        sock, "POST", "/incident", b"{nope", content_type="application/json"
    )
    assert (status, body["error"]) == (400, "bad_json")
    status, _, body = await http(sock, "POST", "/incident", b"[1]", content_type="application/json")
    assert (status, body["error"]) == (400, "bad_json")
    status, _, body = await http(sock, "GET", "/nowhere")
    assert (status, body["error"]) == (404, "not_found") and "/incident" in body["endpoints"]
    status, headers, body = await http(sock, "GET", "/incident")
    assert (status, body["error"], headers["Allow"]) == (405, "method_not_allowed", "POST")
    status, _, body = await http(sock, "DELETE", "/status")
    assert status == 405
    status, _, body = await http(
        sock, "POST", "/sos", b"{}", content_type="application/json", transfer_encoding="chunked"
    )
    assert status == 411


async def test_manual_checkin_status_and_tasks(api: Any) -> None:
    sock, driver, outbox, fed = api
    status, _, body = await jpost(sock, "/checkin/manual", {})
    assert (status, body["reason"]) == (409, "no_fix")  # no fix and no obvious checkpoint
    await fed.fix(fix_at(at(190, 5), acc=4.0))
    await wait_until(lambda: driver.current_fix()[0] is not None)
    status, _, body = await http(sock, "POST", "/checkin/manual", b"")
    assert status == 201 and body["checkpoint_id"] == "kiosk" and body["checked_in"]
    checkin = (await outbox_events(outbox, "checkin"))[0]["body"]
    assert checkin["method"] == "manual" and len(checkin["photos"]) == 1  # always a photo
    status, _, body = await http(sock, "GET", "/status")
    assert status == 200 and body["patrol"]["checkins"] == 1
    assert body["patrol"]["gps"]["fix"] == "3d"
    status, _, body = await http(sock, "GET", "/tasks")
    states = {c["id"]: c["state"] for c in body["tasks"][0]["checkpoints"]}
    assert status == 200 and states == {"gate": "open", "kiosk": "checked"}


async def test_socket_is_0660_and_removed_on_exit(api: Any) -> None:
    sock = api[0]
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660


async def test_tcp_only_on_loopback(tmp_path: Path) -> None:
    async with rig(tmp_path / "s", TASKS) as (driver, _ob, _m, _fed):
        for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
            with pytest.raises(ConfigError, match="loopback only"):
                LocalApi(driver, host=host, port=0)
        async with LocalApi(driver, port=0) as api:
            assert api.port
            status, _, body = await http(api.port, "GET", "/tasks")
            assert status == 200 and body["ver"] == 1
        path = tmp_path / "api.sock"
        async with LocalApi(driver, socket_path=path):
            assert path.exists()
        assert not path.exists()
        path.write_text("not a socket")
        with pytest.raises(ConfigError, match="not a socket"):
            async with LocalApi(driver, socket_path=path):
                pass


async def test_safety_answer_over_the_local_api(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    still = ModeProfile(man_down_after_s=1, safety_grace_s=30)
    async with (
        rig(tmp_path / "s", TASKS, profile=still) as (d, outbox, _m, fed),
        LocalApi(d, socket_path=sock, max_body=1024),
    ):
        assert (await jpost(sock, "/safety/ok", {}))[::2] == (200, {"answered": False})
        assert (await jpost(sock, "/safety/ok", {"extra": 1}))[0] == 400
        await fed.fix(fix_at(at(0, 60)))
        await wait_until(lambda: d.safety.asking, what="the prompt")
        assert (await http(sock, "POST", "/safety/ok"))[::2] == (200, {"answered": True})
        await wait_until(lambda: d.safety.stats["answered"] == 1)
        notices = [e["body"] for e in await outbox_events(outbox, "notice")]
    [check] = [n for n in notices if n["type"] == "safety_check"]
    assert (check["check"], check["answer"]) == ("man_down", "api")

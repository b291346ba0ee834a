"""The companion page's server with aiohttp's test client against a real driver and outbox:
pairing, session cookie, CSRF, rate limits, the local API's size/type rules, photos, SSE."""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("aiohttp", reason="aiohttp is the companion page's framework (pip .[test])")
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from agent.patrol.companion.access import RateLimiter, Sessions, pairing_code
from agent.patrol.companion.files import device_code, device_secret
from agent.patrol.companion.server import COOKIE, CompanionServer, page_files
from agent.patrol.companion.view import next_checkpoint
from agent.patrol.config import CompanionConfig
from firmware_bridge.geo import bearing_deg
from tests.kits.aio import wait_until
from tests.kits.patrol import at, cp, fix_at, outbox_events, record, rig, stand, task

TASKS = record([task("t", [cp("gate", at(0, 0), dwell=2), cp("kiosk", at(200, 0))])])
Rig = tuple[TestClient, Any, Any, Any, str]


def jpeg_bytes(w: int = 640, h: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Rig]:
    cfg = CompanionConfig(enabled=True, pair_attempts_per_min=3, requests_per_min=600)
    state = tmp_path / "s"
    async with rig(state, TASKS) as (driver, outbox, media, fed):
        server = CompanionServer(
            driver, cfg, state_dir=state, outbox=outbox, media_path=media.path, max_body=1024
        )
        await server.prepare()
        async with TestClient(TestServer(server.app())) as client:
            yield client, driver, outbox, fed, device_code(state, cfg.code_digits)


async def pair(client: TestClient, code: str) -> str:
    resp = await client.post("/api/pair", json={"code": code})
    assert resp.status == 200
    return str((await resp.json())["csrf"])


def test_pairing_code_is_stable_per_device_and_differs_between_devices(tmp_path: Path) -> None:
    a = device_code(tmp_path / "a", 6)
    assert a == device_code(tmp_path / "a", 6) and len(a) == 6 and a.isdigit()
    assert (tmp_path / "a" / "companion.key").stat().st_mode & 0o777 == 0o600
    assert device_code(tmp_path / "b", 6) != a
    assert len(pairing_code(device_secret(tmp_path / "a"), 8)) == 8


def test_sessions_expire_and_the_oldest_goes_past_the_limit() -> None:
    n = iter(range(100))
    s = Sessions(lifetime_ms=1000, limit=2, new_token=lambda: f"t{next(n)}")
    a = s.open(0)
    b = s.open(10)
    c = s.open(20)
    assert s.get(a.token, 30) is None and s.get(b.token, 30) == b
    assert s.get(c.token, 1019) == c and s.get(c.token, 1020) is None


def test_rate_limiter_refills_over_time() -> None:
    lim = RateLimiter(3)
    assert [lim.allow("x", 0) for _ in range(4)] == [True, True, True, False]
    assert lim.allow("y", 0)  # per client
    assert lim.allow("x", 20_000)  # a third of a minute gives one back
    assert lim.retry_after_s("x") >= 1


def test_next_checkpoint_distance_and_bearing() -> None:
    tasks = [
        {
            "id": "t",
            "order": "sequence",
            "ended": None,
            "checkpoints": [
                {"id": "a", "lat": at(100, 0)[0], "lon": at(100, 0)[1], "state": "checked"},
                {
                    "id": "b",
                    "lat": at(0, 50)[0],
                    "lon": at(0, 50)[1],
                    "state": "open",
                    "tags": ["x"],
                },
                {"id": "c", "lat": at(5, 0)[0], "lon": at(5, 0)[1], "state": "open"},
            ],
        }
    ]
    n = next_checkpoint(tasks, at(0, 0))
    assert n is not None and n["id"] == "b"  # sequence: the first open one, not the nearest
    assert n["dist_m"] == pytest.approx(50, abs=0.1) and n["bearing_deg"] == 90
    assert n["methods"] == ["gps", "nfc", "manual"]
    assert round(bearing_deg(*at(0, 0), *at(-10, -10))) == 225


def test_page_is_self_contained() -> None:
    files = page_files()
    html = files["index.html"].decode()
    for text in (html, files["app.js"].decode(), files["app.css"].decode()):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    js = files["app.js"].decode()
    # ES5: no arrow functions, let/const, template strings or classes.
    for es6 in ("=>", "let ", "const ", "`", "class "):
        assert es6 not in js, es6


async def test_everything_needs_pairing_and_a_wrong_code_is_refused(page: Rig) -> None:
    client, _d, _o, _f, code = page
    assert (await client.get("/")).status == 200
    for path in ("/api/state", "/api/session", "/api/events"):
        assert (await client.get(path)).status == 401
    assert (await client.post("/api/sos", json={})).status == 401
    wrong = "0" * 6 if code != "000000" else "111111"
    resp = await client.post("/api/pair", json={"code": wrong})
    assert resp.status == 403 and (await resp.json())["error"] == "wrong_code"
    resp = await client.post("/api/pair", json={"code": code})
    assert resp.status == 200
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age" in cookie
    assert (await client.get("/api/state")).status == 200


async def test_pairing_is_rate_limited(page: Rig) -> None:
    client, _d, _o, _f, code = page
    for _ in range(3):
        await client.post("/api/pair", json={"code": "nope"})
    resp = await client.post("/api/pair", json={"code": code})  # even the right code waits
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    # The body gives the real wait (3 a minute: about 20 s), the page shows it.
    body = await resp.json()
    assert body["retry_after_s"] == int(resp.headers["Retry-After"])
    assert 15 <= body["retry_after_s"] <= 21 and f"{body['retry_after_s']} s" in body["message"]


async def test_sos_says_sent_once_the_broker_has_it(page: Rig) -> None:
    client, _d, outbox, _f, code = page
    h = {"X-CSRF-Token": await pair(client, code)}
    resp = await client.post("/api/sos", json={}, headers=h)
    reply = await resp.json()
    assert resp.status == 201 and reply["sent"] is False  # no broker here: it waits
    assert (await (await client.get("/api/state")).json())["sent"] == []
    events = await client.get("/api/events")
    assert (await events.content.readuntil(b"\n\n")).startswith(b"retry:")
    # The publisher's PUBACK path: the acknowledged rows are deleted from the outbox.
    await outbox.delete([r.rowid for r in await outbox.fetch((-1, -1), 100)])
    line = await events.content.readuntil(b"\n\n")
    assert line.startswith(b"event: sent\n") and f'"seq":{reply["seq"]}'.encode() in line
    events.close()
    assert (await (await client.get("/api/state")).json())["sent"] == [reply["seq"]]


async def test_the_safety_answer_needs_the_session_and_says_whether_a_prompt_waited(
    page: Rig,
) -> None:
    client, driver, _o, _f, code = page
    assert (await client.post("/api/safety/ok", json={})).status == 401
    csrf = await pair(client, code)
    assert (await client.post("/api/safety/ok", json={})).status == 403
    resp = await client.post("/api/safety/ok", json={}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and await resp.json() == {"answered": False}
    assert (await (await client.get("/api/state")).json())["prompt"] is None
    assert driver.safety.stats["answered"] == 0


async def test_requests_are_rate_limited(tmp_path: Path) -> None:
    cfg = CompanionConfig(enabled=True, requests_per_min=10)
    async with rig(tmp_path / "s", TASKS) as (driver, outbox, _media, _fed):
        server = CompanionServer(driver, cfg, state_dir=tmp_path / "s", outbox=outbox)
        await server.prepare()
        async with TestClient(TestServer(server.app())) as client:
            codes = [(await client.get("/api/state")).status for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


async def test_post_without_the_csrf_token_is_refused(page: Rig) -> None:
    client, _d, outbox, _f, code = page
    csrf = await pair(client, code)
    resp = await client.post("/api/sos", json={})
    assert resp.status == 403 and (await resp.json())["error"] == "csrf"
    resp = await client.post("/api/sos", json={}, headers={"X-CSRF-Token": "x" + csrf})
    assert resp.status == 403
    assert await outbox_events(outbox, "alarm") == []
    resp = await client.post("/api/sos", json={"note": "help"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201
    [alarm] = await outbox_events(outbox, "alarm")
    assert alarm["body"]["type"] == "sos" and alarm["body"]["note"] == "help"


async def test_local_api_body_rules_hold(page: Rig) -> None:
    client, _d, outbox, _f, code = page
    h = {"X-CSRF-Token": await pair(client, code)}
    resp = await client.post("/api/sos", data=b"{}", headers={**h, "Content-Type": "text/plain"})
    assert resp.status == 415
    big = json.dumps({"note": "x" * 2000}).encode()
    resp = await client.post(
        "/api/sos", data=big, headers={**h, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    resp = await client.post("/api/sos", json={"note": 5}, headers=h)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid"
    resp = await client.post("/api/sos", json={"extra": 1}, headers=h)
    assert resp.status == 400

    async def chunks() -> AsyncIterator[bytes]:
        yield b"{}"

    resp = await client.post(
        "/api/sos", data=chunks(), headers={**h, "Content-Type": "application/json"}
    )
    assert resp.status == 411
    form = FormData(default_to_multipart=True)
    form.add_field("category", "bogus")
    form.add_field("level", "2")
    resp = await client.post("/api/incident", data=form, headers=h)
    assert resp.status == 400
    form = FormData()
    form.add_field("category", "parking")
    form.add_field("level", "2")
    form.add_field("photo", b"not a picture", filename="p.jpg", content_type="image/jpeg")
    resp = await client.post("/api/incident", data=form, headers=h)
    assert resp.status == 415 and (await resp.json())["error"] == "bad_photo"
    resp = await client.post("/api/incident", json={"category": "parking"}, headers=h)
    assert resp.status == 415  # the incident form is multipart
    assert await outbox_events(outbox, "incident") == []


async def test_incident_with_phone_photos_is_stored_with_media_refs(page: Rig) -> None:
    client, driver, outbox, fed, code = page
    h = {"X-CSRF-Token": await pair(client, code)}
    await fed.fix(fix_at(at(3, 4)))
    await wait_until(lambda: driver.current_fix()[0] is not None)
    form = FormData()
    form.add_field("category", "vending")
    form.add_field("level", "3")
    form.add_field("note", "占道经营 east gate")
    form.add_field("photo", jpeg_bytes(4000, 3000), filename="a.jpg", content_type="image/jpeg")
    resp = await client.post("/api/incident", data=form, headers=h)
    assert resp.status == 201, await resp.text()
    [inc] = await outbox_events(outbox, "incident")
    body = inc["body"]
    assert (body["category"], body["level"], body["note"]) == ("vending", 3, "占道经营 east gate")
    assert body["lat"] is not None and len(body["photos"]) == 1
    ref = body["photos"][0]
    media = await outbox_events(outbox, "media")
    assert [m["body"]["media_id"] for m in media] == [ref["media_id"]]
    # Shrunk on the device to what the link carries.
    photo = await client.get(f"/api/photo/{ref['sha256']}")
    assert photo.status == 200
    assert Image.open(io.BytesIO(await photo.read())).size == (1280, 960)


async def test_manual_checkin_refusal_reason_and_sse_confirmation(page: Rig) -> None:
    client, driver, _o, fed, code = page
    h = {"X-CSRF-Token": await pair(client, code)}
    await fed.fix(fix_at(at(120, 0)))
    await wait_until(lambda: driver.current_fix()[0] is not None)
    resp = await client.post("/api/checkin", json={}, headers=h)
    assert resp.status == 409
    assert (await resp.json())["reason"] == "out_of_reach"
    state = await (await client.get("/api/state")).json()
    assert state["next"]["id"] in ("gate", "kiosk") and state["next"]["dist_m"] > 50
    assert state["health"]["fix"] == "3d" and state["waiting"]["messages"] >= 0
    events = await client.get("/api/events")
    assert events.headers["Content-Type"].startswith("text/event-stream")
    await wait_until(lambda: len(driver.notices) == 1, what="the SSE listener")
    await stand(fed, at(0, 0), 8, int(time.time() * 1000))
    got = b""
    while b"event: checkin" not in got:
        got += await asyncio.wait_for(events.content.readline(), 10)
    data = json.loads((await events.content.readline()).decode().removeprefix("data: "))
    assert data["checkpoint_id"] == "gate" and data["method"] == "gps"
    events.close()


async def test_session_cookie_is_required_and_logout_ends_it(page: Rig) -> None:
    client, _d, _o, _f, code = page
    csrf = await pair(client, code)
    assert (await client.get("/api/session")).status == 200
    resp = await client.post("/api/logout", json={}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    client.session.cookie_jar.clear()
    assert (await client.get("/api/session")).status == 401
    assert COOKIE == "ge_sid"


@given(st.floats(-60, 60), st.floats(-179, 179), st.floats(-500, 500), st.floats(-500, 500))
def test_bearing_is_in_range_and_points_at_the_target(
    lat: float, lon: float, north: float, east: float
) -> None:
    lat2, lon2 = at(north, east, (lat, lon))
    b = bearing_deg(lat, lon, lat2, lon2)
    assert 0 <= b < 360
    if math.hypot(north, east) > 1:
        expected = math.degrees(math.atan2(east, north)) % 360
        assert min(abs(b - expected), 360 - abs(b - expected)) < 0.5


def test_companion_code_command_prints_the_devices_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    state = tmp_path / "state"
    conf = tmp_path / "agent.toml"
    conf.write_text(
        f'[device]\nid = "pd-1"\nrole = "patrol"\nstate_dir = "{state}"\n'
        "[companion]\nenabled = true\ncode_digits = 8\n"
    )
    assert main(["companion-code", "--config", str(conf)]) == 0
    assert capsys.readouterr().out.strip() == device_code(state, 8)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org"])
def test_companion_listens_on_one_given_address(host: str) -> None:
    with pytest.raises(ValueError, match="address"):
        CompanionConfig(host=host)
    assert CompanionConfig().enabled is False  # off by default

"""Fuzz targets for every parser of outside bytes, with their strategies.

Each `check_*` feeds one input and asserts the parser's contract: only the documented error
type escapes, and a rejected input changes no state. tests/unit/sync/test_fuzz.py runs them briefly,
bench/fuzz.py for a fixed budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st

from agent.config.model import load
from agent.documents.appliers import validate_cmd_body
from agent.documents.remote_config import validate_body
from agent.errors import CodecError, ConfigError
from agent.modes import validate_mode_body
from agent.patrol.core.schema import parse_tasks_body
from agent.patrol.localapi import LocalApi
from agent.vision.alarm_http import HttpError, parse_head
from agent.vision.alarm_parse import parse_alarm
from firmware_bridge import pn532
from firmware_bridge.fix import EpochMerger
from firmware_bridge.nmea import NmeaDecoder, encode_sentence
from firmware_bridge.nmea_fields import parse_fields
from sync.messages import Stored
from sync.verify import Context, Document, Refusal, verify
from tests.kits.agents import DEV, OpsKey, make_config

T = TypeVar("T")

# JSON values, nested a little: the shapes a forged document or alarm body can take.
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = ["typ", "id", "target", "ver", "iat", "exp", "body", "dev", "zone", "mode", "reason",
         "action", "args", "tasks", "sync", "modes", "broker", "checkpoints"]  # fmt: skip
# Nesting past Python's recursion limit: json raises RecursionError, not ValueError.
deep_json = st.integers(min_value=2000, max_value=6000).map(lambda n: b"[" * n + b"]" * n)
keyed = st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), json_value, max_size=8)

# NMEA: real talkers and types with fuzzed fields, framed with a right checksum, plus noise.
nmea_sentence = st.builds(
    lambda t, k, fields: encode_sentence(t + k, fields),
    st.sampled_from(["GP", "GN", "GL", "BD", "GA"]),
    st.sampled_from(["GGA", "RMC", "GSA", "GST", "VTG", "ZDA", "GSV", "TXT"]),
    st.lists(st.text(alphabet="0123456789.-NSEWAVMK,", max_size=12), max_size=20),
)
nmea_stream = st.lists(nmea_sentence | st.binary(max_size=40), max_size=30).map(b"".join)


def check_nmea(data: bytes) -> None:
    """Framing, field parsing and the epoch merger take anything without raising."""
    merger = EpochMerger()
    for i, sentence in enumerate(NmeaDecoder().feed(data)):
        parse_fields(sentence)
        merger.push(sentence, mono_ms=i * 100)


pn532_stream = st.lists(
    st.builds(pn532.encode_frame, st.sampled_from([pn532.TFI_HOST, pn532.TFI_CHIP]), st.binary())
    | st.binary(max_size=30),
    max_size=10,
).map(b"".join)


def check_pn532(data: bytes) -> None:
    """Frames and the payload parsers behind them take anything without raising."""
    for frame in pn532.Pn532Decoder().feed(data):
        for cmd in (0x02, 0x4A):
            payload = pn532.response_payload(frame, cmd)
            if payload is not None:
                pn532.parse_firmware(payload)
                pn532.parse_passive_target(payload)


_KEY = OpsKey("fuzz")
_LOCAL = make_config(Path(tempfile.gettempdir()) / "fuzz-state", 1883, _KEY)
_VALIDATORS = {
    "mode": validate_mode_body,
    "cmd": validate_cmd_body,
    "tasks": parse_tasks_body,
    "config": validate_body(_LOCAL),
}
_CTX = Context(
    dev=DEV,
    zones=frozenset({"ruyihu"}),
    keys={_KEY.kid: _KEY.private.public_key()},
    last_ver=lambda typ, target: 5,
    now_ms=1_800_000_000_000,
    validators=_VALIDATORS,
)
downlink_doc = st.builds(
    lambda typ, body, ver, target: (
        typ,
        _KEY.doc(typ, body, ver=ver, target=target) if isinstance(body, dict) else b"",
    ),
    st.sampled_from(list(_VALIDATORS)),
    keyed,
    st.integers(min_value=0, max_value=12),
    st.sampled_from([{"dev": DEV}, {"zone": "ruyihu"}, {"dev": "other"}]),
)


def check_downlink(topic_typ: str, raw: bytes) -> Document | Refusal:
    """Signed documents with forged bodies: a Document or a Refusal, never an exception."""
    out = verify(topic_typ, raw, _CTX)
    assert isinstance(out, Document | Refusal)
    return out


def check_signed_payload(payload: Mapping[str, Any], typ: str) -> None:
    """Any JSON object, signed by a trusted key, goes through all six checks without raising."""
    from sync.verify import sign

    check_downlink(typ, sign(payload, _KEY.kid, _KEY.private))


toml_text = st.lists(
    st.sampled_from(["[device]", "[broker]", "[sync]", "[modes.profiles.normal]", "[[cameras]]"])
    | st.builds(
        lambda k, v: f"{k} = {v}",
        st.sampled_from(
            [
                "id",
                "role",
                "port",
                "host",
                "state_dir",
                "zones",
                "tls",
                "keepalive_s",
                "outbox_budget_bytes",
                "status_interval_s",
                "x",
            ]
        ),
        st.sampled_from(['"pd-1"', '"patrol"', "5", "-1", "1e309", "[]", "true", '"', "{}"]),
    )
    | st.text(max_size=20),
    max_size=12,
).map("\n".join)


deep_toml = st.integers(min_value=2000, max_value=6000).map(lambda n: f"x = {'[' * n}1{']' * n}")


def check_config(text: str | bytes, where: Path) -> None:
    """A config file of any content loads or raises ConfigError."""
    where.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    with contextlib.suppress(ConfigError):
        load(where)


alarm_body = (
    st.binary(max_size=200)
    | deep_json
    | json_value.map(lambda v: json.dumps(v).encode())
    | keyed.map(lambda v: json.dumps(v).encode())
    | st.builds(
        lambda tag, text: (
            f"<EventNotificationAlert><{tag}>{text}</{tag}></EventNotificationAlert>".encode()
        ),
        st.sampled_from(["eventType", "eventState", "dateTime", "channelID", "x"]),
        st.text(alphabet="abcdefgh0123456789<>&;-:T", max_size=20),
    )
)
MEDIA_TYPES = ["application/json", "application/xml", "text/xml", "text/plain"]


def check_alarm(media_type: str, body: bytes) -> None:
    """A camera alarm body parses or raises CodecError."""
    with contextlib.suppress(CodecError):
        parse_alarm("cam-1", media_type, body)


def check_alarm_head(raw: bytes) -> None:
    """An alarm request head parses or raises HttpError."""
    with contextlib.suppress(HttpError):
        parse_head(raw)


class RecordingPatrol:
    """The patrol side of the local API, recording every call that would change state."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _stored(self, kind: str) -> Stored:
        self.calls.append(kind)
        return Stored(str(uuid.uuid4()), len(self.calls), f"grid/v1/{DEV}/evt/{kind}", b"{}", 1)

    async def incident(self, *, category: str, level: int, note: str, photo: bool) -> Stored:
        return self._stored("incident")

    async def sos(self, *, note: str) -> Stored:
        return self._stored("sos")

    async def manual_checkin(self) -> dict[str, Any]:
        self.calls.append("manual")
        return {"queued": False}

    def status(self) -> Mapping[str, Any]:
        return {"ok": True}

    def tasks_view(self) -> Mapping[str, Any]:
        return {"tasks": []}


http_request = st.builds(
    lambda method, path, headers, body: (
        (
            f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        ).encode()
        + body
    ),
    st.sampled_from(["GET", "POST", "PUT", "BROKEN", ""]),
    st.sampled_from(["/incident", "/sos", "/checkin/manual", "/status", "/tasks", "/x", ""]),
    st.lists(
        st.tuples(
            st.sampled_from(["Content-Length", "Content-Type", "Host", "X"]),
            st.sampled_from(["0", "5", "-1", "99999999", "application/json", "text/plain", ""]),
        ),
        max_size=4,
    ),
    keyed.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=60) | deep_json,
) | st.binary(max_size=200)
# Framed right (length, type), so the body reaches the JSON and schema checks.
_api_body = keyed.map(lambda v: json.dumps(v).encode()) | deep_json | st.binary(max_size=60)
http_request |= st.builds(
    lambda path, body: (
        (
            f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    ),
    st.sampled_from(["/incident", "/sos", "/checkin/manual"]),
    _api_body,
)


async def check_local_api(api_sock: Path, patrol: RecordingPatrol, raw: bytes) -> None:
    """Any bytes get an HTTP answer; a refused request reached nothing."""
    before = len(patrol.calls)
    reader, writer = await asyncio.open_unix_connection(str(api_sock))
    try:
        writer.write(raw)
        await writer.drain()
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    # Every complete request head gets an answer (an unhandled error closes it silently).
    if not reply:
        assert b"\r\n\r\n" not in raw and len(patrol.calls) == before, raw
        return
    status = int(reply.split(b" ", 2)[1])
    assert 200 <= status < 600
    if 400 <= status < 500 and status != 409:  # 409: the patrol itself said no
        assert len(patrol.calls) == before, (raw, reply)


class LoopThread:
    """Runs an event loop in a thread, so sync hypothesis tests can drive async components."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._stack = contextlib.AsyncExitStack()

    def enter(self, cm: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter `cm` on the loop; it is exited by close()."""
        if not self._thread.is_alive():
            self._thread.start()
        return self.run(self._stack.enter_async_context(cm))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        """Exit what was entered, stop the loop."""
        if self._thread.is_alive():
            self.run(self._stack.aclose())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()


class ApiThread(LoopThread):
    """A real LocalApi on a unix socket, served by its own event loop in a thread."""

    def __init__(self, sock: Path) -> None:
        super().__init__()
        self.sock = sock
        self.patrol = RecordingPatrol()

    def __enter__(self) -> ApiThread:
        self.enter(LocalApi(self.patrol, socket_path=self.sock, max_body=16 * 1024, timeout_s=2))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, raw: bytes) -> None:
        """One request through check_local_api."""
        self.run(check_local_api(self.sock, self.patrol, raw))

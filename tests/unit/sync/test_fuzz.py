"""Every parser of outside bytes under hypothesis, briefly (bench/fuzz.py long).

Contract: only the documented error escapes, and rejected input changes no state.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kits import fuzz
from tests.kits.fuzz_downlink import AgentThread, downlink_case

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(fuzz.nmea_stream)
def test_nmea_sentences_fields_and_epochs(data: bytes) -> None:
    fuzz.check_nmea(data)


@FAST
@given(fuzz.pn532_stream)
def test_pn532_frames_and_payloads(data: bytes) -> None:
    fuzz.check_pn532(data)


@FAST
@given(fuzz.downlink_doc)
def test_signed_documents_with_forged_bodies(doc: tuple[str, bytes]) -> None:
    fuzz.check_downlink(*doc)


@FAST
@given(fuzz.keyed, st.sampled_from(["mode", "cmd", "tasks", "config"]))
def test_any_signed_payload(payload: dict[str, Any], typ: str) -> None:
    fuzz.check_signed_payload(payload, typ)


@FAST
@given(fuzz.toml_text | fuzz.deep_toml | st.binary(max_size=200))
def test_config_files(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        fuzz.check_config(text, Path(d) / "agent.toml")


@FAST
@given(st.sampled_from(fuzz.MEDIA_TYPES), fuzz.alarm_body)
def test_camera_alarm_bodies(media_type: str, body: bytes) -> None:
    fuzz.check_alarm(media_type, body)


@FAST
@given(fuzz.http_request)
def test_camera_alarm_request_heads(raw: bytes) -> None:
    fuzz.check_alarm_head(raw.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")


@pytest.fixture(scope="module")
def api() -> Iterator[fuzz.ApiThread]:
    with tempfile.TemporaryDirectory() as d, fuzz.ApiThread(Path(d) / "api.sock") as a:
        yield a


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=fuzz.http_request)
def test_local_api_requests(api: fuzz.ApiThread, raw: bytes) -> None:
    api.check(raw)


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentThread]:
    with tempfile.TemporaryDirectory() as d, AgentThread(Path(d) / "state") as a:
        yield a


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=downlink_case)
def test_a_document_not_applied_changes_no_state(
    agent: AgentThread, case: tuple[str, dict[str, str], Any, int]
) -> None:
    agent.check(*case)

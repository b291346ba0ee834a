"""PN532 HSU codec: frames.tsv accepted/rejected as described, UIDs, fuzzing."""

from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import pn532
from firmware_bridge.pn532 import Frame, Pn532Decoder
from tests.kits.fb import PN532_DIR, require

INFO, ACK = "info", "ack"
# meaning (frames.tsv column 4) -> frame kinds a fresh decoder must produce from that line.
EXPECTED: dict[str, list[str]] = {
    "ACK": [ACK],
    "NACK": ["nack"],
    "application error frame 0x7F": ["error"],
    "Diagnose cmd data '123'": [INFO],
    "good response data '456'": [INFO],
    "bad LCS -> reject": [],
    "LEN/data length mismatch -> reject": [],
    "invalid start code -> reject": [],
    "bad DCS -> reject": [],
    "wrong TFI D6 -> reject": [],
    "unexpected response code -> reject": [INFO],  # a sound frame; the driver's matcher refuses it
    "InListPassiveTarget 1 target 106A": [INFO],
    "1 target SENS_RES 0044 SEL_RES 00 UID 0416C6C2D73881": [INFO],
    "1 target SEL_RES 40 (DEP) UID 0416C6C2D73881": [INFO],
    "no target": [INFO],
    "ACK + no-target response in one read": [ACK, INFO],
    "Type 1 (Jewel) target": [INFO],
    "MIFARE Classic 1K UID 82ACB95D": [INFO],
    "GetFirmwareVersion PN532 v1.6 support 07": [INFO],
    "InListPassiveTarget 212 FeliCa": [INFO],
    "InDeselect": [INFO],
    "ACK + InDeselect response": [ACK, INFO],
    "RFConfiguration RF off": [INFO],
    "chunk 1/3 of split response": [],
    "chunk 2/3": [],
    "chunk 3/3": [],
    "HSU wake-up": [],
    "SAMConfiguration normal": [INFO],
    "garbage reply (unexpected)": [],
    "SAMConfiguration normal, timeout 0, IRQ 1": [INFO],
    "SAMConfiguration response": [INFO],
    "ACK + SAMConfiguration response in one chunk": [ACK, INFO],
    "RFConfiguration retries": [INFO],
    "RFConfiguration response": [INFO],
}


def _rows() -> list[dict[str, str]]:
    path = require(PN532_DIR / "frames.tsv")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_frames_tsv_is_fully_covered() -> None:
    assert {row["meaning"] for row in _rows()} == set(EXPECTED)


def test_frames_tsv_accepted_or_rejected_as_described() -> None:
    for row in _rows():
        if row["meaning"].startswith("chunk"):
            continue  # one frame split over three reads: see the next test
        frames = Pn532Decoder().feed(bytes.fromhex(row["hex"]))
        assert [f.kind for f in frames] == EXPECTED[row["meaning"]], row["meaning"]
        tfi = pn532.TFI_HOST if row["dir"] == "tx" else pn532.TFI_CHIP
        assert all(f.tfi == tfi for f in frames if f.kind == "info"), row["meaning"]


def test_split_response_from_tsv_is_one_frame() -> None:
    dec = Pn532Decoder()
    chunks = [bytes.fromhex(r["hex"]) for r in _rows() if r["meaning"].startswith("chunk")]
    out = [dec.feed(c) for c in chunks]
    assert out[:2] == [[], []]
    [frame] = out[2]
    assert pn532.response_payload(frame, pn532.CMD_RF_CONFIGURATION) == b""


def _one(hexstr: str) -> Frame:
    [frame] = Pn532Decoder().feed(bytes.fromhex(hexstr))
    return frame


def test_response_matching() -> None:
    good = _one("00 00 ff 05 fb d5 01 34 35 36 8b 00")
    assert pn532.response_payload(good, 0x00) == b"456"
    wrong_code = _one("00 00 ff 05 fb d5 02 34 35 36 8a 00")
    assert pn532.response_payload(wrong_code, 0x00) is None
    host = _one("00 00 ff 05 fb d4 00 31 32 33 96 00")
    assert pn532.response_payload(host, 0xFF) is None


@pytest.mark.parametrize(
    ("hexstr", "uid"),
    [
        ("00 00 ff 0f f1 d5 4b 01 01 00 44 00 07 04 16 c6 c2 d7 38 81 61 00", "0416C6C2D73881"),
        ("00 00 ff 0f f1 d5 4b 01 01 00 44 40 07 04 16 c6 c2 d7 38 81 21 00", "0416C6C2D73881"),
        ("00 00 ff 0c f4 d5 4b 01 01 04 00 08 04 82 ac b9 5d 8a 00", "82ACB95D"),
    ],
)
def test_uids_from_real_answers(hexstr: str, uid: str) -> None:
    payload = pn532.response_payload(_one(hexstr), pn532.CMD_IN_LIST_PASSIVE_TARGET)
    assert payload is not None
    target = pn532.parse_passive_target(payload)
    assert target is not None and target.uid == uid and target.tg == 1


def test_ten_byte_uid_and_bad_lengths() -> None:
    uid = bytes(range(0xA0, 0xAA))
    payload = b"\x01\x01\x00\x84\x20\x0a" + uid
    target = pn532.parse_passive_target(payload)
    assert target is not None and target.uid == "A0A1A2A3A4A5A6A7A8A9"
    assert pn532.parse_passive_target(b"\x01\x01\x00\x44\x00\x05" + bytes(5)) is None
    assert pn532.parse_passive_target(b"\x01\x01\x00\x44\x00\x07" + bytes(3)) is None
    assert pn532.parse_passive_target(b"\x00") is None


def test_no_target_and_jewel_are_not_uids() -> None:
    no_target = "00 00 ff 03 fd d5 4b 00 e0 00"
    jewel = "00 00 ff 0a f6 d5 4b 01 01 0c 00 b2 56 54 00 76 00"
    for hexstr in (no_target, jewel):
        payload = pn532.response_payload(_one(hexstr), pn532.CMD_IN_LIST_PASSIVE_TARGET)
        assert payload is not None and pn532.parse_passive_target(payload) is None


def test_firmware_version() -> None:
    payload = pn532.response_payload(_one("00 00 ff 06 fa d5 03 32 01 06 07 e8 00"), 0x02)
    fw = pn532.parse_firmware(payload or b"")
    assert fw is not None and fw.ic == 0x32 and str(fw) == "PN532 v1.6"


def test_extended_frames_from_nfcpy() -> None:
    cmd = bytes.fromhex("0000ffffff0105fad4003132 33") + bytes(256) + bytes.fromhex("9600")
    [frame] = Pn532Decoder().feed(cmd)
    assert frame.extended and frame.tfi == pn532.TFI_HOST and frame.data[:4] == b"\x00123"
    rsp = bytes.fromhex("0000ffffff0105fad5013435 36") + bytes(256) + bytes.fromhex("8b00")
    [frame] = Pn532Decoder().feed(rsp)
    assert pn532.response_payload(frame, 0x00) == b"456" + bytes(256)
    bad = bytes.fromhex("0000ffffff0104fad5013435 36") + bytes(256) + bytes.fromhex("8b00")
    dec = Pn532Decoder()
    assert dec.feed(bad) == []
    assert dec.stats()["drop_bad_lcs"] == 1


def test_encoders_match_the_documented_frames() -> None:
    assert pn532.encode_command(0x4A, b"\x01\x00") == bytes.fromhex("0000ff04fcd44a0100e100")
    assert pn532.encode_command(0x14, b"\x01\x14\x01") == bytes.fromhex("0000ff05fbd414011401 0200")
    assert pn532.encode_response(0x02, bytes.fromhex("32010607")) == bytes.fromhex(
        "0000ff06fad50332010607e800"
    )
    assert pn532.encode_frame(0xD4, bytes(300))[3:5] == b"\xff\xff"


def test_garbage_then_frame_resyncs_and_counts() -> None:
    dec = Pn532Decoder()
    out = dec.feed(bytes.fromhex("98 80 98 80 1e 66") + pn532.ACK)
    assert [f.kind for f in out] == ["ack"]
    assert dec.stats()["garbage_bytes"] == 6


def test_frame_hidden_after_a_bad_one_is_found() -> None:
    bad = bytes.fromhex("00 00 ff 05 fb d5 01 34 35 36 8a 00")  # bad DCS
    good = bytes.fromhex("00 00 ff 02 fe d5 33 f8 00")
    dec = Pn532Decoder()
    assert [f.data for f in dec.feed(bad + good)] == [b"\x33"]
    assert dec.stats()["drop_bad_dcs"] == 1


def test_reset_forgets_a_partial_frame() -> None:
    dec = Pn532Decoder()
    dec.feed(bytes.fromhex("00 00 ff 02 fe"))
    dec.reset()
    assert dec.feed(bytes.fromhex("d5 33 f8 00")) == []
    assert dec.stats()["drop_truncated"] == 1


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [
    bytes.fromhex(h)
    for h in (
        "0000ff00ff00",
        "0000ffff0000",
        "0000ff01ff7f8100",
        "0000ff05fbd5013435368b00",
        "0000ff0ff1d54b0101004400070416c6c2d738816100",
        "0000ff03fdd54b00e000",
        "0000ff0cf4d54b01010400080482acb95d8a00",
        "0000ff06fad50332010607e800",
        "5555000000000000",
        "988098801e66",
    )
]


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for frame in Pn532Decoder().feed(data):
        _reencodes(frame)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=5))))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        else:
            del data[pos:]
    return bytes(data)


@FUZZ
@given(mutated_frames(), st.lists(st.integers(1, 16), max_size=12))
def test_mutated_real_frames_never_raise_and_chunking_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    whole = Pn532Decoder()
    expected = whole.feed(data)
    for frame in expected:
        _reencodes(frame)
    chunked, out, pos = Pn532Decoder(), [], 0
    for size in cuts:
        out += chunked.feed(data[pos : pos + size])
        pos += size
    out += chunked.feed(data[pos:])
    assert out == expected
    assert chunked.stats() == whole.stats()


@FUZZ
@given(st.sampled_from([pn532.TFI_HOST, pn532.TFI_CHIP]), st.binary(max_size=400))
def test_encode_decode_round_trip(tfi: int, data: bytes) -> None:
    [frame] = Pn532Decoder().feed(b"\x00" + pn532.encode_frame(tfi, data))
    assert (frame.kind, frame.tfi, frame.data) == ("info", tfi, data)


def _reencodes(frame: Frame) -> None:
    if frame.kind == "info":
        assert frame.tfi is not None
        [again] = Pn532Decoder().feed(pn532.encode_frame(frame.tfi, frame.data))
        assert again.data == frame.data

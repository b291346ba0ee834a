"""NMEA framing codec: checksum, resync, drop counters, talkers, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.nmea import NmeaDecoder, Sentence, checksum, encode_sentence
from firmware_bridge.nmea_fields import Gga, Rmc, parse_fields
from tests.kits.fb import captures, nmea

GGA = b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D\r\n"
RMC = b"$GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A*7D\r\n"

# Real lines (gpsd and pynmeagps captures), used as seeds for mutation even without shared data.
REAL_LINES = [
    GGA,
    RMC,
    b"$GNRMC,003956.00,A,4552.65403,S,17030.00668,E,0.025,,120419,,,A,V*07\r\n",
    b"$GNGST,103607.00,38,60,38,89,15,24,31*63\r\n",
    b"$GNGSA,A,3,13,16,21,15,10,29,27,20,,,,,1.05,0.64,0.83,1*03\r\n",
    b"$GPGGA,165010.000,4143.6057,N,08338.0788,W,6,00,50.0,203.8,M,-33.7,M,,0000*5D\r\n",
    b"$GPRMC,014413.76,V,3728.0549,N,12213.8639,W,0.00,0.0,150209,,*0A\r\n",
    b"$PUBX,00,103607.00,5327.03942,N,00214.42462,W,104.461,G3,29,31,0.085,39.63,-0.007,"
    b",5.88,7.62,8.09,6,0,0*69\r\n",
    b"$GPGSA,A,1,,,,,,,,,,,,,,,*1E$GPRMC,235949.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*44\r\n",
    b"$GPGGA,030130$GPGLL,2638.1728,N,08011.3893,W,030131.000,A,A*41\r\n",
    b"$GPRMC,000346.03,A,4808\x00\x00\x00\x00\x00                  \r\n",
]
for _path in captures():
    REAL_LINES.extend(line for line in _path.read_bytes().splitlines(True)[:60] if line[:1] == b"$")


def test_valid_sentence_is_split_into_talker_kind_fields() -> None:
    [s] = NmeaDecoder().feed(GGA)
    assert (s.talker, s.kind, s.address) == ("GP", "GGA", "GPGGA")
    assert s.fields[0] == "030719.000" and s.fields[5] == "1"
    assert s.raw == GGA.decode().strip()


def test_bad_checksum_is_dropped_and_counted() -> None:
    dec = NmeaDecoder()
    assert dec.feed(GGA.replace(b"*7D", b"*7E")) == []
    assert dec.drops["bad_checksum"] == 1
    assert dec.stats()["sentences"] == 0


def test_lower_case_checksum_is_accepted() -> None:
    assert len(NmeaDecoder().feed(RMC.replace(b"*7D", b"*7d"))) == 1


def test_garbage_between_sentences_is_skipped() -> None:
    dec = NmeaDecoder()
    out = dec.feed(b"\xff\xfe boot garbage \x00\x00" + GGA + b"junk\r\n" + RMC)
    assert [s.kind for s in out] == ["GGA", "RMC"]
    assert dec.stats()["garbage_bytes"] > 20


def test_nul_bytes_inside_a_sentence_drop_it_and_resync() -> None:
    dec = NmeaDecoder()
    out = dec.feed(b"$GPRMC,000346.03,A,4808\x00\x00\x00\x00   \r\n" + GGA)
    assert [s.kind for s in out] == ["GGA"]
    assert dec.drops["bad_char"] == 1


def test_cut_sentence_run_into_the_next_is_dropped_next_one_kept() -> None:
    # triton400.log: "$GPGGA,030130$GPGLL,...*41"
    dec = NmeaDecoder()
    out = dec.feed(b"$GPGGA,030130$GPGLL,2638.1728,N,08011.3893,W,030131.000,A,A*41\r\n")
    assert [s.kind for s in out] == ["GLL"]
    assert dec.drops["truncated"] == 1


def test_complete_sentence_run_together_without_terminator_is_kept() -> None:
    # gp-320fw: "$GPGSA,...*1E$GPRMC,...*44"
    dec = NmeaDecoder()
    line = (
        b"$GPGSA,A,1,,,,,,,,,,,,,,,*1E"
        b"$GPRMC,235949.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*44\r\n"
    )
    assert [s.kind for s in dec.feed(line)] == ["GSA", "RMC"]
    assert dec.stats()["unterminated"] == 1


@pytest.mark.parametrize("terminator", [b"\r\n", b"\n", b"\r", b"\n\r"])
def test_any_line_terminator(terminator: bytes) -> None:
    line = GGA.rstrip() + terminator
    assert len(NmeaDecoder().feed(line + line)) == 2


def test_split_reads_at_every_byte_boundary() -> None:
    data = GGA + RMC
    for cut in range(len(data) + 1):
        dec = NmeaDecoder()
        out = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert [s.kind for s in out] == ["GGA", "RMC"], cut


def test_byte_by_byte_feeding() -> None:
    dec = NmeaDecoder()
    out = [s for b in GGA + RMC for s in dec.feed(bytes((b,)))]
    assert len(out) == 2


def test_missing_checksum_dropped_unless_allowed() -> None:
    line = b"$PLCS,REV,PLN012054S07,070312,145743\r\n"
    strict = NmeaDecoder()
    assert strict.feed(line) == []
    assert strict.drops["no_checksum"] == 1
    [s] = NmeaDecoder(require_checksum=False).feed(line)
    assert (s.talker, s.kind) == ("P", "LCS")


def test_overlong_line_is_dropped() -> None:
    dec = NmeaDecoder(max_len=100)
    assert dec.feed(b"$GPGSV," + b"1," * 200 + b"*00\r\n" + GGA) != []
    assert dec.drops["too_long"] == 1


def test_bad_address_is_dropped() -> None:
    dec = NmeaDecoder()
    assert dec.feed(encode_sentence("GPN", ["00000.0000", "E"])) == []
    assert dec.drops["bad_address"] == 1


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "GQ", "IN"])
def test_every_talker_is_decoded_and_parsed(talker: str) -> None:
    line = nmea(
        f"{talker}GGA",
        "103607.00",
        "5327.03942",
        "N",
        "00214.42462",
        "W",
        "1",
        "06",
        "5.88",
        "56.0",
        "M",
        "48.5",
        "M",
        "",
        "",
    )
    [s] = NmeaDecoder().feed(line)
    rec = parse_fields(s)
    assert isinstance(rec, Gga) and rec.talker == talker and rec.quality == 1
    assert rec.lat == pytest.approx(53.450657, abs=1e-6)


def test_proprietary_sentences() -> None:
    out = NmeaDecoder().feed(
        b"$PUBX,00,103607.00,5327.03942,N,00214.42462,W,104.461,G3,29,31,0.085,39.63,-0.007,"
        b",5.88,7.62,8.09,6,0,0*69\r\n$PGRME,15.0,M,45.0,M,25.0,M*1C\r\n"
    )
    assert [(s.talker, s.kind) for s in out] == [("P", "UBX"), ("P", "GRME")]
    assert parse_fields(out[0]) is None


@pytest.mark.parametrize(
    ("line", "mode"),
    [
        (b"$GPRMC,030129.0,A,2638.1726,N,08011.3892,W,0.00,219.6,010413,,*26\r\n", ""),  # 2.0
        (RMC, "A"),  # 2.3
        (b"$GNRMC,003956.00,A,4552.65403,S,17030.00668,E,0.025,,120419,,,A,V*07\r\n", "A"),  # 4.11
    ],
)
def test_rmc_of_nmea_2_to_4_11(line: bytes, mode: str) -> None:
    [s] = NmeaDecoder().feed(line)
    rec = parse_fields(s)
    assert isinstance(rec, Rmc) and rec.status == "A" and rec.mode == mode and rec.date


def test_reset_forgets_partial_sentence() -> None:
    dec = NmeaDecoder()
    dec.feed(GGA[:30])
    dec.reset()
    assert dec.feed(GGA[30:]) == []
    assert dec.drops["truncated"] == 1


def test_encode_sentence_round_trips() -> None:
    line = encode_sentence("GPGGA", ["1", "2"])
    assert line == b"$GPGGA,1,2*%02X\r\n" % checksum("GPGGA,1,2")
    [s] = NmeaDecoder().feed(line)
    assert s.fields == ("1", "2")


def _valid(s: Sentence) -> bool:
    star = s.raw.rindex("*")
    return int(s.raw[star + 1 :], 16) == checksum(s.raw[1:star]) and s.raw.isprintable()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    dec = NmeaDecoder()
    out = dec.feed(data)
    assert all(_valid(s) for s in out)
    for s in out:
        parse_fields(s)  # the pynmea2 adapter must not raise either


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.sampled_from(REAL_LINES), min_size=1, max_size=6))
    data = bytearray(b"".join(lines))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=5))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 10))]
        elif action == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[max(0, pos - 20) : pos]
    return bytes(data)


@FUZZ
@given(mutated_lines(), st.lists(st.integers(1, 64), max_size=20))
def test_mutated_real_sentences_never_raise_and_chunking_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    whole = NmeaDecoder()
    expected = whole.feed(data)
    assert all(_valid(s) for s in expected)
    for s in expected:
        parse_fields(s)
    chunked, out, pos = NmeaDecoder(), [], 0
    for size in cuts:
        out += chunked.feed(data[pos : pos + size])
        pos += size
    out += chunked.feed(data[pos:])
    assert out == expected
    assert chunked.stats() == whole.stats()

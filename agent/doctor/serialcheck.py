"""Serial ports: the GPS speaks NMEA, the PN532 answers GetFirmwareVersion."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.doctor.finding import Finding
from agent.doctor.holder import Holder
from firmware_bridge import nmea, pn532

LISTEN_S = 3.0  # a GPS sends at least one epoch a second; a PN532 answers in milliseconds


@dataclass(frozen=True, slots=True)
class PortFacts:
    """What a serial probe saw."""

    open_error: str | None = None
    bytes_seen: int = 0
    sentences: int = 0
    gps_time: bool = False  # an RMC with status A: the receiver knows the date and time
    firmware: str | None = None  # a PN532's answer


def busy(f: PortFacts) -> bool:
    """The port exists but another process holds its exclusive lock."""
    return f.open_error is not None and "exclusively lock" in f.open_error


def _open_failure(
    check: str, params: dict[str, object], f: PortFacts, held_by: Sequence[Holder]
) -> Finding:
    if not busy(f):
        return Finding(check, "fail", "port_open", params)
    agent = next((h for h in held_by if h.agent), None)
    if agent is not None:
        # The running service has the port: it opened it; the device is not probed meanwhile.
        return Finding(check, "skip", "port_agent", {**params, "pid": agent.pid})
    who = ", ".join(f"{h.name} (pid {h.pid})" for h in held_by) or "another program"
    return Finding(check, "fail", "port_busy", {**params, "holder": who})


def gps_verdict(
    check: str, port: str, baud: int, f: PortFacts, held_by: Sequence[Holder] = ()
) -> Finding:
    """NMEA seen: pass; bytes but no sentence: wrong speed; silence or no port: fail; held by
    the running agent: skipped (said so)."""
    params = {"port": port, "baud": baud, "why": f.open_error, "n": f.sentences}
    if f.open_error is not None:
        return _open_failure(check, params, f, held_by)
    if f.sentences:
        return Finding(check, "pass", "gps_ok", params)
    if f.bytes_seen:
        return Finding(check, "fail", "gps_garbage", params)
    return Finding(check, "fail", "gps_silent", params)


def nfc_verdict(
    check: str, port: str, baud: int, f: PortFacts, held_by: Sequence[Holder] = ()
) -> Finding:
    """A PN532 firmware answer: pass; otherwise why not."""
    params = {"port": port, "baud": baud, "why": f.open_error, "fw": f.firmware}
    if f.open_error is not None:
        return _open_failure(check, params, f, held_by)
    if f.firmware is not None:
        return Finding(check, "pass", "nfc_ok", params)
    return Finding(check, "fail", "nfc_silent", params)


def _listen(
    port: str, baud: int, listen_s: float, send: bytes, done: Callable[[bytes], bool]
) -> tuple[str | None, int]:
    """Open `port`, write `send`, hand each chunk read to `done` until it says so or time is up;
    (open or read error, bytes seen). Blocking: run it in a thread."""
    import serial

    seen = 0
    try:
        # exclusive: the agent holds the same lock, so a running agent shows as "busy".
        with serial.Serial(port, baud, timeout=0.2, exclusive=True) as link:
            link.reset_input_buffer()
            link.write(send)
            deadline = time.monotonic() + listen_s
            while time.monotonic() < deadline:
                chunk = link.read(256)
                seen += len(chunk)
                if done(chunk):
                    break
    except (serial.SerialException, OSError) as exc:
        return str(exc), seen
    return None, seen


def probe_gps(port: str, baud: int, listen_s: float = LISTEN_S) -> PortFacts:
    """Listen up to `listen_s` for checksum-valid NMEA."""
    dec = nmea.NmeaDecoder()
    got = {"n": 0, "time": False}

    def done(chunk: bytes) -> bool:
        for s in dec.feed(chunk):
            got["n"] += 1
            if s.kind == "RMC" and len(s.fields) > 8 and s.fields[1] == "A" and s.fields[8]:
                got["time"] = True
        return got["n"] >= 3 and bool(got["time"])

    error, seen = _listen(port, baud, listen_s, b"", done)
    return PortFacts(error, seen, int(got["n"]), bool(got["time"]))


def probe_pn532(port: str, baud: int, listen_s: float = LISTEN_S) -> PortFacts:
    """Wake the chip and ask its firmware version."""
    dec = pn532.Pn532Decoder()
    found: list[str] = []

    def done(chunk: bytes) -> bool:
        for frame in dec.feed(chunk):
            payload = pn532.response_payload(frame, pn532.CMD_GET_FIRMWARE_VERSION)
            fw = pn532.parse_firmware(payload) if payload is not None else None
            if fw is not None:
                found.append(str(fw))
        return bool(found)

    hello = (
        pn532.WAKEUP
        + pn532.encode_command(pn532.CMD_SAM_CONFIGURATION, bytes((1, 0x14, 1)))
        + pn532.encode_command(pn532.CMD_GET_FIRMWARE_VERSION)
    )
    error, seen = _listen(port, baud, listen_s, hello, done)
    return PortFacts(error, seen, firmware=found[0] if found else None)

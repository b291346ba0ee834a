"""What `ops watch` makes stand out: SOS, man-down and lone-worker alarms, level 1-2 incidents.

Pure: from a decoded upstream envelope to an `Alarm`, and an `Alarm` to words for the duty
operator (Simplified Chinese by default, English on request; agent/lang.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.lang import Lang

ALARM_TYPES = ("sos", "man_down", "lone_worker")
SEVERE_LEVELS = (1, 2)  # incident levels that need someone now (1 = most severe)

_WORDS: dict[Lang, dict[str, str]] = {
    "zh": {
        "sos": "紧急求救 SOS",
        "man_down": "人员倒地",
        "lone_worker": "单人作业无应答",
        "incident": "{level}级事件",
        "at": "位置",
        "unknown_pos": "位置未知",
        "time": "时间",
        "note": "说明",
        "late": "(离线期间产生,补发)",
        "unsure": "(设备时间未校准)",
        "mark": "警报",
    },
    "en": {
        "sos": "SOS",
        "man_down": "MAN DOWN",
        "lone_worker": "LONE WORKER (no answer)",
        "incident": "level {level} incident",
        "at": "at",
        "unknown_pos": "position unknown",
        "time": "time",
        "note": "note",
        "late": "(created while offline, sent late)",
        "unsure": "(device clock not verified)",
        "mark": "ALARM",
    },
}


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm or severe incident, as the duty operator needs it."""

    dev: str
    kind: str  # sos | man_down | lone_worker | incident
    level: int | None  # incidents only
    category: str | None  # incidents only
    lat: float | None
    lon: float | None
    acc_m: float | None
    ts: int | None  # device time of the event (envelope `ts`)
    time_ok: bool
    hist: bool
    note: str | None
    seq: int | None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def incident_level(body: dict[str, Any]) -> int | None:
    """An incident body's `level` when it is an integer (§4); None for anything else.

    Checked before any membership test: a forged `[]` is unhashable and `true` equals 1.
    """
    level = body.get("level")
    return level if type(level) is int else None


def alarm_of(dev: str, what: str, data: dict[str, Any]) -> Alarm | None:
    """The alarm in an `evt/alarm` or `evt/incident` envelope, None when it is not one."""
    body = data.get("body")
    if not isinstance(body, dict):
        return None
    if what == "evt/alarm" and body.get("type") in ALARM_TYPES:
        kind, level = str(body["type"]), None
    elif what == "evt/incident" and incident_level(body) in SEVERE_LEVELS:
        kind, level = "incident", incident_level(body)
    else:
        return None
    note = body.get("note")
    return Alarm(
        dev=dev,
        kind=kind,
        level=level,
        category=str(body["category"]) if isinstance(body.get("category"), str) else None,
        lat=_num(body.get("lat")),
        lon=_num(body.get("lon")),
        acc_m=_num(body.get("acc_m")),
        ts=data["ts"] if isinstance(data.get("ts"), int) else None,
        time_ok=data.get("time_ok") is True,
        hist=data.get("hist") is True,
        note=note if isinstance(note, str) and note else None,
        seq=data["seq"] if isinstance(data.get("seq"), int) else None,
    )


def title(alarm: Alarm, lang: Lang) -> str:
    """`紧急求救 SOS`, `2级事件 (safety)`."""
    words = _WORDS[lang]
    text = words[alarm.kind].format(level=alarm.level)
    return f"{text} ({alarm.category})" if alarm.category else text


def position(alarm: Alarm, lang: Lang) -> str:
    """`34.779050,113.731200 ±5 m`, or `position unknown` in words."""
    if alarm.lat is None or alarm.lon is None:
        return _WORDS[lang]["unknown_pos"]
    acc = f" ±{alarm.acc_m:g} m" if alarm.acc_m is not None else ""
    return f"{alarm.lat:.6f},{alarm.lon:.6f}{acc}"


def when(alarm: Alarm, lang: Lang) -> str:
    """Local date and time of the event, with a remark when it came late or is unsure."""
    if alarm.ts is None:
        return "?"
    text = datetime.fromtimestamp(alarm.ts / 1000).strftime("%Y-%m-%d %H:%M:%S")
    words = _WORDS[lang]
    if alarm.hist:
        text += " " + words["late"]
    if not alarm.time_ok:
        text += " " + words["unsure"]
    return text


def line(alarm: Alarm, lang: Lang) -> str:
    """The whole alarm in one line, marked: `!!! 警报 紧急求救 SOS pd-0042 位置 ... 时间 ...`."""
    words = _WORDS[lang]
    where = position(alarm, lang)
    if alarm.lat is not None and alarm.lon is not None:
        where = f"{words['at']} {where}"
    text = (
        f"!!! {words['mark']} {title(alarm, lang)} {alarm.dev} "
        f"{where} {words['time']} {when(alarm, lang)}"
    )
    return text + (f" {words['note']}: {alarm.note}" if alarm.note else "")


def labels(lang: Lang) -> dict[str, str]:
    """The words of `lang` (for table headers)."""
    return dict(_WORDS[lang])

"""Alert texts for people: Simplified Chinese by default, English on request (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.lang import Lang

__all__ = ["TITLES", "Lang", "render"]

TITLES: dict[str, dict[Lang, str]] = {
    "sos": {"zh": "紧急求助 (SOS)", "en": "SOS"},
    "man_down": {"zh": "人员倒地/无响应", "en": "man down"},
    "lone_worker": {"zh": "单人作业未应答", "en": "lone worker did not answer"},
    "incident": {"zh": "重大事件上报", "en": "severe incident"},
    "camera_offline": {"zh": "摄像头离线", "en": "camera offline"},
    "offline": {"zh": "设备离线", "en": "device offline"},
    "backlog": {"zh": "设备积压消息过多", "en": "device outbox backlog"},
    "rolled_back": {"zh": "配置已回滚", "en": "config rolled back"},
}


def _where(facts: Mapping[str, Any], lang: Lang) -> str:
    lat, lon = facts.get("lat"), facts.get("lon")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return ""
    return f"，位置 {lat:.6f},{lon:.6f}" if lang == "zh" else f", at {lat:.6f},{lon:.6f}"


def _detail(rule: str, facts: Mapping[str, Any], lang: Lang) -> str:
    zh = lang == "zh"
    if rule == "incident":
        cat, level = facts.get("category"), facts.get("level")
        return f"{level}级 {cat}" if zh else f"level {level} {cat}"
    if rule == "camera_offline":
        return f"摄像头 {facts.get('camera_id')}" if zh else f"camera {facts.get('camera_id')}"
    if rule == "offline":
        m = facts.get("minutes")
        return f"已离线 {m} 分钟" if zh else f"offline for {m} min"
    if rule == "backlog":
        d, over = facts.get("depth"), facts.get("over")
        return f"待发 {d} 条（阈值 {over}）" if zh else f"{d} messages queued (over {over})"
    if rule == "rolled_back":
        why = facts.get("detail") or facts.get("reason")
        return f"原因：{why}" if zh else f"reason: {why}"
    return ""


def render(rule: str, dev: str, facts: Mapping[str, Any], lang: Lang) -> str:
    """`【title】device: detail, place, note` in `lang`."""
    title = TITLES.get(rule, {"zh": rule, "en": rule})[lang]
    parts = [p for p in (_detail(rule, facts, lang),) if p]
    note = facts.get("note")
    if isinstance(note, str) and note:
        parts.append(("备注：" if lang == "zh" else "note: ") + note)
    sep = "；" if lang == "zh" else "; "
    head = f"【{title}】{dev}" if lang == "zh" else f"[{title}] {dev}"
    body = sep.join(parts)
    return head + (("：" if lang == "zh" else ": ") + body if body else "") + _where(facts, lang)

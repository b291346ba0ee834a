"""Webhook bodies (pure): plain JSON, WeCom (企业微信) and DingTalk (钉钉) group robots.

- json: `{"alert": {key, rule, dev, ts, severity, text, facts}}`; any 2xx is delivered.
- wecom: `{"msgtype":"markdown","markdown":{"content":…}}` posted to the robot's
  `…/cgi-bin/webhook/send?key=…` URL; it answers HTTP 200 with `{"errcode":0,…}` when taken.
- dingtalk: `{"msgtype":"markdown","markdown":{"title":…,"text":…}}` posted to
  `…/robot/send?access_token=…`; with a signing secret ("加签"), `&timestamp=ms&sign=…` is added,
  sign = urlencode(base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret"))); it answers
  `{"errcode":0,…}` too. A non-zero errcode (rate limit 45009/130101, bad sign 310000) is a
  failed attempt, retried like an HTTP error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from agent.lang import Lang
from agent.ops.alerts.rules import Alert, text
from agent.ops.alerts.texts import TITLES

Kind = Literal["json", "wecom", "dingtalk"]
_COLOUR = {1: "warning", 2: "warning", 3: "comment"}  # WeCom's built-in markdown colours


@dataclass(frozen=True, slots=True)
class Sink:
    """One webhook: its name in the journal, its kind, URL and DingTalk signing secret."""

    name: str
    kind: Kind
    url: str
    secret: str | None = None


def body(kind: Kind, alert: Alert, lang: Lang) -> dict[str, Any]:
    """The JSON body of one alert for a sink of this kind."""
    words = text(alert, lang)
    if kind == "wecom":
        colour = _COLOUR.get(alert.severity, "comment")
        return {
            "msgtype": "markdown",
            "markdown": {"content": f'<font color="{colour}">{words}</font>'},
        }
    if kind == "dingtalk":
        title = TITLES.get(alert.rule, {"zh": alert.rule, "en": alert.rule})[lang]
        return {"msgtype": "markdown", "markdown": {"title": title, "text": f"### {words}"}}
    return {
        "alert": {
            "key": alert.key,
            "rule": alert.rule,
            "dev": alert.dev,
            "ts": alert.ts,
            "severity": alert.severity,
            "text": words,
            "facts": dict(alert.facts),
        }
    }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 HMAC-SHA256 of "timestamp\\nsecret", URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return urllib.parse.quote_plus(base64.b64encode(digest.digest()))


def url(sink: Sink, now_ms: int) -> str:
    """Where to post now (a signed DingTalk URL carries the time it was signed)."""
    if sink.kind != "dingtalk" or not sink.secret:
        return sink.url
    sep = "&" if "?" in sink.url else "?"
    return f"{sink.url}{sep}timestamp={now_ms}&sign={dingtalk_sign(sink.secret, now_ms)}"


def accepted(kind: Kind, status: int, reply: bytes) -> tuple[bool, str]:
    """Whether the receiver took the alert, and what to record about its answer."""
    if not 200 <= status < 300:
        return False, f"HTTP {status}"
    if kind == "json":
        return True, f"HTTP {status}"
    try:
        answer = json.loads(reply)
    except ValueError:
        return False, f"HTTP {status}, not JSON"
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code == 0:
        return True, "errcode 0"
    return False, f"errcode {code}: {str(answer.get('errmsg', ''))[:200]}"

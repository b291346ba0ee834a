"""Who may use the companion page: pairing code, sessions, rate limits. Pure: time passed in."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

_LABEL = b"grid-edge companion pairing v1"


def pairing_code(secret: bytes, digits: int) -> str:
    """The device's pairing code: `digits` decimal digits derived from its secret (HMAC-SHA256)."""
    mac = hmac.new(secret, _LABEL, hashlib.sha256).digest()
    return str(int.from_bytes(mac[:8], "big") % 10**digits).zfill(digits)


def code_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a typed code (spaces ignored) with the device's code."""
    typed = "".join(given.split())
    return hmac.compare_digest(typed.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Session:
    """One paired phone: its cookie token, CSRF token and expiry (ms, monotonic)."""

    token: str
    csrf: str
    expires_ms: int


class Sessions:
    """At most `limit` live sessions; the oldest goes when a new phone pairs."""

    def __init__(self, *, lifetime_ms: int, limit: int, new_token: Callable[[], str]) -> None:
        self._lifetime = lifetime_ms
        self._limit = limit
        self._new = new_token
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def open(self, now_ms: int) -> Session:
        """A new session from now."""
        self._expire(now_ms)
        while len(self._by_token) >= self._limit:
            self._by_token.popitem(last=False)
        s = Session(self._new(), self._new(), now_ms + self._lifetime)
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, now_ms: int) -> Session | None:
        """The live session of this cookie token, or None (unknown or expired)."""
        self._expire(now_ms)
        if not token:
            return None
        return self._by_token.get(token)

    def close(self, token: str) -> None:
        """Forget a session (logout)."""
        self._by_token.pop(token, None)

    def __len__(self) -> int:
        return len(self._by_token)

    def _expire(self, now_ms: int) -> None:
        for token in [t for t, s in self._by_token.items() if s.expires_ms <= now_ms]:
            del self._by_token[token]


def csrf_ok(session: Session, header: str | None) -> bool:
    """The request's X-CSRF-Token is this session's (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(header.encode(), session.csrf.encode())


class RateLimiter:
    """Token buckets per key (client address): `per_min` requests a minute, bursts up to it.

    At most `max_keys` buckets are kept; the least recently used goes first (bounded memory).
    """

    def __init__(self, per_min: int, *, max_keys: int = 256) -> None:
        self._rate = per_min / 60_000.0  # tokens per ms
        self._burst = float(per_min)
        self._max = max_keys
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str, now_ms: int) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        tokens, at = self._buckets.pop(key, (self._burst, now_ms))
        tokens = min(self._burst, tokens + max(0, now_ms - at) * self._rate)
        ok = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if ok else tokens, now_ms)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return ok

    def retry_after_s(self, key: str) -> int:
        """Whole seconds until `key` has a token again (at least 1)."""
        tokens, _ = self._buckets.get(key, (0.0, 0))
        return max(1, int((1.0 - tokens) / self._rate / 1000) + 1)

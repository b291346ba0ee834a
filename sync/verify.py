"""Pure §6 verification of downlink documents, check by check in the contract's order."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_DOWN_PAYLOAD = 262144
_ENVELOPE_KEYS = frozenset({"v", "alg", "kid", "payload", "sig"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

# A body validator raises ValueError (or a subclass, e.g. ConfigError) with a readable reason.
BodyValidator = Callable[[Mapping[str, Any]], object]


@dataclass(frozen=True, slots=True)
class Target:
    """A document's target: exactly one of a device id or a zone id."""

    dev: str | None = None
    zone: str | None = None

    @property
    def key(self) -> str:
        """Stable key for the per-(typ, target) version memory: `dev:D` or `zone:Z`."""
        return f"dev:{self.dev}" if self.dev is not None else f"zone:{self.zone}"


@dataclass(frozen=True, slots=True)
class Document:
    """A document that passed every check; `body` is what the validator returned."""

    typ: str
    id: str
    target: Target
    ver: int
    iat: int
    exp: int | None
    body: Mapping[str, Any]
    parsed: object = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A document that failed; `status` is `rejected` or `duplicate`, `reason` per §6."""

    status: str
    reason: str | None
    ref: str | None
    ver: int | None
    detail: str = ""
    target: str | None = None  # the target key, once the payload is known to be signed


@dataclass(frozen=True, slots=True)
class Context:
    """What the checks need to know about this device, all passed in (no I/O, no clock)."""

    dev: str
    zones: frozenset[str]
    keys: Mapping[str, Ed25519PublicKey]
    last_ver: Callable[[str, str], int | None]  # (typ, target.key) -> last applied ver
    now_ms: int | None  # the best time known to be right (§6 step 5); None: unknown
    validators: Mapping[str, BodyValidator]


class PublicKeys(Mapping[str, "Ed25519PublicKey"]):
    """The trusted keys by kid, from their raw 32 bytes; each becomes a verifier when first used.

    cryptography (about 6 MB resident) is imported by the first signature check, not at start:
    a device that has received no document yet does not carry it (issue 22, the 40 MB idle
    patrol device). The raw bytes were checked by the config (32 bytes, base64url).
    """

    def __init__(self, raw: Mapping[str, bytes]) -> None:
        self._raw = dict(raw)
        self._made: dict[str, Ed25519PublicKey] = {}

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        if kid not in self._made:
            raw = self._raw[kid]  # KeyError for an unknown kid, as a dict
            # Function-level on purpose: see the class docstring.
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            self._made[kid] = Ed25519PublicKey.from_public_bytes(raw)
        return self._made[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError on anything else."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, the form the ops tool writes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_target(value: object) -> Target | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if isinstance(value.get("dev"), str):
        return Target(dev=value["dev"])
    if isinstance(value.get("zone"), str):
        return Target(zone=value["zone"])
    return None


def _payload_shape(payload: Mapping[str, Any]) -> str | None:
    """Return why the payload lacks the §6 fields, or None when its shape is right."""
    if not isinstance(payload.get("typ"), str) or not isinstance(payload.get("id"), str):
        return "payload needs string typ and id"
    if _parse_target(payload.get("target")) is None:
        return "payload target must be {dev} or {zone}"
    if _int(payload.get("ver")) is None or _int(payload.get("iat")) is None:
        return "payload ver and iat must be integers"
    if payload.get("exp") is not None and _int(payload.get("exp")) is None:
        return "payload exp must be an integer or null"
    if "body" not in payload:
        return "payload needs a body"
    return None  # a body that is not an object is step 6's `invalid_body` (§6 revision)


def _peek(env: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """`ref` and `ver` from the payload if it parses as a JSON object, whatever else is wrong."""
    text = env.get("payload")
    if not isinstance(text, str):
        return None, None
    try:
        payload = json.loads(b64url_decode(text).decode("utf-8"))
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    ref = payload.get("id")
    return (ref if isinstance(ref, str) else None), _int(payload.get("ver"))


def verify(topic_typ: str, raw: bytes, ctx: Context) -> Document | Refusal:
    """Run the §6 checks on `raw` received on a `topic_typ` topic; stop at the first failure."""
    if len(raw) > MAX_DOWN_PAYLOAD:
        return Refusal("rejected", "too_large", None, None, f"{len(raw)} bytes")
    try:
        env = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Refusal("rejected", "bad_envelope", None, None, "not UTF-8 JSON")
    # §6: ref and ver come from the payload whenever it parses, whatever else is wrong.
    ref, ver = _peek(env) if isinstance(env, dict) else (None, None)
    opened = _open(env)  # step 1
    if isinstance(opened, str):
        return Refusal("rejected", "bad_envelope", ref, ver, opened)
    assert ver is not None  # checked by _payload_shape
    refusal = _signed_for_us(topic_typ, opened, ctx, ref, ver) or _current(
        topic_typ, opened, ctx, ref, ver
    )
    if refusal is not None:
        return refusal
    return _with_body(topic_typ, opened, ctx, ref, ver)


@dataclass(frozen=True, slots=True)
class _Opened:
    """An envelope of the right shape: its key id, payload (bytes and parsed) and signature."""

    kid: str
    payload: Mapping[str, Any]
    payload_bytes: bytes
    sig: bytes
    target: Target


def _open(env: object) -> _Opened | str:
    """Step 1, the envelope's shape: the opened envelope, or what is wrong with it."""
    if not isinstance(env, dict) or set(env) != _ENVELOPE_KEYS:
        return "envelope must be an object with exactly v, alg, kid, payload, sig"
    if env["v"] != 1 or isinstance(env["v"], bool):
        return "v must be 1"
    if not all(isinstance(env[k], str) for k in ("alg", "kid", "payload", "sig")):
        return "alg, kid, payload and sig must be strings"
    decoded = _decode(env["payload"], env["sig"])
    if isinstance(decoded, str):
        return decoded
    payload, payload_bytes, sig = decoded
    if len(sig) != 64:
        return "signature must be 64 bytes"
    if env["alg"] != "ed25519":
        return "alg must be ed25519"
    shape = _payload_shape(payload)
    if shape is not None:
        return shape
    target = _parse_target(payload["target"])
    assert target is not None  # checked by _payload_shape
    return _Opened(env["kid"], payload, payload_bytes, sig, target)


def _decode(payload_text: str, sig_text: str) -> tuple[dict[str, Any], bytes, bytes] | str:
    """The payload (an object), its bytes and the signature; or what is wrong with them."""
    try:
        payload_bytes = b64url_decode(payload_text)
        sig = b64url_decode(sig_text)
    except ValueError:
        return "payload or sig is not base64url"
    try:
        payload = json.loads(payload_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "payload is not UTF-8 JSON"
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    return payload, payload_bytes, sig


def _signed_for_us(
    topic_typ: str, doc: _Opened, ctx: Context, ref: str | None, ver: int
) -> Refusal | None:
    """Steps 2 and 3: a known key signed it, for this topic and this device or its zone."""
    key = ctx.keys.get(doc.kid)
    if key is None:
        return Refusal("rejected", "unknown_key", ref, ver, doc.kid)
    # Function-level: cryptography is loaded with the first document (see PublicKeys).
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(doc.sig, doc.payload_bytes)
    except InvalidSignature:
        return Refusal("rejected", "bad_signature", ref, ver)
    if doc.payload["typ"] != topic_typ:
        return Refusal("rejected", "wrong_topic", ref, ver, doc.payload["typ"])
    target = doc.target
    if not (target.dev == ctx.dev or (target.zone is not None and target.zone in ctx.zones)):
        return Refusal("rejected", "wrong_target", ref, ver, target.key)
    return None


def _current(
    topic_typ: str, doc: _Opened, ctx: Context, ref: str | None, ver: int
) -> Refusal | None:
    """Steps 4 and 5: newer than the last version applied, and not expired."""
    last = ctx.last_ver(topic_typ, doc.target.key)
    if last is not None and ver == last:
        return Refusal("duplicate", None, ref, ver, target=doc.target.key)
    if last is not None and ver < last:
        return Refusal("rejected", "rollback", ref, ver, f"last applied {last}")
    # Against the best time known to be right.
    exp = _int(doc.payload["exp"])
    if exp is not None and ctx.now_ms is not None and exp <= ctx.now_ms:
        late_s = (ctx.now_ms - exp) // 1000
        return Refusal(
            "rejected",
            "expired",
            ref,
            ver,
            f"exp was {late_s} s before the time the device checked it",
        )
    return None


def _with_body(
    topic_typ: str, doc: _Opened, ctx: Context, ref: str | None, ver: int
) -> Document | Refusal:
    """Step 6: the body is an object its topic's validator accepts."""
    payload = doc.payload
    if not isinstance(payload["body"], dict):
        return Refusal("rejected", "invalid_body", ref, ver, "body is not a JSON object")
    validator = ctx.validators.get(topic_typ)
    parsed: object = None
    if validator is not None:
        try:
            parsed = validator(payload["body"])
        except (ValueError, TypeError, RecursionError) as exc:
            return Refusal("rejected", "invalid_body", ref, ver, str(exc))
    return Document(
        typ=topic_typ,
        id=payload["id"],
        target=doc.target,
        ver=ver,
        iat=payload["iat"],
        exp=_int(payload["exp"]),
        body=payload["body"],
        parsed=parsed,
    )


def sign(payload: Mapping[str, Any], kid: str, private_key: Any) -> bytes:
    """Build a §6 envelope: the exact payload bytes, base64url, signed with `private_key`."""
    payload_bytes = json.dumps(payload, separators=(",", ":")).encode()
    sig = private_key.sign(payload_bytes)
    env = {
        "v": 1,
        "alg": "ed25519",
        "kid": kid,
        "payload": b64url_encode(payload_bytes),
        "sig": b64url_encode(sig),
    }
    return json.dumps(env, separators=(",", ":")).encode()

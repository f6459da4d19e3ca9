"""Web Push simulator: an RFC 8030 push service with VAPID (RFC 8292) and aes128gcm.

``POST /push/<subscription id>`` needs a ``TTL`` header (else 400), an ``Authorization:
vapid t=<ES256 JWT>, k=<P-256 key>`` whose audience is this origin (else 401) and, when
there is a body, ``Content-Encoding: aes128gcm`` (else 415) with a well-formed RFC 8188
header; it answers 201 Created with a ``Location`` of the message resource.  Errors have
Mozilla autopush's JSON shape (``code``, ``errno``, ``error``, ``message``).  Subscription
fates come from :mod:`pushcore.gateways.fates` (``gone...`` -> 410).

``verify_encryption`` additionally decrypts every message with the subscription's private
key re-derived by :func:`pushcore.gateways.fates.webpush_private_key` (subscriptions not
made by ``fates`` then fail): a test aid, no real push service can do it.

Pure: no I/O.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pushcore.gateways import fates
from pushcore.gateways.auth import JwtChecker, JwtRejected, number, parse_vapid, vapid_public_key
from pushcore.gateways.core import Counters, Reject, SimRequest, SimResponse, json_response

PREFIX = "/push/"
GONE_SUFFIX = "/gone"  # an endpoint path ending /gone is a dead subscription too
PAYLOAD_LIMIT = 4096  # bytes of encrypted body: one aes128gcm record of 3993 plaintext bytes
VAPID_MAX_LIFETIME = 24 * 3600
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_KEYID_LEN = 65  # Web Push puts the sender's uncompressed P-256 key in the keyid field


@dataclass(frozen=True, slots=True)
class WebPushOptions:
    require_vapid: bool = True
    verify_encryption: bool = False
    record_payloads: bool = False  # keep accepted plaintexts per subscription (decrypted)


@dataclass(slots=True)
class WebPushSimulator:
    options: WebPushOptions = field(default_factory=WebPushOptions)
    clock: Callable[[], float] = time.time
    counters: Counters = field(default_factory=Counters)
    name: str = "webpush"
    _jwt: JwtChecker = field(default_factory=lambda: JwtChecker("ES256"))
    _created: int = 0

    def handle(self, request: SimRequest) -> SimResponse:
        sub = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else ""
        headers = request.headers
        try:
            _check_headers(sub, request.method, headers)
            self._check_vapid(headers.get("authorization"), request.authority)
            self._check_gone(sub)  # a push service knows its subscriptions before the body
            _check_body(headers, request.body)
            self._check_fate(sub, request.body)
        except Reject as exc:
            self.counters.record(exc.status, exc.reason, sub if exc.status != 404 else None)
            message = f"{exc.reason}: {exc.message}" if exc.message else exc.reason
            body = _error_body(exc.status, int(exc.detail or 0), message)
            return json_response(exc.status, body)
        self._created += 1
        self.counters.record(201, "", sub)
        if self.options.record_payloads:
            self.counters.keep(sub, _plaintext(sub, request.body) or b"" if request.body else b"")
        location = f"https://{request.authority}/m/{sub}-{self._created:x}"
        return SimResponse(201, [("location", location), ("ttl", headers.get("ttl"))])

    def throttled(self, request: SimRequest, status: int, retry_after: int) -> SimResponse:
        sub = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else None
        self.counters.record(status, "throttled", sub or None)
        errno = 201 if status == 503 else 999
        body = _error_body(status, errno, "Service Unavailable" if status == 503 else "Slow Down")
        return json_response(status, body, [("retry-after", str(retry_after))])

    def _check_vapid(self, authorization: str | None, authority: str) -> None:
        if not authorization:
            if self.options.require_vapid:
                raise Reject(401, "Invalid Authentication", "missing VAPID", detail="109")
            return
        try:
            t, k = parse_vapid(authorization)
            _, claims = self._jwt.parse(t, k, vapid_public_key)
            exp = number(claims, "exp")
        except JwtRejected as exc:
            raise Reject(401, "Invalid Authentication", str(exc), detail="109") from exc
        now = self.clock()
        problem = ""
        sub = claims.get("sub")
        if not now < exp <= now + VAPID_MAX_LIFETIME:
            problem = "exp must be in the future and at most 24 hours ahead"
        elif authority and claims.get("aud") != f"https://{authority}":
            problem = "aud must be the push service's origin"
        elif sub is not None and not (
            isinstance(sub, str) and sub.startswith(("mailto:", "https:"))
        ):
            problem = "sub must be a mailto: or https: URL"
        if problem:
            raise Reject(401, "Invalid Authentication", problem, detail="109")

    @staticmethod
    def _check_gone(sub: str) -> None:
        if sub.endswith(GONE_SUFFIX) or fates.webpush_fate(sub) is fates.Fate.DEAD:
            raise Reject(410, "Request did not validate", "No such subscription", detail="106")

    def _check_fate(self, sub: str, body: bytes) -> None:
        if body and self.options.verify_encryption and not _decrypts(sub, body):
            raise Reject(400, "Invalid crypto", "does not decrypt for this subscription", "110")


def _check_headers(sub: str, method: str, headers: Any) -> None:
    if not sub or "/" in sub.removesuffix(GONE_SUFFIX):
        raise Reject(404, "Invalid URL endpoint", detail="102")
    if method != "POST":
        raise Reject(405, "Method Not Allowed")
    ttl = headers.get("ttl")
    if ttl is None:
        raise Reject(400, "Missing TTL header", detail="111")
    if not ttl.isdigit():
        raise Reject(400, "Invalid TTL header value", detail="112")
    urgency = headers.get("urgency")
    if urgency is not None and urgency not in URGENCIES:
        raise Reject(400, "Invalid Urgency header")
    topic = headers.get("topic")
    if topic is not None and _TOPIC.fullmatch(topic) is None:
        raise Reject(400, "Invalid Topic header", "at most 32 base64url characters")


def _check_body(headers: Any, body: bytes) -> None:
    if len(body) > PAYLOAD_LIMIT:
        raise Reject(413, "Data payload too large", detail="104")
    if not body:
        return
    if headers.get("content-encoding") != "aes128gcm":
        raise Reject(415, "Unsupported Content-Encoding", "use aes128gcm", detail="110")
    problem = _check_record(body)
    if problem:
        raise Reject(400, "Invalid aes128gcm body", problem, detail="110")


def _error_body(status: int, errno: int, message: str) -> dict[str, object]:
    return {
        "code": status,
        "errno": errno,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "more_info": "https://mozilla-services.github.io/autopush-rs/errors.html",
    }


def _check_record(body: bytes) -> str:
    # RFC 8188 header: salt(16) rs(4) idlen(1) keyid(idlen), then at least one record of
    # 1 padding delimiter + 16-byte tag.
    if len(body) < 21:
        return "shorter than the header"
    rs = int.from_bytes(body[16:20], "big")
    if body[20] != _KEYID_LEN:
        return "keyid must be the 65-byte sender public key"
    if rs < 18:
        return "record size below 18"
    if len(body) < 21 + _KEYID_LEN + 17:
        return "no complete record"
    return ""


def _decrypts(sub: str, body: bytes) -> bool:
    return _plaintext(sub, body) is not None


def _plaintext(sub: str, body: bytes) -> bytes | None:
    """The decrypted body for a subscription of :mod:`pushcore.gateways.fates` (None when it
    does not decrypt)."""
    import http_ece

    _, auth = fates.webpush_keys(sub)
    try:
        plain: bytes = http_ece.decrypt(
            body, private_key=fates.webpush_private_key(sub), auth_secret=auth, version="aes128gcm"
        )
    except Exception:  # noqa: BLE001 (http_ece raises assorted errors for bad input)
        return None
    return plain

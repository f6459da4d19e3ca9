"""Firebase Cloud Messaging, HTTP v1 API: requests and classification.

``POST <base>/v1/projects/<project>/messages:send`` with ``{"message": {...}}`` and
``authorization: Bearer <access token>`` (:mod:`pushcore.providers.fcm_auth`).  The message
is encoded once per message (once per batch when a TTL must become an absolute
``apns-expiration``); each request only splices its token in.

Errors (``google.rpc.Status`` JSON) are classified first by the FCM error code in
``error.details[]`` (``google.firebase.fcm.v1.FcmError.errorCode``), then by
``error.status``, then by the HTTP status; anything unknown is ``RETRY`` when 5xx and
``PERMANENT`` otherwise, so that it never deletes a registration.

401 UNAUTHENTICATED without THIRD_PARTY_AUTH_ERROR is ``RETRY`` with ``refresh_auth``: it
usually means the access token expired or was revoked early.  If the credentials are really
wrong, fetching the next token fails with a non-retryable ``AuthError``, which stops the
message there; the caller's retry limit bounds the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import msgspec

from pushcore.config import Settings
from pushcore.providers.base import (
    Outcome,
    Registration,
    Result,
    json_object,
    retry_after,
    transport_result,
)
from pushcore.providers.credentials import FcmCredentials
from pushcore.providers.errors import AuthError, InvalidNotification, PayloadTooLarge
from pushcore.providers.fcm_auth import AccessTokenCache, parse_token_response, token_request
from pushcore.providers.notification import Content, FcmOverrides, compact, deep_merge
from pushcore.transport.base import Request, Response

BASE_URL = "https://fcm.googleapis.com"
# FCM's limit applies to the message content; this counts the whole message except the
# token, platform blocks included, so it is slightly stricter than FCM itself.
PAYLOAD_LIMIT = 4096
# Data keys FCM refuses (INVALID_ARGUMENT); refused here before anything is sent.
RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
RESERVED_DATA_PREFIXES = ("google", "gcm")

# FcmError.errorCode -> (outcome, refresh_auth).  INVALID_ARGUMENT is special-cased below.
ERROR_CODES: dict[str, tuple[Outcome, bool]] = {
    "UNREGISTERED": (Outcome.INVALID, False),
    "SENDER_ID_MISMATCH": (Outcome.INVALID, False),
    "INVALID_ARGUMENT": (Outcome.PERMANENT, False),
    "THIRD_PARTY_AUTH_ERROR": (Outcome.SENDER_ERROR, False),  # APNs/Web Push credentials in FCM
    "APNS_AUTH_ERROR": (Outcome.SENDER_ERROR, False),  # older name of the same
    "QUOTA_EXCEEDED": (Outcome.RETRY, False),
    "UNAVAILABLE": (Outcome.RETRY, False),
    "INTERNAL": (Outcome.RETRY, False),
}
# A token registered for another sender (Firebase project): what every token answers when
# the app's service account is of the wrong project.  Marked ``suspect`` for the deletion
# safety valve.
SUSPECT_CODES = frozenset({"SENDER_ID_MISMATCH"})
# google.rpc.Code name in error.status -> (outcome, refresh_auth)
STATUS_CODES: dict[str, tuple[Outcome, bool]] = {
    "INVALID_ARGUMENT": (Outcome.PERMANENT, False),
    "UNAUTHENTICATED": (Outcome.RETRY, True),
    "PERMISSION_DENIED": (Outcome.SENDER_ERROR, False),
    # a 404 without UNREGISTERED is a wrong project or URL, not a dead token
    "NOT_FOUND": (Outcome.SENDER_ERROR, False),
    "RESOURCE_EXHAUSTED": (Outcome.RETRY, False),
    "INTERNAL": (Outcome.RETRY, False),
    "UNAVAILABLE": (Outcome.RETRY, False),
    "DEADLINE_EXCEEDED": (Outcome.RETRY, False),
}
# HTTP status -> (outcome, refresh_auth), when the body says nothing usable
STATUSES: dict[int, tuple[Outcome, bool]] = {
    200: (Outcome.DELIVERED, False),
    400: (Outcome.PERMANENT, False),
    401: (Outcome.RETRY, True),
    403: (Outcome.SENDER_ERROR, False),
    404: (Outcome.SENDER_ERROR, False),
    429: (Outcome.RETRY, False),
    500: (Outcome.RETRY, False),
    503: (Outcome.RETRY, False),
}
# An INVALID_ARGUMENT about the token itself (as opposed to the message) kills the token.
_TOKEN_FIELD = "message.token"  # noqa: S105 (a field name)
_TOKEN_MESSAGE = re.compile(r"registration[ _-]?token|message\.token", re.IGNORECASE)
_FCM_ERROR_TYPE = "google.firebase.fcm.v1.FcmError"  # after "type.googleapis.com/"

_DELIVERED = Result(Outcome.DELIVERED, "ok", status=200)


@dataclass(frozen=True, slots=True)
class FcmRendered:
    message: dict[str, Any]  # without token; not to be modified
    encoded: bytes
    apns_ttl: int | None  # becomes apns.headers.apns-expiration at build time

    def preview(self) -> bytes:
        """What a recipient gets: the FCM ``message`` as JSON, without its token."""
        return self.encoded


_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")


def normalize_token(token: str) -> str | None:
    """An FCM registration token as stored (printable ASCII without spaces, up to 4096
    characters: FCM documents no stricter form), or None when ``token`` is not one."""
    return token if _TOKEN.fullmatch(token) else None


def _android_config(n: Content) -> dict[str, Any]:
    """The generated ``AndroidConfig`` block."""
    shown = compact({"sound": n.sound, "click_action": n.category, "notification_count": n.badge})
    return compact(
        {
            "priority": "HIGH" if n.priority == "high" else "NORMAL",
            "ttl": f"{n.ttl_seconds}s" if n.ttl_seconds is not None else None,
            "collapse_key": n.collapse_key,
            "notification": shown or None,
        }
    )


def _apns_config(n: Content) -> dict[str, Any]:
    """The generated ``ApnsConfig`` block (FCM relays it to APNs for iOS apps)."""
    aps = compact(
        {
            "badge": n.badge,
            "sound": n.sound,
            "category": n.category,
            "thread-id": n.thread_id,
            "mutable-content": 1 if n.image else None,
            "content-available": None if n.visible else 1,
        }
    )
    headers = compact(
        {
            "apns-priority": "10" if n.priority == "high" and n.visible else "5",
            "apns-collapse-id": n.collapse_key,
        }
    )
    return compact({"headers": headers, "payload": {"aps": aps} if aps else None})


def _webpush_config(n: Content) -> dict[str, Any]:
    """The generated ``WebpushConfig`` block."""
    headers = compact(
        {
            "TTL": str(n.ttl_seconds) if n.ttl_seconds is not None else None,
            "Urgency": "high" if n.priority == "high" else "normal",
        }
    )
    # FCM accepts only https links here
    link = {"link": n.url} if n.url and n.url.startswith("https://") else None
    return compact({"headers": headers, "fcm_options": link})


class FcmProvider:
    """FCM for one app (one Firebase project).  ``base_url`` may point at the simulator."""

    name = "fcm"
    client_identity: None = None  # requests carry their own authorization

    def __init__(
        self,
        credentials: FcmCredentials,
        *,
        base_url: str = BASE_URL,
        cache: AccessTokenCache | None = None,
    ) -> None:
        self.credentials = credentials
        project = credentials.effective_project_id
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        self.cache = cache if cache is not None else AccessTokenCache()

    @classmethod
    def configured(cls, credentials: FcmCredentials, settings: Settings) -> Self:
        return cls(credentials, base_url=settings.fcm_origin)

    def render(self, notification: Content) -> FcmRendered:
        n = notification
        o: FcmOverrides = getattr(n, self.name, None) or FcmOverrides()
        for key in n.data:
            if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
                raise InvalidNotification(self.name, f"data key {key!r} is reserved by FCM")
        message: dict[str, Any] = {}
        shown = compact({"title": n.title, "body": n.body, "image": n.image})
        if shown:
            message["notification"] = shown
        if n.data:
            message["data"] = dict(n.data)
        for block, generated, override in (
            ("android", _android_config(n), o.android),
            ("apns", _apns_config(n), o.apns),
            ("webpush", _webpush_config(n), o.webpush),
        ):
            merged = deep_merge(generated, override)
            if merged:
                message[block] = merged
        encoded = msgspec.json.encode(message)
        if len(encoded) > PAYLOAD_LIMIT:
            raise PayloadTooLarge(self.name, len(encoded), PAYLOAD_LIMIT)
        overridden = "apns-expiration" in message.get("apns", {}).get("headers", {})
        apns_ttl = None if overridden else n.ttl_seconds
        return FcmRendered(message, encoded, apns_ttl)

    def auth_request(self, now: float) -> Request | None:
        """The token request when a refresh is due.  Two batches asking at once both get
        one (harmless, both answers are valid); a caller that minds serialises them."""
        if not self.cache.refresh_due(now):
            return None
        return token_request(self.credentials, now)

    def accept_auth(self, response: Response, now: float) -> None:
        """Store the new token.  A retryable failure is swallowed while the old token is
        still valid (the next batch asks again); otherwise the ``AuthError`` propagates."""
        try:
            self.cache.store(parse_token_response(response, now), now)
        except AuthError as exc:
            if not exc.retryable or self.cache.current(now) is None:
                raise

    def invalidate_auth(self, now: float) -> None:
        self.cache.invalidate(now)

    def build(
        self, rendered: FcmRendered, registrations: Sequence[Registration], now: float
    ) -> list[Request | Result]:
        token = self.cache.current(now)
        if token is None:
            raise AuthError("no FCM access token: send auth_request() first", retryable=True)
        headers = (
            ("authorization", f"Bearer {token}"),
            ("content-type", "application/json; charset=utf-8"),
        )
        encoded = rendered.encoded
        if rendered.apns_ttl is not None:
            ttl = rendered.apns_ttl
            expiration = str(int(now) + ttl if ttl else 0)
            extra = {"apns": {"headers": {"apns-expiration": expiration}}}
            encoded = msgspec.json.encode(deep_merge(rendered.message, extra))
        # '{"message":{"token":"...",' + the rest of the encoded message object
        rest = encoded[1:] if encoded == b"{}" else b"," + encoded[1:]
        encode = msgspec.json.encode
        return [
            Request(self.url, headers, b'{"message":{"token":' + encode(r.token) + rest + b"}")
            for r in registrations
        ]

    def classify(self, response: Response, now: float | None = None) -> Result:
        failed = transport_result(response)
        if failed is not None:
            return failed
        status = response.status
        if status == 200:
            return _DELIVERED
        error = json_object(response.body).get("error")
        error = error if isinstance(error, dict) else {}
        code = _fcm_error_code(error)
        rpc_status = error.get("status") if isinstance(error.get("status"), str) else None
        if code in ERROR_CODES:
            reason, (outcome, refresh) = code, ERROR_CODES[code]
        elif rpc_status in STATUS_CODES:
            reason, (outcome, refresh) = rpc_status, STATUS_CODES[rpc_status]
        else:
            reason = code or rpc_status or f"http-{status}"
            fallback = Outcome.RETRY if status >= 500 else Outcome.PERMANENT
            outcome, refresh = STATUSES.get(status, (fallback, False))
        if "INVALID_ARGUMENT" in (code, rpc_status) and _names_token(error):
            outcome = Outcome.INVALID
        return Result(
            outcome,
            reason,
            retry_after=retry_after(response, now) if outcome is Outcome.RETRY else None,
            refresh_auth=refresh,
            status=status,
            suspect=outcome is Outcome.INVALID and code in SUSPECT_CODES,
        )


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict)]


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        code = detail.get("errorCode")
        if str(detail.get("@type", "")).endswith(_FCM_ERROR_TYPE) and isinstance(code, str):
            return code
    return None


def _names_token(error: dict[str, Any]) -> bool:
    for detail in _details(error):
        violations = detail.get("fieldViolations")
        if isinstance(violations, list) and any(
            isinstance(v, dict) and v.get("field") == _TOKEN_FIELD for v in violations
        ):
            return True
    message = error.get("message")
    return isinstance(message, str) and _TOKEN_MESSAGE.search(message) is not None

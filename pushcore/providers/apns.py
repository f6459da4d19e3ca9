"""Apple Push Notification service, HTTP/2 provider API: requests and classification.

``POST <origin>/3/device/<token>`` with the JSON payload and the ``apns-*`` headers; token
auth adds ``authorization: bearer <JWT>`` (:class:`ApnsTokenSigner`), certificate auth adds
nothing here (the transport presents the client certificate).  The body and the static
headers are encoded once per message; a batch only adds the URL and the JWT.

Answers are classified by :data:`REASONS` ``(status, reason) -> outcome`` and, for reasons
not listed, by :data:`STATUSES`; a status in neither is ``RETRY`` when 5xx and
``PERMANENT`` otherwise, so an unknown answer never deletes a registration.  Reference:
Apple's "Handling notification responses from APNs".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.config import Settings
from pushcore.providers.base import (
    Outcome,
    Registration,
    Result,
    header_list,
    json_object,
    retry_after,
    transport_result,
)
from pushcore.providers.credentials import ApnsCredentials
from pushcore.providers.errors import InvalidNotification, PayloadTooLarge
from pushcore.providers.notification import ApnsOverrides, Content, compact, deep_merge
from pushcore.transport.base import Request, Response

PRODUCTION_ORIGIN = "https://api.push.apple.com"
SANDBOX_ORIGIN = "https://api.sandbox.push.apple.com"
PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120

# Apple rejects a provider token older than 60 minutes (ExpiredProviderToken) and answers
# 429 TooManyProviderTokenUpdates when a key's token changes more often than every 20.
MIN_TOKEN_AGE = 20 * 60
MAX_TOKEN_AGE = 60 * 60
# A burst of 403 ExpiredProviderToken answers all name the same JWT; re-minting once per
# burst is enough, so invalidations of a token younger than this are ignored.
INVALIDATE_GRACE = 60.0

# Push types whose topic is the bundle id plus a suffix (Apple's "Sending notification
# requests to APNs", apns-topic); the credential stores the bare bundle id.
TOPIC_SUFFIXES = {
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "location": ".location-query",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
}

# Dead-token answers that a wrong topic (DeviceTokenNotForTopic) or a wrong environment
# (sandbox tokens sent to production, or the reverse, answer BadDeviceToken) gives for every
# token of an app: marked ``suspect`` for the deletion safety valve.  Unregistered and
# ExpiredToken are answers about one device only.
SUSPECT_REASONS = frozenset({"DeviceTokenNotForTopic", "BadDeviceToken"})

# (status, reason) -> (outcome, refresh_auth)
REASONS: dict[tuple[int, str], tuple[Outcome, bool]] = {
    (400, "BadDeviceToken"): (Outcome.INVALID, False),
    (400, "DeviceTokenNotForTopic"): (Outcome.INVALID, False),
    (400, "BadTopic"): (Outcome.SENDER_ERROR, False),
    (400, "TopicDisallowed"): (Outcome.SENDER_ERROR, False),
    (400, "MissingTopic"): (Outcome.SENDER_ERROR, False),
    (400, "IdleTimeout"): (Outcome.RETRY, False),
    (403, "ExpiredProviderToken"): (Outcome.RETRY, True),
    (403, "InvalidProviderToken"): (Outcome.RETRY, True),
    (403, "BadCertificate"): (Outcome.SENDER_ERROR, False),
    (403, "BadCertificateEnvironment"): (Outcome.SENDER_ERROR, False),
    (403, "BadEnvironmentKeyInToken"): (Outcome.SENDER_ERROR, False),  # key of the other one
    (403, "Forbidden"): (Outcome.SENDER_ERROR, False),
    (403, "MissingProviderToken"): (Outcome.SENDER_ERROR, False),
    (410, "Unregistered"): (Outcome.INVALID, False),
    (410, "ExpiredToken"): (Outcome.INVALID, False),
    (413, "PayloadTooLarge"): (Outcome.PERMANENT, False),
    (429, "TooManyRequests"): (Outcome.RETRY, False),
    (429, "TooManyProviderTokenUpdates"): (Outcome.RETRY, False),
    (500, "InternalServerError"): (Outcome.RETRY, False),
    (503, "ServiceUnavailable"): (Outcome.RETRY, False),
    (503, "Shutdown"): (Outcome.RETRY, False),
}
# Status -> outcome for reasons not in REASONS.  Other 400s (BadCollapseId, BadPriority,
# PayloadEmpty, ...) concern this message only; 403/404/405 mean the key, certificate or
# URL is wrong for every message; 410 is Apple's "no longer active" whatever the reason.
STATUSES: dict[int, Outcome] = {
    200: Outcome.DELIVERED,
    400: Outcome.PERMANENT,
    403: Outcome.SENDER_ERROR,
    404: Outcome.SENDER_ERROR,
    405: Outcome.SENDER_ERROR,
    410: Outcome.INVALID,
    413: Outcome.PERMANENT,
    429: Outcome.RETRY,
    500: Outcome.RETRY,
    503: Outcome.RETRY,
}

_DELIVERED = Result(Outcome.DELIVERED, "ok", status=200)

_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")


def normalize_token(token: str) -> str | None:
    """The stored form of an APNs device token (even-length hex of 64-200 characters,
    lower-cased), or None when ``token`` is not one."""
    return token.lower() if _TOKEN.fullmatch(token) else None


class ApnsTokenSigner:
    """Mints the ES256 provider token (header ``kid``, claims ``iss`` = team id, ``iat``)
    and reuses it until it is ``max_age`` seconds old.  Keep one signer per (team, key) for
    the whole process, not one per connection: APNs limits how often a key's token may
    change."""

    def __init__(
        self, team_id: str, key_id: str, key: ec.EllipticCurvePrivateKey, *, max_age: float = 2400
    ) -> None:
        if not MIN_TOKEN_AGE <= max_age < MAX_TOKEN_AGE:
            raise ValueError("max_age must be within Apple's 20-60 minute window")
        self.team_id = team_id
        self.key_id = key_id
        self.max_age = max_age
        self._key = key
        self._token: str | None = None
        self._issued_at = 0.0

    @classmethod
    def from_credentials(cls, credentials: ApnsCredentials, *, max_age: float = 2400) -> Self:
        if credentials.team_id is None or credentials.key_id is None:
            raise ValueError("certificate credentials have no token signer")
        return cls(
            credentials.team_id, credentials.key_id, credentials.signing_key(), max_age=max_age
        )

    def token(self, now: float) -> str:
        """The current JWT, minted anew when missing, too old, or issued "in the future"
        (the clock stepped back: APNs refuses an ``iat`` ahead of its own clock)."""
        age = now - self._issued_at
        if self._token is None or age >= self.max_age or age < 0:
            issued = int(now)
            self._token = jwt.encode(
                {"iss": self.team_id, "iat": issued},
                self._key,
                algorithm="ES256",
                headers={"kid": self.key_id},
            )
            self._issued_at = float(issued)
        return self._token

    def invalidate(self, now: float) -> None:
        """Forget the token (after ExpiredProviderToken/InvalidProviderToken), unless it was
        minted less than :data:`INVALIDATE_GRACE` seconds ago."""
        if now - self._issued_at >= INVALIDATE_GRACE:
            self._token = None


@dataclass(frozen=True, slots=True)
class ApnsRendered:
    payload: bytes
    headers: tuple[tuple[str, str], ...]  # static per message: topic, push type, priority
    push_type: str
    ttl_seconds: int | None
    expiration: int | None  # absolute override; wins over ttl_seconds

    def preview(self) -> bytes:
        """What a recipient gets: the JSON body of every request."""
        return self.payload


class ApnsProvider:
    """APNs for one app.  ``origin`` defaults to the credentials' environment; give the
    local simulator's origin instead in development and tests."""

    name = "apns"

    def __init__(
        self,
        credentials: ApnsCredentials,
        *,
        origin: str | None = None,
        signer: ApnsTokenSigner | None = None,
    ) -> None:
        self.credentials = credentials
        if origin is None:
            production = credentials.environment == "production"
            origin = PRODUCTION_ORIGIN if production else SANDBOX_ORIGIN
        self.origin = origin.rstrip("/")
        if signer is None and credentials.auth == "token":
            signer = ApnsTokenSigner.from_credentials(credentials)
        self.signer = signer

    @property
    def client_identity(self) -> tuple[str, str] | None:
        c = self.credentials
        return (c.certificate, c.private_key) if c.certificate is not None else None

    @classmethod
    def configured(cls, credentials: ApnsCredentials, settings: Settings) -> Self:
        """The provider at the origin the settings give for the credentials' environment."""
        production = credentials.environment == "production"
        origin = settings.apns_origin if production else settings.apns_sandbox_origin
        return cls(credentials, origin=origin)

    def render(self, notification: Content) -> ApnsRendered:
        n = notification
        o: ApnsOverrides = getattr(n, self.name, None) or ApnsOverrides()
        push_type = o.push_type or (
            "alert" if n.visible or n.badge is not None or n.sound else "background"
        )
        alert = compact({"title": n.title, "body": n.body})
        aps = compact(
            {
                "alert": alert or None,
                "badge": n.badge,
                "sound": n.sound,
                "category": n.category,
                "thread-id": n.thread_id,
                "content-available": 1 if push_type == "background" else None,
                # the app's notification service extension downloads the image
                "mutable-content": 1 if n.image else None,
            }
        )
        if "aps" in n.data:
            raise InvalidNotification(self.name, "data key 'aps' is reserved")
        payload: dict[str, Any] = compact({"url": n.url, "image": n.image})
        payload.update(n.data)
        payload["aps"] = deep_merge(aps, o.aps)
        payload = deep_merge(payload, o.payload)
        body = msgspec.json.encode(payload)
        limit = VOIP_PAYLOAD_LIMIT if push_type == "voip" else PAYLOAD_LIMIT
        if len(body) > limit:
            raise PayloadTooLarge(self.name, len(body), limit)

        # Background pushes must use priority 5 (APNs refuses 10 for them).
        default_priority = 10 if n.priority == "high" and push_type != "background" else 5
        topic = self.credentials.topic
        suffix = TOPIC_SUFFIXES.get(push_type, "")
        if not topic.endswith(suffix):
            topic += suffix
        headers = header_list(
            {
                "apns-topic": topic,
                "apns-push-type": push_type,
                "apns-priority": str(o.priority or default_priority),
                "apns-collapse-id": o.collapse_id or n.collapse_key,
                "content-type": "application/json",
            }
        )
        return ApnsRendered(body, headers, push_type, n.ttl_seconds, o.expiration)

    def auth_request(self, now: float) -> Request | None:
        return None  # the JWT is minted locally

    def accept_auth(self, response: Response, now: float) -> None:
        return None

    def invalidate_auth(self, now: float) -> None:
        if self.signer is not None:
            self.signer.invalidate(now)

    def build(
        self, rendered: ApnsRendered, registrations: Sequence[Registration], now: float
    ) -> list[Request | Result]:
        extra: list[tuple[str, str]] = []
        if self.signer is not None:
            extra.append(("authorization", f"bearer {self.signer.token(now)}"))
        expiration = rendered.expiration
        if expiration is None and rendered.ttl_seconds is not None:
            # 0 stays 0: "deliver now or never" rather than "expire at now"
            expiration = int(now) + rendered.ttl_seconds if rendered.ttl_seconds else 0
        if expiration is not None:
            extra.append(("apns-expiration", str(expiration)))
        headers = rendered.headers + tuple(extra)
        base = f"{self.origin}/3/device/"
        # Tokens are hex, but a registration holds whatever a device sent: quoting keeps it
        # one path segment, and APNs answers BadDeviceToken for anything malformed.
        return [
            Request(
                base
                + (r.token if r.token.isalnum() and r.token.isascii() else quote(r.token, safe="")),
                headers,
                rendered.payload,
            )
            for r in registrations
        ]

    def classify(self, response: Response, now: float | None = None) -> Result:
        failed = transport_result(response)
        if failed is not None:
            return failed
        status = response.status
        if status == 200:
            return _DELIVERED
        body = json_object(response.body)
        reason = body.get("reason")
        reason = reason if isinstance(reason, str) and reason else f"http-{status}"
        outcome, refresh = REASONS.get((status, reason), (None, False))
        if outcome is None:
            outcome = STATUSES.get(status) or (
                Outcome.RETRY if status >= 500 else Outcome.PERMANENT
            )
        invalid_since = None
        if outcome is Outcome.INVALID and isinstance(body.get("timestamp"), int):
            invalid_since = body["timestamp"] / 1000.0
        return Result(
            outcome,
            reason,
            retry_after=retry_after(response, now) if outcome is Outcome.RETRY else None,
            refresh_auth=refresh,
            status=status,
            invalid_since=invalid_since,
            suspect=outcome is Outcome.INVALID and reason in SUSPECT_REASONS,
        )

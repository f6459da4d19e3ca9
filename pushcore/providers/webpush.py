"""Web Push (RFC 8030) to browser push services: requests and classification.

``POST <subscription endpoint>`` with the payload encrypted for that subscription
(:func:`~pushcore.providers.webpush_crypto.encrypt`), the headers ``ttl`` (mandatory),
``urgency``, ``topic``, ``content-encoding: aes128gcm`` and ``authorization: vapid ...``
(:class:`~pushcore.providers.webpush_crypto.VapidSigner`).  Unlike APNs and FCM every body
differs (one ECDH and AES-GCM per registration), and the endpoint URL comes from the
browser, so the endpoint policy (:mod:`pushcore.endpoints`, the same one registration
applies) is checked before anything is sent to it: its URL when the batch is built, and
the address the transport connects to (``Request.peer_allowed``).  A refused endpoint
fails as ``endpoint-refused`` and the registration is kept
(:data:`~pushcore.providers.base.ENDPOINT_REFUSED`).

The plaintext the service worker receives is the notification's ``webpush.payload`` when
given, else ``{"title", "body", "data", "badge", "sound", "image", "url", "category",
"thread_id"}`` with unset fields left out.

Classification is by HTTP status alone (:data:`STATUSES`): push services disagree on error
bodies.  Unknown statuses are ``RETRY`` when 5xx and ``PERMANENT`` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import msgspec

from pushcore.config import Settings
from pushcore.endpoints import EndpointPolicy
from pushcore.providers.base import (
    ENDPOINT_REFUSED,
    Outcome,
    Registration,
    Result,
    retry_after,
    transport_result,
)
from pushcore.providers.credentials import WebPushCredentials, b64url_decode
from pushcore.providers.errors import PayloadTooLarge
from pushcore.providers.notification import (
    MAX_TTL_SECONDS,
    Content,
    WebPushOverrides,
    compact,
)
from pushcore.providers.webpush_crypto import (
    MAX_PLAINTEXT,
    KeySource,
    SaltSource,
    VapidSigner,
    encrypt,
    ephemeral_key,
    random_salt,
)
from pushcore.transport.base import Request, Response

# Without a TTL the push service would drop a message for an offline browser at once
# (RFC 8030 §5.2 makes the header mandatory); keep it as long as FCM would.
DEFAULT_TTL = MAX_TTL_SECONDS

# Push services answer 201 Created (RFC 8030 §5); some proxies 200/202.  400/401/403 mean
# our VAPID key, JWT or request is wrong; 404/410 that the subscription is gone.
STATUSES: dict[int, Outcome] = {
    200: Outcome.DELIVERED,
    201: Outcome.DELIVERED,
    202: Outcome.DELIVERED,
    400: Outcome.SENDER_ERROR,
    401: Outcome.SENDER_ERROR,
    403: Outcome.SENDER_ERROR,
    404: Outcome.INVALID,
    410: Outcome.INVALID,
    413: Outcome.PERMANENT,
    429: Outcome.RETRY,
    500: Outcome.RETRY,
    502: Outcome.RETRY,
    503: Outcome.RETRY,
}

_TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_BAD_KEYS = Result(Outcome.INVALID, "bad-subscription-keys")


@dataclass(frozen=True, slots=True)
class WebPushRendered:
    plaintext: bytes
    headers: tuple[tuple[str, str], ...]  # ttl, urgency, topic, content-*

    def preview(self) -> bytes:
        """What a recipient gets: the JSON its service worker receives (the plaintext)."""
        return self.plaintext


class WebPushProvider:
    """Web Push for one app (one VAPID key).  ``salt_source`` and ``key_source`` exist for
    deterministic tests; ``policy`` is where requests may go (by default the known push
    services; ``allow_loopback`` is short for the default plus loopback, the simulators)."""

    name = "webpush"
    client_identity: None = None  # requests carry their own authorization

    def __init__(
        self,
        credentials: WebPushCredentials,
        *,
        signer: VapidSigner | None = None,
        salt_source: SaltSource = random_salt,
        key_source: KeySource = ephemeral_key,
        allow_loopback: bool = False,
        policy: EndpointPolicy | None = None,
    ) -> None:
        self.credentials = credentials
        self.signer = signer if signer is not None else VapidSigner(credentials)
        self.salt_source = salt_source
        self.key_source = key_source
        self.policy = (
            policy if policy is not None else EndpointPolicy(allow_loopback=allow_loopback)
        )

    @classmethod
    def configured(cls, credentials: WebPushCredentials, settings: Settings) -> Self:
        return cls(credentials, policy=settings.endpoint_policy())

    def render(self, notification: Content) -> WebPushRendered:
        n = notification
        o: WebPushOverrides = getattr(n, self.name, None) or WebPushOverrides()
        if o.payload is not None:
            payload = o.payload
        else:
            payload = compact(
                {
                    "title": n.title,
                    "body": n.body,
                    "data": dict(n.data) or None,
                    "badge": n.badge,
                    "sound": n.sound,
                    "image": n.image,
                    "url": n.url,
                    "category": n.category,
                    "thread_id": n.thread_id,
                }
            )
        plaintext = msgspec.json.encode(payload)
        if len(plaintext) > MAX_PLAINTEXT:
            raise PayloadTooLarge(self.name, len(plaintext), MAX_PLAINTEXT)
        ttl = o.ttl if o.ttl is not None else n.ttl_seconds
        topic = o.topic or (_topic(n.collapse_key) if n.collapse_key else None)
        headers: list[tuple[str, str]] = [
            ("ttl", str(DEFAULT_TTL if ttl is None else ttl)),
            ("urgency", o.urgency or n.priority),
            ("content-encoding", "aes128gcm"),
            ("content-type", "application/octet-stream"),
        ]
        if topic is not None:
            headers.append(("topic", topic))
        return WebPushRendered(plaintext, tuple(headers))

    def auth_request(self, now: float) -> Request | None:
        return None  # VAPID JWTs are minted locally

    def accept_auth(self, response: Response, now: float) -> None:
        return None

    def invalidate_auth(self, now: float) -> None:
        self.signer.invalidate()

    def build(
        self, rendered: WebPushRendered, registrations: Sequence[Registration], now: float
    ) -> list[Request | Result]:
        prepared: list[Request | Result] = []
        for registration in registrations:
            origin = self.policy.origin(registration.token)
            if origin is None:
                prepared.append(ENDPOINT_REFUSED)
                continue
            try:
                ua_public = b64url_decode(registration.p256dh or "")
                auth_secret = b64url_decode(registration.auth or "")
                body = encrypt(
                    rendered.plaintext,
                    ua_public,
                    auth_secret,
                    salt=self.salt_source(),
                    sender_key=self.key_source(),
                )
            except (ValueError, binascii.Error):
                # the browser gave keys that cannot encrypt anything: the subscription is
                # unusable for good, like one the push service reports gone
                prepared.append(_BAD_KEYS)
                continue
            headers = (
                *rendered.headers,
                ("authorization", self.signer.authorization(origin, now)),
            )
            prepared.append(
                Request(registration.token, headers, body, peer_allowed=self.policy.address_allowed)
            )
        return prepared

    def classify(self, response: Response, now: float | None = None) -> Result:
        failed = transport_result(response)
        if failed is not None:
            return failed
        status = response.status
        outcome = STATUSES.get(status) or (Outcome.RETRY if status >= 500 else Outcome.PERMANENT)
        return Result(
            outcome,
            "ok" if outcome is Outcome.DELIVERED else f"http-{status}",
            retry_after=retry_after(response, now) if outcome is Outcome.RETRY else None,
            status=status,
        )


def _topic(collapse_key: str) -> str:
    """A collapse key as an RFC 8030 topic (at most 32 base64url characters): kept when it
    already is one, else hashed (stable, so equal keys still replace each other)."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    digest = hashlib.sha256(collapse_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]

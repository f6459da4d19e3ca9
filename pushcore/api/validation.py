"""Checks of push registrations that the schema alone cannot express.

- APNs device tokens: even-length hex, 64 to 200 characters (stored lower-case).
- FCM registration tokens: printable ASCII without spaces, up to 4096 characters.
- Web Push: the endpoint must be https (plain http only to a loopback host, for the local
  simulators); ``p256dh`` must decode to a 65-byte uncompressed P-256 point that lies on the
  curve and ``auth`` to 16 bytes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.api.errors import invalid
from pushcore.api.schemas import WebSubscription
from pushcore.providers.credentials import b64url_decode

_APNS = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")
_FCM = re.compile(r"[\x21-\x7e]{1,4096}")


@dataclass(frozen=True, slots=True)
class Registration:
    """A checked push registration, as stored: token (or endpoint) and Web Push keys."""

    token: str
    p256dh: str | None = None
    auth: str | None = None


def apns_token_ok(token: str) -> bool:
    return _APNS.fullmatch(token) is not None


def fcm_token_ok(token: str) -> bool:
    return _FCM.fullmatch(token) is not None


def registration(
    platform: str, push_token: str | None, subscription: WebSubscription | None
) -> Registration:
    """The registration for ``platform``; a 422 naming the field when it is malformed."""
    if platform == "web":
        if push_token is not None:
            raise invalid("push_token", "web installations register a web_subscription")
        if subscription is None:
            raise invalid("web_subscription", "required for platform web")
        return web_registration(subscription)
    if subscription is not None:
        raise invalid("web_subscription", f"not accepted for platform {platform}")
    if push_token is None:
        raise invalid("push_token", f"required for platform {platform}")
    return Registration(push_token_for(platform, push_token))


def push_token_for(platform: str, token: str) -> str:
    if platform == "ios":
        if not apns_token_ok(token):
            raise invalid("push_token", "an APNs device token is even-length hex, 64-200 chars")
        return token.lower()
    if not fcm_token_ok(token):
        raise invalid("push_token", "an FCM token is printable ASCII without spaces, ≤ 4096")
    return token


def web_registration(sub: WebSubscription) -> Registration:
    _check_endpoint(sub.endpoint)
    try:
        p256dh = b64url_decode(sub.keys.p256dh)
    except ValueError:
        raise invalid("web_subscription.keys.p256dh", "not base64url") from None
    if len(p256dh) != 65 or p256dh[0] != 4:
        raise invalid("web_subscription.keys.p256dh", "must be a 65-byte uncompressed point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise invalid("web_subscription.keys.p256dh", "not a point on P-256") from None
    try:
        auth = b64url_decode(sub.keys.auth)
    except ValueError:
        raise invalid("web_subscription.keys.auth", "not base64url") from None
    if len(auth) != 16:
        raise invalid("web_subscription.keys.auth", "must decode to 16 bytes")
    return Registration(sub.endpoint, sub.keys.p256dh, sub.keys.auth)


def _check_endpoint(endpoint: str) -> None:
    field = "web_subscription.endpoint"
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:
        raise invalid(field, "not a URL") from None
    if not host or parts.username or parts.password or any(c.isspace() for c in endpoint):
        raise invalid(field, "not an absolute URL")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise invalid(field, "must be https (plain http only to a loopback simulator)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

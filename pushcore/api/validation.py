"""Checks of push registrations that the schema alone cannot express.

- Push tokens: each platform's own rule, from the platform registry (APNs device tokens are
  even-length hex of 64 to 200 characters, stored lower-case; FCM registration tokens are
  printable ASCII without spaces, up to 4096 characters).
- Web Push: the endpoint must pass the endpoint policy (:mod:`pushcore.endpoints`: https to
  an allowed push-service host, never an internal address; the sender applies the same
  policy); ``p256dh`` must decode to a 65-byte uncompressed P-256 point that lies on the
  curve and ``auth`` to 16 bytes.
- Device properties that pushcore itself reads: ``language`` (a BCP 47 tag: the message's
  localization is picked by it) and ``time_zone`` (an IANA zone name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.api.errors import invalid
from pushcore.api.schemas import WebSubscription
from pushcore.endpoints import EndpointPolicy
from pushcore.providers import registry
from pushcore.providers.credentials import b64url_decode
from pushcore.templates import locale


@dataclass(frozen=True, slots=True)
class Registration:
    """A checked push registration, as stored: token (or endpoint) and Web Push keys."""

    token: str
    p256dh: str | None = None
    auth: str | None = None


def registration(
    platform: str,
    push_token: str | None,
    subscription: WebSubscription | None,
    policy: EndpointPolicy,
) -> Registration:
    """The registration for ``platform``; a 422 naming the field when it is malformed."""
    if registry.spec(platform).registration == "web_subscription":
        if push_token is not None:
            raise invalid("push_token", f"{platform} installations register a web_subscription")
        if subscription is None:
            raise invalid("web_subscription", f"required for platform {platform}")
        return web_registration(subscription, policy)
    if subscription is not None:
        raise invalid("web_subscription", f"not accepted for platform {platform}")
    if push_token is None:
        raise invalid("push_token", f"required for platform {platform}")
    return Registration(push_token_for(platform, push_token))


def device_properties(device: Mapping[str, object] | None) -> None:
    """422 naming ``device.language`` or ``device.time_zone`` when one is given and is not a
    BCP 47 tag or an IANA time zone (``null`` removes a property and is always accepted)."""
    if not device:
        return
    language = device.get("language")
    if language is not None and not (isinstance(language, str) and locale.valid_language(language)):
        raise invalid("device.language", "must be a BCP 47 language tag such as pt-BR")
    zone = device.get("time_zone")
    if zone is not None and not (isinstance(zone, str) and locale.valid_time_zone(zone)):
        raise invalid("device.time_zone", "must be an IANA time zone such as Europe/Lisbon")


def push_token_for(platform: str, token: str) -> str:
    """The stored form of ``token`` on a push-token platform; a 422 when it is not one."""
    spec = registry.spec(platform)
    stored = spec.token_rule(token) if spec.token_rule is not None else None
    if stored is None:
        raise invalid("push_token", spec.registration_help)
    return stored


def token_candidates(token: str) -> dict[str, str]:
    """{platform: stored form} of every push-token platform ``token`` is valid for (a
    device changing its token does not say its platform)."""
    candidates: dict[str, str] = {}
    for spec in registry.PLATFORMS:
        if spec.token_rule is not None and (stored := spec.token_rule(token)) is not None:
            candidates[spec.name] = stored
    return candidates


def web_registration(sub: WebSubscription, policy: EndpointPolicy) -> Registration:
    refusal = policy.refusal(sub.endpoint)
    if refusal is not None:
        raise invalid("web_subscription.endpoint", refusal)
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

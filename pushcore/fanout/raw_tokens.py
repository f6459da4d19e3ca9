"""Raw-token targets: addresses the sender keeps in its own store, checked as registrations
are, de-duplicated, and handed to the planner as (platform, token, p256dh, auth).

The checks mirror the registration API's (``pushcore.api.validation``): a push token must
pass its platform's ``token_rule`` (and is used in its stored form); a Web Push
subscription's endpoint must pass the endpoint policy (:mod:`pushcore.endpoints`, the one
registrations and sending use), its ``p256dh`` be a 65-byte P-256 point on the curve and its
``auth`` 16 bytes.  A refusal names the entry
(``target.tokens[i]...``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.endpoints import EndpointPolicy
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.targets import RawSubscription, RawToken
from pushcore.providers import registry
from pushcore.providers.credentials import b64url_decode


@dataclass(frozen=True, slots=True)
class Address:
    platform: str
    token: str  # the stored form: APNs hex lower-case, FCM token, Web Push endpoint
    p256dh: str | None = None
    auth: str | None = None


def addresses(tokens: list[RawToken], policy: EndpointPolicy | None = None) -> list[Address]:
    """The distinct addresses of a ``tokens`` target, in order; with an endpoint ``policy``
    each entry is checked (:class:`InvalidSend` naming the first bad one); without, as the
    planner reads a request the submit already checked, none is."""
    seen: dict[tuple[str, str], Address] = {}
    for index, entry in enumerate(tokens):
        address = _address(entry, f"target.tokens[{index}]", policy)
        seen.setdefault((address.platform, address.token), address)
    return list(seen.values())


def _address(entry: RawToken, field: str, policy: EndpointPolicy | None) -> Address:
    spec = registry.spec(entry.platform)
    if spec.registration == "web_subscription":
        if entry.token is not None or entry.web_subscription is None:
            raise InvalidSend(f"{field}.web_subscription", f"required for platform {spec.name}")
        sub = entry.web_subscription
        if policy is not None:
            _check_subscription(sub, f"{field}.web_subscription", policy)
        return Address(spec.name, sub.endpoint, sub.keys.p256dh, sub.keys.auth)
    if entry.web_subscription is not None or entry.token is None:
        raise InvalidSend(f"{field}.token", f"required for platform {spec.name}")
    stored = spec.token_rule(entry.token) if spec.token_rule is not None else None
    if stored is None:
        if policy is not None:
            raise InvalidSend(f"{field}.token", spec.registration_help)
        stored = entry.token
    return Address(spec.name, stored)


def _check_subscription(sub: RawSubscription, field: str, policy: EndpointPolicy) -> None:
    refusal = policy.refusal(sub.endpoint)
    if refusal is not None:
        raise InvalidSend(f"{field}.endpoint", refusal)
    try:
        p256dh = b64url_decode(sub.keys.p256dh)
    except ValueError:
        raise InvalidSend(f"{field}.keys.p256dh", "not base64url") from None
    if len(p256dh) != 65 or p256dh[0] != 4:
        raise InvalidSend(f"{field}.keys.p256dh", "must be a 65-byte uncompressed point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise InvalidSend(f"{field}.keys.p256dh", "not a point on P-256") from None
    try:
        auth = b64url_decode(sub.keys.auth)
    except ValueError:
        raise InvalidSend(f"{field}.keys.auth", "not base64url") from None
    if len(auth) != 16:
        raise InvalidSend(f"{field}.keys.auth", "must decode to 16 bytes")

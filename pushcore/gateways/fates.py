"""Deterministic fates of simulated registrations, shared by the three simulators.

A token's fate is read from its prefix, so a test or benchmark knows in advance which
registrations the simulators will report as dead, without sharing any state with them:

========  ==========================  ===============================================
provider  prefix                      answer
========  ==========================  ===============================================
APNs      ``dead`` (hex token)        410 ``Unregistered`` (with ``timestamp``)
APNs      ``bad0``                    400 ``BadDeviceToken``
FCM       ``unreg``                   404 ``NOT_FOUND`` / errorCode ``UNREGISTERED``
FCM       ``inval``                   400 ``INVALID_ARGUMENT``
Web Push  ``gone`` (subscription id)  410 Gone
========  ==========================  ===============================================

Anything else is live.  The generators below make tokens of each fate from ``(seed, i)``
with one hash each, so benchmarks can seed millions of registrations cheaply.

Web Push subscriptions also need keys (``p256dh``: an uncompressed P-256 point, ``auth``:
16 bytes).  Deriving one key pair per subscription costs a scalar multiplication
(~50 µs); instead the private key is picked from a pool of :data:`KEY_POOL_SIZE` keys by a
hash of the subscription id, and ``auth`` is that hash's tail.  Senders still do the full
per-message ECDH, and the simulator can re-derive the private key from the id alone to
check that a message decrypts (:func:`webpush_private_key`).

Pure: no I/O.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_POOL_SIZE = 64
_POOL_SEED = b"pushcore-gateways-webpush-key-pool"
# Order of the P-256 group: private scalars must lie in [1, n-1].
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Fate(enum.Enum):
    LIVE = "live"  # accepted
    DEAD = "dead"  # unregistered / gone: the registration must be deleted
    INVALID = "invalid"  # malformed token: the registration must be deleted


APNS_DEAD = "dead"
APNS_INVALID = "bad0"
FCM_DEAD = "unreg"
FCM_INVALID = "inval"
WEBPUSH_DEAD = "gone"


def apns_fate(token: str) -> Fate:
    """Fate of an APNs device token (hex, any case)."""
    head = token[:4].lower()
    if head == APNS_DEAD:
        return Fate.DEAD
    if head == APNS_INVALID:
        return Fate.INVALID
    return Fate.LIVE


def fcm_fate(token: str) -> Fate:
    if token.startswith(FCM_DEAD):
        return Fate.DEAD
    if token.startswith(FCM_INVALID):
        return Fate.INVALID
    return Fate.LIVE


def webpush_fate(subscription_id: str) -> Fate:
    return Fate.DEAD if subscription_id.startswith(WEBPUSH_DEAD) else Fate.LIVE


def _digest(kind: bytes, seed: int, i: int) -> bytes:
    return hashlib.sha256(b"%s:%d:%d" % (kind, seed, i)).digest()


def apns_token(i: int, fate: Fate = Fate.LIVE, *, seed: int = 0) -> str:
    """A 64-hex-digit device token (Apple's 32-byte form) of the given fate."""
    hexed = _digest(b"apns", seed, i).hex()
    if fate is Fate.DEAD:
        return APNS_DEAD + hexed[4:]
    if fate is Fate.INVALID:
        return APNS_INVALID + hexed[4:]
    # Live tokens start with 'a': never 'dead' nor 'bad0'.
    return "a" + hexed[1:]


def fcm_token(i: int, fate: Fate = Fate.LIVE, *, seed: int = 0) -> str:
    """A registration token shaped like FCM's (``<instance id>:APA91b<...>``, 163 chars)."""
    d = _digest(b"fcm", seed, i)
    body = base64.urlsafe_b64encode(d * 4).rstrip(b"=").decode("ascii")
    token = f"{body[:22]}:APA91b{body[22:156]}"
    if fate is Fate.DEAD:
        return FCM_DEAD + token[len(FCM_DEAD) :]
    if fate is Fate.INVALID:
        return FCM_INVALID + token[len(FCM_INVALID) :]
    return "c" + token[1:]  # 'c' never starts 'unreg' nor 'inval'


@dataclass(frozen=True, slots=True)
class WebPushSubscription:
    """What a browser's ``PushSubscription.toJSON()`` gives, with keys base64url-encoded."""

    endpoint: str
    p256dh: str  # base64url of the 65-byte uncompressed P-256 point
    auth: str  # base64url of 16 bytes


def webpush_subscription_id(i: int, fate: Fate = Fate.LIVE, *, seed: int = 0) -> str:
    if fate is Fate.INVALID:
        raise ValueError("Web Push has no 'invalid' fate: a subscription is live or gone")
    hexed = _digest(b"webpush", seed, i).hex()[:40]
    return (WEBPUSH_DEAD if fate is Fate.DEAD else "sub") + hexed


def webpush_subscription(
    i: int, fate: Fate = Fate.LIVE, *, seed: int = 0, origin: str = "https://127.0.0.1"
) -> WebPushSubscription:
    """A subscription whose endpoint is ``<origin>/push/<id>`` on the Web Push simulator."""
    sub_id = webpush_subscription_id(i, fate, seed=seed)
    p256dh, auth = webpush_keys(sub_id)
    return WebPushSubscription(
        endpoint=f"{origin.rstrip('/')}/push/{sub_id}",
        p256dh=_b64url(p256dh),
        auth=_b64url(auth),
    )


def webpush_keys(subscription_id: str) -> tuple[bytes, bytes]:
    """(``p256dh`` 65 bytes, ``auth`` 16 bytes) of a subscription id; a pure function of it."""
    index, auth = _key_choice(subscription_id)
    return _pool()[index][1], auth


def webpush_private_key(subscription_id: str) -> ec.EllipticCurvePrivateKey:
    """The user agent's private key behind :func:`webpush_keys` (for decryption checks)."""
    index, _ = _key_choice(subscription_id)
    return _pool()[index][0]


def _key_choice(subscription_id: str) -> tuple[int, bytes]:
    d = hashlib.sha256(b"webpush-keys:" + subscription_id.encode()).digest()
    return d[0] % KEY_POOL_SIZE, d[16:32]


@functools.cache
def _pool() -> tuple[tuple[ec.EllipticCurvePrivateKey, bytes], ...]:
    keys = []
    for n in range(KEY_POOL_SIZE):
        d = hashlib.sha256(_POOL_SEED + b"%d" % n).digest()
        scalar = int.from_bytes(d, "big") % (_P256_N - 1) + 1
        key = ec.derive_private_key(scalar, ec.SECP256R1())
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        keys.append((key, point))
    return tuple(keys)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

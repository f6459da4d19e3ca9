"""Web Push message encryption (RFC 8291 over RFC 8188 ``aes128gcm``) and VAPID (RFC 8292).

Written on ``cryptography`` directly rather than ``http_ece`` so that it is typed and so that
the tests, which decrypt with ``http_ece`` as a browser would, check it against an
independent implementation.

Each message needs a fresh 16-byte salt and a fresh ephemeral P-256 key (RFC 8291 §3.4);
both come from the operating system's CSPRNG unless injected (tests).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushcore.providers.credentials import WebPushCredentials

# A push service must accept 4096 bytes of body (RFC 8030 §7.2).  One record with a 4096
# record size: 86 bytes of header (salt 16, rs 4, idlen 1, key 65), 16 of tag and 1 of
# padding delimiter leave 3993 for the plaintext.
RECORD_SIZE = 4096
MAX_PLAINTEXT = RECORD_SIZE - 86 - 16 - 1

# RFC 8292 §2: exp no more than 24 hours after the request.
MAX_VAPID_LIFETIME = 24 * 3600

SaltSource = Callable[[], bytes]
KeySource = Callable[[], ec.EllipticCurvePrivateKey]


def random_salt() -> bytes:
    return os.urandom(16)


def ephemeral_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes,
    sender_key: ec.EllipticCurvePrivateKey,
) -> bytes:
    """The ``aes128gcm`` body for one subscription: header (salt, record size, sender
    public key) and a single record.  ``ua_public`` is the subscription's uncompressed P-256
    point (``p256dh``), ``auth_secret`` its 16-byte ``auth``.  Raises ``ValueError`` for
    keys that do not decode or a plaintext over :data:`MAX_PLAINTEXT`."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("plaintext exceeds one record")
    if len(auth_secret) != 16 or len(salt) != 16:
        raise ValueError("auth secret and salt are 16 bytes")
    if len(ua_public) != 65 or ua_public[0] != 4:
        raise ValueError("p256dh is not an uncompressed P-256 point")
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_public = sender_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    shared = sender_key.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)  # 0x02: last record
    return salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public + record


class VapidSigner:
    """Mints the ``Authorization: vapid t=<JWT>, k=<key>`` value per push-service origin
    (JWT ES256, ``aud`` = origin, ``exp``, ``sub``), reused until ``margin`` seconds before
    its expiry.  The cache holds at most ``max_entries`` origins (WNS endpoints have many
    host names); when full, expired entries go first, then the oldest."""

    def __init__(
        self,
        credentials: WebPushCredentials,
        *,
        lifetime: float = 12 * 3600,
        margin: float = 3600,
        max_entries: int = 1024,
    ) -> None:
        if not margin < lifetime <= MAX_VAPID_LIFETIME:
            raise ValueError("lifetime must exceed margin and be at most 24 hours")
        self.subject = credentials.subject
        self.public_key = credentials.application_server_key()
        self.lifetime = lifetime
        self.margin = margin
        self.max_entries = max_entries
        self._key = credentials.signing_key()
        self._cache: dict[str, tuple[str, float]] = {}  # origin -> (header value, exp)

    def authorization(self, origin: str, now: float) -> str:
        cached = self._cache.get(origin)
        if cached is not None and now < cached[1] - self.margin:
            return cached[0]
        expires = int(now + self.lifetime)
        token = jwt.encode(
            {"aud": origin, "exp": expires, "sub": self.subject}, self._key, algorithm="ES256"
        )
        value = f"vapid t={token}, k={self.public_key}"
        self._cache.pop(origin, None)
        if len(self._cache) >= self.max_entries:
            self._evict(now)
        self._cache[origin] = (value, float(expires))
        return value

    def invalidate(self) -> None:
        self._cache.clear()

    def _evict(self, now: float) -> None:
        for origin in [o for o, (_, exp) in self._cache.items() if exp - self.margin <= now]:
            del self._cache[origin]
        while len(self._cache) >= self.max_entries:
            del self._cache[next(iter(self._cache))]  # dicts keep insertion order

"""Credentials of API callers: the admin token, server keys and installation secrets.

- Admin: ``Authorization: Bearer $PUSHCORE_ADMIN_TOKEN`` (compared in constant time).
- Server keys (``pcs_…``): random 256-bit values, stored as SHA-256 digests; a key is shown
  once, at creation.  A plain digest (not a slow KDF) is right here because the keys are
  random, not passwords.  Checked keys are cached per process for
  ``PUSHCORE_AUTH_CACHE_SECONDS``: a revocation reaches other API processes within that time
  (the revoking process drops its cache at once).
- Installation secrets (``pci_…``): the same scheme; the device-side statements match the
  digest inside their own WHERE clause, so checking costs no extra query.
- Identity tokens: lowercase hex HMAC-SHA256 of the external user id, keyed with the app's
  identity secret; compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from pushcore.api.errors import unauthorized

SERVER_KEY_PREFIX = "pcs_"
INSTALLATION_SECRET_PREFIX = "pci_"  # noqa: S105 (a prefix)
IDENTITY_SECRET_PREFIX = "pcid_"  # noqa: S105 (a prefix)
# Bounds the cache: past this many distinct keys the oldest half is dropped.
MAX_CACHED_KEYS = 10_000
K = TypeVar("K")
V = TypeVar("V")


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def new_public_id(prefix: str, nbytes: int = 9) -> str:
    return prefix + secrets.token_urlsafe(nbytes).replace("-", "x").replace("_", "y")


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def identity_token(identity_secret: str, external_user_id: str) -> str:
    key = identity_secret.encode()
    return hmac.new(key, external_user_id.encode(), hashlib.sha256).hexdigest()


def identity_ok(identity_secret: str, external_user_id: str, token: str | None) -> bool:
    if token is None:
        return False
    # compared as bytes: compare_digest refuses str with non-ASCII characters
    expected = identity_token(identity_secret, external_user_id).encode()
    return hmac.compare_digest(expected, token.encode())


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("missing 'Authorization: Bearer <credential>' header")
    return value.strip()


@dataclass(frozen=True, slots=True)
class AppRef:
    """The app a server key belongs to."""

    id: int
    code: str


class TtlCache(Generic[K, V]):
    """key → (value, time stored), trusted for ``ttl`` seconds; bounded (half is dropped
    when full), per process.  ``ttl`` 0 disables it."""

    def __init__(self, ttl: float, size: int = MAX_CACHED_KEYS) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored = entry
        if time.monotonic() - stored > self._ttl:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._size:
            for stale in list(self._entries)[: self._size // 2]:
                del self._entries[stale]
        self._entries[key] = (value, time.monotonic())

    def clear(self) -> None:
        self._entries.clear()


# server key digest → its app: a revocation reaches other API processes within the ttl
ServerKeyCache = TtlCache[bytes, AppRef]

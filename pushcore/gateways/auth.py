"""JWT checks of the simulators: APNs provider tokens, FCM OAuth assertions, VAPID.

Real clients reuse one JWT for many requests (APNs: 20-60 minutes; VAPID: up to 24 hours),
so a token that passed once is remembered in a small bounded cache and only its time
claims are re-checked; a failing token is parsed again each time (failures are rare and
cheap enough).  Signatures are verified only when the caller gives public keys (APNs,
FCM) or when the token names its key (VAPID's ``k=``).

Pure: no I/O; ``now`` is passed in by the callers' clocks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

CACHE_SIZE = 4096


class JwtRejected(Exception):
    """The token is not acceptable; ``args[0]`` says why (for the error body)."""


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class JwtChecker:
    """Parses and checks one kind of JWT, caching the claims of tokens that passed."""

    def __init__(self, algorithm: str, keys: Mapping[str, Any] | None = None) -> None:
        self.algorithm = algorithm
        self.keys = keys  # kid -> public key; None: signatures are not verified
        self._passed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def parse(
        self, token: str, key_text: str = "", load_key: Callable[[str], Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a well-formed token signed with :attr:`algorithm`.  With
        ``load_key`` the signature is checked with ``load_key(key_text)`` (VAPID's ``k``);
        with :attr:`keys` it is checked with the key named by ``kid``."""
        cache_key = f"{token}\0{key_text}"
        cached = self._passed.get(cache_key)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise JwtRejected("not a JWT") from exc
        if header.get("alg") != self.algorithm:
            raise JwtRejected(f"alg must be {self.algorithm}")
        key = load_key(key_text) if load_key is not None else None
        if key is None and self.keys is not None:
            key = self.keys.get(str(header.get("kid")))
            if key is None:
                raise JwtRejected("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key if key is not None else "",
                algorithms=[self.algorithm],
                options={
                    "verify_signature": key is not None,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise JwtRejected("bad signature") from exc
        except jwt.PyJWTError as exc:
            raise JwtRejected("not a JWT") from exc
        if len(self._passed) >= CACHE_SIZE:
            self._passed.clear()
        self._passed[cache_key] = (header, claims)
        return header, claims


def number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwtRejected(f"claim {name!r} must be a number")
    return float(value)


def parse_vapid(authorization: str) -> tuple[str, str]:
    """(t, k) of ``vapid t=<jwt>, k=<key>`` (RFC 8292 section 3)."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise JwtRejected("authorization scheme must be vapid")
    found: dict[str, str] = {}
    for part in params.split(","):
        name, eq, value = part.strip().partition("=")
        if eq:
            found[name.strip().lower()] = value.strip().strip('"')
    if "t" not in found or "k" not in found:
        raise JwtRejected("vapid needs t= and k=")
    return found["t"], found["k"]


def vapid_public_key(k: str) -> ec.EllipticCurvePublicKey:
    try:
        raw = b64url_decode(k)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except (ValueError, binascii.Error) as exc:
        raise JwtRejected("k is not a P-256 public key") from exc

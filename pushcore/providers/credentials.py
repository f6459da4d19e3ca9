"""An app's provider credentials: their input form, their checks, and what may be shown.

The API decodes ``apns``/``fcm``/``webpush`` objects into these structs and calls
``validate()``, which loads every key with ``cryptography`` so that a malformed key is refused
at input (HTTP 422 naming the field) rather than at the first send.  The validated struct is
stored as JSON in the app's row and decoded again by the workers.  ``public()`` is the only
form any GET returns: private keys, certificates and service-account secrets are write-only.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from typing import Annotated, Any, Literal

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.providers.errors import CredentialsError

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
AppleId = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{10}$")]
Topic = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,254}$")]


def b64url_decode(value: str) -> bytes:
    """Decode unpadded (or padded) base64url; raise ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]*={0,2}", value):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def private_key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """An unencrypted PKCS#8 PEM, the form the credentials take (demo, tests, benchmarks)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class ApnsCredentials(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """APNs token auth (``team_id`` + ``key_id`` + ``private_key`` .p8 PEM) or certificate
    auth (``certificate`` PEM + ``private_key`` PEM of that certificate)."""

    topic: Topic
    private_key: NonEmpty
    environment: Literal["production", "sandbox"] = "production"
    team_id: AppleId | None = None
    key_id: AppleId | None = None
    certificate: NonEmpty | None = None

    @property
    def auth(self) -> Literal["token", "certificate"]:
        return "certificate" if self.certificate is not None else "token"

    def validate(self) -> None:
        if self.certificate is None:
            for name in ("team_id", "key_id"):
                if getattr(self, name) is None:
                    raise CredentialsError(name, "token auth needs team_id, key_id and private_key")
            self.signing_key()
        else:
            if self.team_id is not None or self.key_id is not None:
                raise CredentialsError(
                    "certificate", "give either certificate auth or token auth, not both"
                )
            cert = self.x509_certificate()
            key = _load_private_key(self.private_key, "private_key")
            if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
                raise CredentialsError("private_key", "does not belong to the certificate")

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        key = _load_private_key(self.private_key, "private_key")
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise CredentialsError("private_key", "APNs token auth needs a P-256 (.p8) key")
        return key

    def x509_certificate(self) -> x509.Certificate:
        assert self.certificate is not None
        try:
            return x509.load_pem_x509_certificate(self.certificate.encode())
        except ValueError as exc:
            raise CredentialsError("certificate", "not a PEM X.509 certificate") from exc

    def expires_at(self) -> dt.datetime | None:
        """When the credential stops working: the certificate's notAfter (keys never expire)."""
        if self.certificate is None:
            return None
        return self.x509_certificate().not_valid_after_utc

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "auth": self.auth,
            "topic": self.topic,
            "environment": self.environment,
        }
        if self.certificate is None:
            shown |= {"team_id": self.team_id, "key_id": self.key_id}
        else:
            expires = self.expires_at()
            shown["certificate_expires_at"] = expires.isoformat() if expires else None
        shown["fingerprint"] = _fingerprint(self.private_key.encode())
        return shown


class ServiceAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The fields pushcore uses from a Google service-account JSON (others are kept as given
    by :class:`FcmCredentials` but ignored)."""

    type: Literal["service_account"]
    project_id: NonEmpty
    private_key: NonEmpty
    client_email: NonEmpty
    token_uri: NonEmpty = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
    private_key_id: str | None = None


class FcmCredentials(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``service_account``: the JSON file Firebase gives, as an object or as a string."""

    service_account: dict[str, Any] | str
    project_id: NonEmpty | None = None

    def account(self) -> ServiceAccount:
        raw = self.service_account
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise CredentialsError("service_account", "not valid JSON") from exc
        try:
            return msgspec.convert(raw, ServiceAccount)
        except msgspec.ValidationError as exc:
            raise CredentialsError("service_account", f"not a service account: {exc}") from exc

    @property
    def effective_project_id(self) -> str:
        return self.project_id or self.account().project_id

    def validate(self) -> None:
        account = self.account()
        key = _load_private_key(account.private_key, "service_account.private_key")
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialsError("service_account.private_key", "expected an RSA key")
        if not _is_token_uri(account.token_uri):
            raise CredentialsError(
                "service_account.token_uri", "must be https (http only to loopback)"
            )

    def signing_key(self) -> rsa.RSAPrivateKey:
        key = _load_private_key(self.account().private_key, "service_account.private_key")
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def public(self) -> dict[str, Any]:
        account = self.account()
        return {
            "project_id": self.effective_project_id,
            "client_email": account.client_email,
            "private_key_id": account.private_key_id,
            "token_uri": account.token_uri,
        }


class WebPushCredentials(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """VAPID (RFC 8292): a P-256 private key (PEM, or the raw 32-byte scalar in base64url as
    most VAPID generators print it), the matching public key (optional; checked when given)
    and a ``mailto:`` or ``https:`` subject."""

    vapid_private_key: NonEmpty
    subject: Annotated[str, msgspec.Meta(pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$")]
    vapid_public_key: NonEmpty | None = None

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        raw = self.vapid_private_key.strip()
        if raw.startswith("-----BEGIN"):
            key = _load_private_key(raw, "vapid_private_key")
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise CredentialsError("vapid_private_key", "VAPID needs a P-256 key")
            return key
        try:
            scalar = b64url_decode(raw)
        except ValueError as exc:
            raise CredentialsError("vapid_private_key", "neither PEM nor base64url") from exc
        if len(scalar) != 32:
            raise CredentialsError("vapid_private_key", "a raw VAPID key is 32 bytes")
        try:
            return ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        except ValueError as exc:
            raise CredentialsError("vapid_private_key", "not a valid P-256 scalar") from exc

    def application_server_key(self) -> str:
        """The public key in uncompressed-point base64url form (the ``k=`` of the header)."""
        point = (
            self.signing_key()
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        return b64url_encode(point)

    def validate(self) -> None:
        derived = self.application_server_key()
        if self.vapid_public_key is not None:
            try:
                given = b64url_decode(self.vapid_public_key)
            except ValueError as exc:
                raise CredentialsError("vapid_public_key", "not base64url") from exc
            if b64url_encode(given) != derived:
                raise CredentialsError("vapid_public_key", "does not match vapid_private_key")

    def public(self) -> dict[str, Any]:
        return {"subject": self.subject, "vapid_public_key": self.application_server_key()}


def _is_token_uri(uri: str) -> bool:
    if uri.startswith("https://"):
        return True
    return re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/", uri) is not None


def _load_private_key(pem: str, field: str) -> Any:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(field, "not an unencrypted PEM private key") from exc

"""Keys and credentials for the provider tests, generated once per session."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.providers.base import Registration
from pushcore.providers.credentials import ApnsCredentials, FcmCredentials, WebPushCredentials

NOW = 1_750_000_000.0  # a fixed "now" for every pure call


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def apns_credentials(apns_key: ec.EllipticCurvePrivateKey) -> ApnsCredentials:
    return ApnsCredentials(
        topic="com.example.app",
        private_key=pem(apns_key),
        team_id="TEAM123456",
        key_id="KEY1234567",
    )


@pytest.fixture(scope="session")
def fcm_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def fcm_credentials(fcm_key: rsa.RSAPrivateKey) -> FcmCredentials:
    return FcmCredentials(
        service_account={
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "kid-1",
            "private_key": pem(fcm_key),
            "client_email": "pushcore@demo-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


@pytest.fixture(scope="session")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def webpush_credentials(vapid_key: ec.EllipticCurvePrivateKey) -> WebPushCredentials:
    return WebPushCredentials(vapid_private_key=pem(vapid_key), subject="mailto:ops@example.com")


@dataclass(frozen=True)
class Browser:
    """A browser's side of a push subscription: its ECDH key and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    registration: Registration


@pytest.fixture(scope="session")
def browser() -> Browser:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    registration = Registration(
        installation_id=7,
        token="https://fcm.googleapis.com/fcm/send/abc:def",
        p256dh=b64url(public),
        auth=b64url(auth),
    )
    return Browser(key, auth, registration)

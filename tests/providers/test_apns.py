"""APNs: classification table, payload limits, headers, provider-token JWT."""

from __future__ import annotations

from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.providers.apns import (
    PAYLOAD_LIMIT,
    PRODUCTION_ORIGIN,
    REASONS,
    SANDBOX_ORIGIN,
    VOIP_PAYLOAD_LIMIT,
    ApnsProvider,
    ApnsTokenSigner,
)
from pushcore.providers.base import Outcome, Registration
from pushcore.providers.credentials import ApnsCredentials
from pushcore.providers.errors import InvalidNotification, PayloadTooLarge
from pushcore.providers.notification import ApnsOverrides, Content
from pushcore.providers.registry import notification
from pushcore.transport.base import Request, Response
from tests.providers.conftest import NOW, pem

TOKEN = "a" * 64
REG = [Registration(installation_id=1, token=TOKEN)]


@pytest.fixture
def apns(apns_credentials: ApnsCredentials) -> ApnsProvider:
    return ApnsProvider(apns_credentials)


def error(status: int, reason: str | None, **headers: str) -> Response:
    body = msgspec.json.encode({"reason": reason}) if reason is not None else b""
    return Response(status, headers=headers, body=body)


def one(apns: ApnsProvider, notification: Content, now: float = NOW) -> Request:
    [request] = apns.build(apns.render(notification), REG, now)
    assert isinstance(request, Request)
    return request


# ---- classification -------------------------------------------------------------------

TABLE = [
    (410, "Unregistered", Outcome.INVALID, False),
    (410, "ExpiredToken", Outcome.INVALID, False),
    (400, "BadDeviceToken", Outcome.INVALID, False),
    (400, "DeviceTokenNotForTopic", Outcome.INVALID, False),
    (403, "ExpiredProviderToken", Outcome.RETRY, True),
    (403, "InvalidProviderToken", Outcome.RETRY, True),
    (403, "BadCertificate", Outcome.SENDER_ERROR, False),
    (403, "BadCertificateEnvironment", Outcome.SENDER_ERROR, False),
    (403, "BadEnvironmentKeyInToken", Outcome.SENDER_ERROR, False),
    (403, "Forbidden", Outcome.SENDER_ERROR, False),
    (403, "MissingProviderToken", Outcome.SENDER_ERROR, False),
    (400, "BadTopic", Outcome.SENDER_ERROR, False),
    (400, "TopicDisallowed", Outcome.SENDER_ERROR, False),
    (400, "MissingTopic", Outcome.SENDER_ERROR, False),
    (400, "IdleTimeout", Outcome.RETRY, False),
    (413, "PayloadTooLarge", Outcome.PERMANENT, False),
    (429, "TooManyRequests", Outcome.RETRY, False),
    (429, "TooManyProviderTokenUpdates", Outcome.RETRY, False),
    (500, "InternalServerError", Outcome.RETRY, False),
    (503, "ServiceUnavailable", Outcome.RETRY, False),
    (503, "Shutdown", Outcome.RETRY, False),
    # reasons not in the table fall back on the status
    (400, "BadCollapseId", Outcome.PERMANENT, False),
    (400, "PayloadEmpty", Outcome.PERMANENT, False),
    (403, "UnrelatedKeyIdInToken", Outcome.SENDER_ERROR, False),
    (404, "BadPath", Outcome.SENDER_ERROR, False),
    (405, "MethodNotAllowed", Outcome.SENDER_ERROR, False),
    (410, "SomethingNew", Outcome.INVALID, False),
    (500, None, Outcome.RETRY, False),
    (502, None, Outcome.RETRY, False),
    (418, "Teapot", Outcome.PERMANENT, False),
    (400, None, Outcome.PERMANENT, False),
]


@pytest.mark.parametrize(("status", "reason", "outcome", "refresh"), TABLE)
def test_classification(
    apns: ApnsProvider, status: int, reason: str | None, outcome: Outcome, refresh: bool
) -> None:
    result = apns.classify(error(status, reason))
    assert result.outcome is outcome
    assert result.refresh_auth is refresh
    assert result.reason == (reason or f"http-{status}")
    assert result.status == status


def test_every_table_row_is_tested() -> None:
    tested = {(status, reason) for status, reason, _, _ in TABLE}
    assert set(REASONS) <= tested


def test_delivered(apns: ApnsProvider) -> None:
    result = apns.classify(Response(200, headers={"apns-id": "x"}))
    assert result.outcome is Outcome.DELIVERED


def test_unregistered_timestamp_is_reported(apns: ApnsProvider) -> None:
    body = b'{"reason": "Unregistered", "timestamp": 1749999000000}'
    result = apns.classify(Response(410, body=body))
    assert result.invalid_since == 1_749_999_000.0


def test_retry_after_is_honoured_only_for_retries(apns: ApnsProvider) -> None:
    assert apns.classify(error(429, "TooManyRequests", **{"retry-after": "30"})).retry_after == 30
    assert apns.classify(error(410, "Unregistered", **{"retry-after": "30"})).retry_after is None


# ---- payload limits ---------------------------------------------------------------------


def sized(provider: ApnsProvider, size: int, **options: Any) -> Content:
    """A notification whose APNs payload is exactly ``size`` bytes."""
    base = len(provider.render(notification(body="x", **options)).payload) - 1
    return notification(body="x" * (size - base), **options)


@pytest.mark.parametrize(
    ("options", "limit"),
    [
        ({}, PAYLOAD_LIMIT),
        ({"apns": ApnsOverrides(push_type="voip")}, VOIP_PAYLOAD_LIMIT),
    ],
)
def test_payload_limit(apns: ApnsProvider, options: dict[str, Any], limit: int) -> None:
    assert len(apns.render(sized(apns, limit, **options)).payload) == limit
    with pytest.raises(PayloadTooLarge) as caught:
        apns.render(sized(apns, limit + 1, **options))
    assert (caught.value.size, caught.value.limit) == (limit + 1, limit)


# ---- rendering and headers ----------------------------------------------------------------


def test_alert_request(apns: ApnsProvider, apns_key: ec.EllipticCurvePrivateKey) -> None:
    n = notification(
        title="Hello",
        body="World",
        data={"order": "42"},
        badge=3,
        sound="default",
        category="ORDER",
        thread_id="t1",
        url="https://example.com/o/42",
        collapse_key="order-42",
        ttl_seconds=3600,
    )
    request = one(apns, n)
    assert request.url == f"{PRODUCTION_ORIGIN}/3/device/{TOKEN}"
    assert request.method == "POST"
    headers = dict(request.headers)
    assert headers["apns-topic"] == "com.example.app"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "order-42"
    assert headers["apns-expiration"] == str(int(NOW) + 3600)
    scheme, token = headers["authorization"].split(" ")
    assert scheme == "bearer"
    jwt.decode(token, apns_key.public_key(), algorithms=["ES256"])
    assert all(name == name.lower() for name, _ in request.headers)
    assert msgspec.json.decode(request.body) == {
        "aps": {
            "alert": {"title": "Hello", "body": "World"},
            "badge": 3,
            "sound": "default",
            "category": "ORDER",
            "thread-id": "t1",
        },
        "order": "42",
        "url": "https://example.com/o/42",
    }


def test_data_only_is_background_priority_5(apns: ApnsProvider) -> None:
    request = one(apns, notification(data={"sync": "1"}))
    headers = dict(request.headers)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert "apns-expiration" not in headers
    assert "apns-collapse-id" not in headers
    assert msgspec.json.decode(request.body) == {"aps": {"content-available": 1}, "sync": "1"}


def test_normal_priority_and_ttl_zero(apns: ApnsProvider) -> None:
    headers = dict(one(apns, notification(body="b", priority="normal", ttl_seconds=0)).headers)
    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "0"


def test_overrides(apns: ApnsProvider) -> None:
    n = notification(
        title="Call",
        image="https://example.com/i.png",
        ttl_seconds=60,
        apns=ApnsOverrides(
            push_type="voip",
            priority=10,
            expiration=1_800_000_000,
            collapse_id="c1",
            aps={"alert": {"subtitle": "s"}, "mutable-content": None},
            payload={"call_id": 9},
        ),
    )
    request = one(apns, n)
    headers = dict(request.headers)
    assert headers["apns-topic"] == "com.example.app.voip"
    assert headers["apns-push-type"] == "voip"
    assert headers["apns-expiration"] == "1800000000"
    assert headers["apns-collapse-id"] == "c1"
    assert msgspec.json.decode(request.body) == {
        "aps": {"alert": {"title": "Call", "subtitle": "s"}},
        "image": "https://example.com/i.png",
        "call_id": 9,
    }


def test_reserved_data_key(apns: ApnsProvider) -> None:
    with pytest.raises(InvalidNotification):
        apns.render(notification(data={"aps": "x"}))


def test_one_request_per_registration_and_token_is_one_path_segment(apns: ApnsProvider) -> None:
    regs = [Registration(installation_id=i, token=t) for i, t in enumerate([TOKEN, "../x?y"])]
    requests = apns.build(apns.render(notification(body="b")), regs, NOW)
    assert [r.url for r in requests if isinstance(r, Request)] == [
        f"{PRODUCTION_ORIGIN}/3/device/{TOKEN}",
        f"{PRODUCTION_ORIGIN}/3/device/..%2Fx%3Fy",
    ]


def test_origins(apns_credentials: ApnsCredentials) -> None:
    sandbox = msgspec.structs.replace(apns_credentials, environment="sandbox")
    assert ApnsProvider(sandbox).origin == SANDBOX_ORIGIN
    local = ApnsProvider(apns_credentials, origin="https://127.0.0.1:8443/")
    assert one(local, notification(body="b")).url == f"https://127.0.0.1:8443/3/device/{TOKEN}"


def test_certificate_auth_sends_no_authorization(apns_credentials: ApnsCredentials) -> None:
    cert = msgspec.structs.replace(apns_credentials, team_id=None, key_id=None, certificate="PEM")
    provider = ApnsProvider(cert)
    assert provider.signer is None
    assert "authorization" not in dict(one(provider, notification(body="b")).headers)


# ---- provider token ----------------------------------------------------------------------


def test_signer_mints_verifiable_es256_jwt(apns_key: ec.EllipticCurvePrivateKey) -> None:
    signer = ApnsTokenSigner("TEAM123456", "KEY1234567", apns_key)
    token = signer.token(NOW)
    assert jwt.get_unverified_header(token)["kid"] == "KEY1234567"
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(token, apns_key.public_key(), algorithms=["ES256"])
    assert claims == {"iss": "TEAM123456", "iat": int(NOW)}


def test_signer_reuses_token_until_max_age(apns_key: ec.EllipticCurvePrivateKey) -> None:
    signer = ApnsTokenSigner("TEAM123456", "KEY1234567", apns_key, max_age=2400)
    first = signer.token(NOW)
    assert signer.token(NOW + 2399) == first
    second = signer.token(NOW + 2400)
    assert second != first
    assert jwt.decode(second, apns_key.public_key(), algorithms=["ES256"])["iat"] == NOW + 2400
    assert signer.token(NOW - 10) != second  # clock stepped back: iat must not be ahead


def test_signer_invalidate_has_grace(apns_key: ec.EllipticCurvePrivateKey) -> None:
    signer = ApnsTokenSigner("TEAM123456", "KEY1234567", apns_key)
    first = signer.token(NOW)
    signer.invalidate(NOW + 5)  # a burst of 403s about the token just minted
    assert signer.token(NOW + 5) == first
    signer.invalidate(NOW + 120)
    assert signer.token(NOW + 120) != first


def test_provider_refreshes_after_expired_provider_token(apns: ApnsProvider) -> None:
    first = dict(one(apns, notification(body="b"), NOW).headers)["authorization"]
    result = apns.classify(error(403, "ExpiredProviderToken"))
    assert result.refresh_auth
    apns.invalidate_auth(NOW + 600)
    second = dict(one(apns, notification(body="b"), NOW + 600).headers)["authorization"]
    assert second != first


@pytest.mark.parametrize("max_age", [60.0, 1199.0, 3600.0])
def test_signer_refuses_age_outside_apple_window(
    apns_key: ec.EllipticCurvePrivateKey, max_age: float
) -> None:
    with pytest.raises(ValueError, match="20-60"):
        ApnsTokenSigner("TEAM123456", "KEY1234567", apns_key, max_age=max_age)


def test_signer_from_credentials_uses_the_p8_key(apns_credentials: ApnsCredentials) -> None:
    signer = ApnsTokenSigner.from_credentials(apns_credentials)
    key = apns_credentials.signing_key()
    assert pem(key) == apns_credentials.private_key
    jwt.decode(signer.token(NOW), key.public_key(), algorithms=["ES256"])

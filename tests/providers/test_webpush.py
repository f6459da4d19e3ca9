"""Web Push: classification, encryption round trip, VAPID, limits, headers, endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import http_ece
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.config import load_settings
from pushcore.providers.base import Outcome, Registration, Result
from pushcore.providers.credentials import WebPushCredentials
from pushcore.providers.errors import PayloadTooLarge
from pushcore.providers.notification import Content, WebPushOverrides
from pushcore.providers.registry import notification
from pushcore.providers.webpush import DEFAULT_TTL, STATUSES, WebPushProvider
from pushcore.providers.webpush_crypto import MAX_PLAINTEXT, VapidSigner
from pushcore.transport.base import Request, Response
from tests.providers.conftest import NOW, Browser


@pytest.fixture
def webpush(webpush_credentials: WebPushCredentials) -> WebPushProvider:
    return WebPushProvider(webpush_credentials)


def one(provider: WebPushProvider, notification: Content, reg: Registration) -> Request:
    [request] = provider.build(provider.render(notification), [reg], NOW)
    assert isinstance(request, Request)
    return request


def decrypt(browser: Browser, body: bytes) -> bytes:
    """What the browser does with the body (http_ece, an independent implementation)."""
    plaintext: bytes = http_ece.decrypt(
        body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
    )
    return plaintext


# ---- classification ----------------------------------------------------------------------

TABLE = [
    (201, Outcome.DELIVERED),
    (200, Outcome.DELIVERED),
    (202, Outcome.DELIVERED),
    (404, Outcome.INVALID),
    (410, Outcome.INVALID),
    (413, Outcome.PERMANENT),
    (429, Outcome.RETRY),
    (500, Outcome.RETRY),
    (502, Outcome.RETRY),
    (503, Outcome.RETRY),
    (504, Outcome.RETRY),
    (400, Outcome.SENDER_ERROR),
    (401, Outcome.SENDER_ERROR),
    (403, Outcome.SENDER_ERROR),
    (409, Outcome.PERMANENT),
]


@pytest.mark.parametrize(("status", "outcome"), TABLE)
def test_classification(webpush: WebPushProvider, status: int, outcome: Outcome) -> None:
    result = webpush.classify(Response(status, body=b'{"errno": 102}'))
    assert result.outcome is outcome
    assert result.status == status
    assert not result.refresh_auth


def test_every_table_row_is_tested() -> None:
    assert set(STATUSES) <= {status for status, _ in TABLE}


@pytest.mark.parametrize(
    ("value", "expected"), [("5", 5.0), ("Sun, 15 Jun 2025 15:07:10 GMT", 30.0)]
)
def test_retry_after(webpush: WebPushProvider, value: str, expected: float) -> None:
    response = Response(429, headers={"retry-after": value})
    assert webpush.classify(response, NOW).retry_after == expected
    assert webpush.classify(Response(410, headers={"retry-after": value})).retry_after is None


# ---- encryption ----------------------------------------------------------------------------


def test_round_trip(webpush: WebPushProvider, browser: Browser) -> None:
    n = notification(title="Hi", body="There", data={"k": "v"}, url="https://example.com/x")
    request = one(webpush, n, browser.registration)
    assert msgspec.json.decode(decrypt(browser, request.body)) == {
        "title": "Hi",
        "body": "There",
        "data": {"k": "v"},
        "url": "https://example.com/x",
    }


def test_every_request_has_fresh_salt_and_key(webpush: WebPushProvider, browser: Browser) -> None:
    rendered = webpush.render(notification(body="same"))
    first, second = webpush.build(rendered, [browser.registration] * 2, NOW)
    assert isinstance(first, Request)
    assert isinstance(second, Request)
    assert first.body[:16] != second.body[:16]  # salt
    assert first.body[21:86] != second.body[21:86]  # ephemeral public key
    assert decrypt(browser, first.body) == decrypt(browser, second.body)


def test_injected_randomness_is_deterministic(
    webpush_credentials: WebPushCredentials, browser: Browser
) -> None:
    sender = ec.generate_private_key(ec.SECP256R1())
    salts: Iterator[bytes] = iter([b"s" * 16, b"s" * 16])
    provider = WebPushProvider(
        webpush_credentials, salt_source=lambda: next(salts), key_source=lambda: sender
    )
    rendered = provider.render(notification(body="b"))
    first, second = provider.build(rendered, [browser.registration] * 2, NOW)
    assert isinstance(first, Request)
    assert isinstance(second, Request)
    assert first.body == second.body
    assert first.body[:16] == b"s" * 16
    assert first.body[16:21] == b"\x00\x00\x10\x00\x41"  # rs 4096, key id length 65


def test_plaintext_limit(webpush: WebPushProvider, browser: Browser) -> None:
    def payload(size: int) -> Content:
        return notification(webpush=WebPushOverrides(payload={"p": "x" * (size - 8)}))

    request = one(webpush, payload(MAX_PLAINTEXT), browser.registration)
    assert MAX_PLAINTEXT == 3993
    assert len(decrypt(browser, request.body)) == MAX_PLAINTEXT
    assert len(request.body) == 4096  # what every push service must accept
    with pytest.raises(PayloadTooLarge) as caught:
        webpush.render(payload(MAX_PLAINTEXT + 1))
    assert caught.value.size == MAX_PLAINTEXT + 1


# ---- headers -------------------------------------------------------------------------------


def test_headers(webpush: WebPushProvider, browser: Browser) -> None:
    n = notification(body="b", ttl_seconds=90, priority="normal", collapse_key="news")
    request = one(webpush, n, browser.registration)
    assert request.url == browser.registration.token
    headers = dict(request.headers)
    assert headers["ttl"] == "90"
    assert headers["urgency"] == "normal"
    assert headers["topic"] == "news"
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["authorization"].startswith("vapid t=")


def test_default_ttl_and_overrides(webpush: WebPushProvider, browser: Browser) -> None:
    plain = dict(one(webpush, notification(body="b"), browser.registration).headers)
    assert plain["ttl"] == str(DEFAULT_TTL)
    assert plain["urgency"] == "high"
    assert "topic" not in plain
    override = WebPushOverrides(ttl=0, urgency="very-low", topic="t-1")
    n = notification(body="b", ttl_seconds=99, collapse_key="c", webpush=override)
    headers = dict(one(webpush, n, browser.registration).headers)
    assert (headers["ttl"], headers["urgency"], headers["topic"]) == ("0", "very-low", "t-1")


def test_collapse_key_that_is_no_topic_is_hashed(webpush: WebPushProvider) -> None:
    topic = dict(webpush.render(notification(body="b", collapse_key="a.b:c")).headers)["topic"]
    again = dict(webpush.render(notification(body="b", collapse_key="a.b:c")).headers)["topic"]
    assert topic == again
    assert len(topic) == 32
    assert topic.replace("-", "").replace("_", "").isalnum()


# ---- VAPID -------------------------------------------------------------------------------


def test_vapid_jwt_verifies_with_audience_the_endpoint_origin(
    webpush: WebPushProvider, browser: Browser, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    auth = dict(one(webpush, notification(body="b"), browser.registration).headers)
    token_part, key_part = auth["authorization"].removeprefix("vapid ").split(", ")
    token = token_part.removeprefix("t=")
    claims = jwt.decode(
        token,
        vapid_key.public_key(),
        algorithms=["ES256"],
        audience="https://fcm.googleapis.com",
        options={"verify_exp": False},
    )
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int(NOW + 12 * 3600),
        "sub": "mailto:ops@example.com",
    }
    assert key_part == f"k={webpush.credentials.application_server_key()}"


def test_vapid_cached_per_origin_and_refreshed(webpush_credentials: WebPushCredentials) -> None:
    signer = VapidSigner(webpush_credentials, lifetime=3600, margin=600)
    first = signer.authorization("https://a.example", NOW)
    assert signer.authorization("https://a.example", NOW + 2999) == first
    assert signer.authorization("https://b.example", NOW) != first
    assert signer.authorization("https://a.example", NOW + 3000) != first


def test_vapid_cache_is_bounded(webpush_credentials: WebPushCredentials) -> None:
    signer = VapidSigner(webpush_credentials, max_entries=2)
    a = signer.authorization("https://a.example", NOW)
    signer.authorization("https://b.example", NOW)
    signer.authorization("https://c.example", NOW)  # evicts a, the oldest
    assert signer.authorization("https://c.example", NOW + 1) is not None
    assert signer.authorization("https://a.example", NOW + 1) != a


@pytest.mark.parametrize(("lifetime", "margin"), [(24 * 3600 + 1, 60.0), (600, 600)])
def test_vapid_lifetime_bounds(
    webpush_credentials: WebPushCredentials, lifetime: float, margin: float
) -> None:
    with pytest.raises(ValueError, match="24 hours"):
        VapidSigner(webpush_credentials, lifetime=lifetime, margin=margin)


# ---- endpoints and subscription keys --------------------------------------------------------


def test_unusable_registrations_are_classified_without_sending(
    webpush: WebPushProvider, browser: Browser
) -> None:
    good = browser.registration
    bad_endpoint = msgspec.structs.replace(good, token="http://internal.example/p")
    no_keys = msgspec.structs.replace(good, p256dh=None, auth=None)
    short_auth = msgspec.structs.replace(good, auth="AAAA")
    off_curve = msgspec.structs.replace(good, p256dh="BA" + "A" * 85)
    not_b64 = msgspec.structs.replace(good, p256dh="!!!")
    prepared = webpush.build(
        webpush.render(notification(body="b")),
        [bad_endpoint, no_keys, good, short_auth, off_curve, not_b64],
        NOW,
    )
    assert isinstance(prepared[2], Request)
    assert prepared[2].peer_allowed == webpush.policy.address_allowed
    reasons = [(p.reason, p.outcome) for p in prepared if isinstance(p, Result)]
    # a refused endpoint is kept (the policy may change); unusable keys are dead for good
    assert (
        reasons
        == [("endpoint-refused", Outcome.PERMANENT)]
        + [("bad-subscription-keys", Outcome.INVALID)] * 4
    )


def test_the_policy_comes_from_the_settings(webpush_credentials: WebPushCredentials) -> None:
    settings = load_settings(
        environ={
            "PUSHCORE_WEBPUSH_ALLOWED_HOSTS": "push.example.net",
            "PUSHCORE_WEBPUSH_ALLOW_LOOPBACK": "yes",
        }
    )
    provider = WebPushProvider.configured(webpush_credentials, settings)
    assert provider.policy == settings.endpoint_policy()
    assert provider.policy.origin("http://127.0.0.2:9/p") == "http://127.0.0.2:9"
    assert provider.policy.origin("https://fcm.googleapis.com/x") is None


def test_random_sources_default_to_os(webpush: WebPushProvider) -> None:
    assert len(webpush.salt_source()) == 16
    assert webpush.key_source().curve.name == "secp256r1"

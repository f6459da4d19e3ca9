"""FCM HTTP v1: classification table, message rendering, limits, OAuth helpers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pushcore.providers.base import Outcome, Registration
from pushcore.providers.credentials import FcmCredentials
from pushcore.providers.errors import AuthError, InvalidNotification, PayloadTooLarge
from pushcore.providers.fcm import ERROR_CODES, PAYLOAD_LIMIT, FcmProvider
from pushcore.providers.fcm_auth import (
    GRANT_TYPE,
    SCOPE,
    AccessToken,
    AccessTokenCache,
    assertion,
    parse_token_response,
    token_request,
)
from pushcore.providers.notification import Content, FcmOverrides
from pushcore.providers.registry import notification
from pushcore.transport.base import Failure, Request, Response
from tests.providers.conftest import NOW

URL = "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
TOKEN_ANSWER = b'{"access_token": "ya29.secret", "expires_in": 3599, "token_type": "Bearer"}'


@pytest.fixture
def fcm(fcm_credentials: FcmCredentials) -> FcmProvider:
    provider = FcmProvider(fcm_credentials)
    provider.cache.store(AccessToken("ya29.secret", NOW + 3600), NOW)
    return provider


def fcm_error(
    status: int, rpc: str | None, code: str | None, message: str = "", field: str | None = None
) -> Response:
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    if field is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": "Invalid registration"}],
            }
        )
    error = {"code": status, "message": message, "status": rpc, "details": details}
    return Response(status, body=msgspec.json.encode({"error": error}))


def one(fcm: FcmProvider, notification: Content, token: str = "tok-1") -> Request:
    [request] = fcm.build(
        fcm.render(notification), [Registration(installation_id=1, token=token)], NOW
    )
    assert isinstance(request, Request)
    return request


# ---- classification ----------------------------------------------------------------------

TABLE = [
    # (HTTP status, error.status, FcmError.errorCode, message, fieldViolation) -> result
    (404, "NOT_FOUND", "UNREGISTERED", "", None, Outcome.INVALID, False),
    (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "", None, Outcome.INVALID, False),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "", "message.token", Outcome.INVALID, False),
    (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        None,
        Outcome.INVALID,
        False,
    ),
    (
        400,
        "INVALID_ARGUMENT",
        None,
        "Invalid value at 'message.token'",
        None,
        Outcome.INVALID,
        False,
    ),
    (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Message is too big",
        "message.data",
        Outcome.PERMANENT,
        False,
    ),
    (400, "INVALID_ARGUMENT", None, "Invalid JSON payload", None, Outcome.PERMANENT, False),
    (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "", None, Outcome.SENDER_ERROR, False),
    (401, "UNAUTHENTICATED", "APNS_AUTH_ERROR", "", None, Outcome.SENDER_ERROR, False),
    (401, "UNAUTHENTICATED", None, "access token expired", None, Outcome.RETRY, True),
    (403, "PERMISSION_DENIED", None, "", None, Outcome.SENDER_ERROR, False),
    (404, "NOT_FOUND", None, "project not found", None, Outcome.SENDER_ERROR, False),
    (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "", None, Outcome.RETRY, False),
    (429, "RESOURCE_EXHAUSTED", None, "", None, Outcome.RETRY, False),
    (500, "INTERNAL", "INTERNAL", "", None, Outcome.RETRY, False),
    (503, "UNAVAILABLE", "UNAVAILABLE", "", None, Outcome.RETRY, False),
    (504, "DEADLINE_EXCEEDED", None, "", None, Outcome.RETRY, False),
    (500, "UNKNOWN", "UNSPECIFIED_ERROR", "", None, Outcome.RETRY, False),
    (400, "FAILED_PRECONDITION", None, "", None, Outcome.PERMANENT, False),
    # no usable body: the HTTP status decides
    (401, None, None, "", None, Outcome.RETRY, True),
    (403, None, None, "", None, Outcome.SENDER_ERROR, False),
    (404, None, None, "", None, Outcome.SENDER_ERROR, False),
    (502, None, None, "", None, Outcome.RETRY, False),
    (409, None, None, "", None, Outcome.PERMANENT, False),
]


@pytest.mark.parametrize(("status", "rpc", "code", "message", "field", "outcome", "refresh"), TABLE)
def test_classification(
    fcm: FcmProvider,
    status: int,
    rpc: str | None,
    code: str | None,
    message: str,
    field: str | None,
    outcome: Outcome,
    refresh: bool,
) -> None:
    result = fcm.classify(fcm_error(status, rpc, code, message, field))
    assert result.outcome is outcome
    assert result.refresh_auth is refresh
    assert result.reason == (code or rpc or f"http-{status}")


def test_every_error_code_is_tested() -> None:
    assert set(ERROR_CODES) <= {row[2] for row in TABLE}


def test_delivered_and_junk_bodies(fcm: FcmProvider) -> None:
    assert fcm.classify(Response(200, body=b'{"name": "projects/p/messages/1"}')).outcome is (
        Outcome.DELIVERED
    )
    assert fcm.classify(Response(503, body=b"<html>")).outcome is Outcome.RETRY
    assert fcm.classify(Response(400, body=b'{"error": "x"}')).outcome is Outcome.PERMANENT


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("17", 17.0), ("Sun, 15 Jun 2025 15:08:40 GMT", 120.0), (None, None)],
)
def test_retry_after(fcm: FcmProvider, retry_after: str | None, expected: float | None) -> None:
    response = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
    if retry_after is not None:
        response = Response(429, headers={"retry-after": retry_after}, body=response.body)
    assert fcm.classify(response, NOW).retry_after == expected


# ---- rendering ---------------------------------------------------------------------------


def test_full_message(fcm: FcmProvider) -> None:
    n = notification(
        title="Hello",
        body="World",
        data={"order": "42"},
        badge=2,
        sound="default",
        image="https://example.com/i.png",
        url="https://example.com/o/42",
        category="ORDER",
        thread_id="t1",
        collapse_key="order-42",
        ttl_seconds=600,
    )
    request = one(fcm, n, token="tok-1")
    assert request.url == URL
    assert dict(request.headers)["authorization"] == "Bearer ya29.secret"
    assert msgspec.json.decode(request.body) == {
        "message": {
            "token": "tok-1",
            "notification": {
                "title": "Hello",
                "body": "World",
                "image": "https://example.com/i.png",
            },
            "data": {"order": "42"},
            "android": {
                "priority": "HIGH",
                "ttl": "600s",
                "collapse_key": "order-42",
                "notification": {
                    "sound": "default",
                    "click_action": "ORDER",
                    "notification_count": 2,
                },
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-collapse-id": "order-42",
                    "apns-expiration": str(int(NOW) + 600),
                },
                "payload": {
                    "aps": {
                        "badge": 2,
                        "sound": "default",
                        "category": "ORDER",
                        "thread-id": "t1",
                        "mutable-content": 1,
                    }
                },
            },
            "webpush": {
                "headers": {"TTL": "600", "Urgency": "high"},
                "fcm_options": {"link": "https://example.com/o/42"},
            },
        }
    }


def test_data_only_normal_priority(fcm: FcmProvider) -> None:
    body = msgspec.json.decode(one(fcm, notification(data={"k": "v"}, priority="normal")).body)
    assert body == {
        "message": {
            "token": "tok-1",
            "data": {"k": "v"},
            "android": {"priority": "NORMAL"},
            "apns": {
                "headers": {"apns-priority": "5"},
                "payload": {"aps": {"content-available": 1}},
            },
            "webpush": {"headers": {"Urgency": "normal"}},
        }
    }


def test_overrides_merge_and_remove(fcm: FcmProvider) -> None:
    n = notification(
        title="t",
        ttl_seconds=60,
        fcm=FcmOverrides(
            android={"priority": "NORMAL", "notification": {"channel_id": "news"}},
            apns={"headers": {"apns-expiration": "0"}},
            webpush={"headers": None},
        ),
    )
    message = msgspec.json.decode(one(fcm, n).body)["message"]
    assert message["android"] == {
        "priority": "NORMAL",
        "ttl": "60s",
        "notification": {"channel_id": "news"},
    }
    assert message["apns"]["headers"]["apns-expiration"] == "0"
    assert "webpush" not in message


def test_token_is_json_escaped(fcm: FcmProvider) -> None:
    body = msgspec.json.decode(one(fcm, notification(body="b"), token='x"},"evil":{"').body)
    assert body["message"]["token"] == 'x"},"evil":{"'
    assert "evil" not in body["message"]


@pytest.mark.parametrize("key", ["from", "notification", "message_type", "google.x", "gcm.n"])
def test_reserved_data_keys(fcm: FcmProvider, key: str) -> None:
    with pytest.raises(InvalidNotification):
        fcm.render(notification(data={key: "v"}))


def test_payload_limit(fcm: FcmProvider) -> None:
    base = len(fcm.render(notification(body="x")).encoded) - 1
    at_limit = notification(body="x" * (PAYLOAD_LIMIT - base))
    assert len(fcm.render(at_limit).encoded) == PAYLOAD_LIMIT
    with pytest.raises(PayloadTooLarge) as caught:
        fcm.render(notification(body="x" * (PAYLOAD_LIMIT - base + 1)))
    assert caught.value.size == PAYLOAD_LIMIT + 1


def test_base_url_override(fcm_credentials: FcmCredentials) -> None:
    provider = FcmProvider(fcm_credentials, base_url="http://127.0.0.1:9001/")
    assert provider.url == "http://127.0.0.1:9001/v1/projects/demo-project/messages:send"


# ---- OAuth -------------------------------------------------------------------------------


def test_assertion_verifies_with_service_account_key(
    fcm_credentials: FcmCredentials, fcm_key: rsa.RSAPrivateKey
) -> None:
    token = assertion(fcm_credentials, NOW)
    assert jwt.get_unverified_header(token)["kid"] == "kid-1"
    claims = jwt.decode(
        token,
        fcm_key.public_key(),
        algorithms=["RS256"],
        audience="https://oauth2.googleapis.com/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "pushcore@demo-project.iam.gserviceaccount.com",
        "scope": SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }


def test_token_request_is_a_form_post(fcm_credentials: FcmCredentials) -> None:
    request = token_request(fcm_credentials, NOW)
    assert request.url == "https://oauth2.googleapis.com/token"
    assert dict(request.headers)["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body.decode())
    assert form["grant_type"] == [GRANT_TYPE]
    assert jwt.get_unverified_header(form["assertion"][0])["alg"] == "RS256"


def test_parse_token_response() -> None:
    token = parse_token_response(Response(200, body=TOKEN_ANSWER), NOW)
    assert token == AccessToken("ya29.secret", NOW + 3599)
    assert "secret" not in repr(token)


@pytest.mark.parametrize(
    ("response", "retryable"),
    [
        (Response(400, body=b'{"error": "invalid_grant", "error_description": "bad"}'), False),
        (Response(401, body=b'{"error": "invalid_client"}'), False),
        (Response(429), True),
        (Response(503), True),
        (Response(200, body=b'{"access_token": ""}'), True),
        (Response(0, failure=Failure.CONNECT), True),
    ],
)
def test_parse_token_response_errors(response: Response, retryable: bool) -> None:
    with pytest.raises(AuthError) as caught:
        parse_token_response(response, NOW)
    assert caught.value.retryable is retryable


def test_cache_refreshes_five_minutes_before_expiry() -> None:
    cache = AccessTokenCache()
    assert cache.refresh_due(NOW)
    assert cache.current(NOW) is None
    cache.store(AccessToken("t", NOW + 3600), NOW)
    assert not cache.refresh_due(NOW + 3600 - 301)
    assert cache.refresh_due(NOW + 3600 - 300)
    assert cache.current(NOW + 3599) == "t"
    assert cache.current(NOW + 3600) is None


def test_provider_auth_flow(fcm_credentials: FcmCredentials) -> None:
    fcm = FcmProvider(fcm_credentials)
    rendered = fcm.render(notification(body="b"))
    registrations = [Registration(installation_id=1, token="t")]
    with pytest.raises(AuthError):
        fcm.build(rendered, registrations, NOW)
    request = fcm.auth_request(NOW)
    assert request is not None
    fcm.accept_auth(Response(200, body=TOKEN_ANSWER), NOW)
    assert fcm.auth_request(NOW + 60) is None
    assert len(fcm.build(rendered, registrations, NOW)) == 1

    # a 401 asks for a new token; late 401s about the old one do not drop the new one
    assert fcm.classify(Response(401)).refresh_auth
    fcm.invalidate_auth(NOW + 120)
    assert fcm.auth_request(NOW + 120) is not None
    fcm.accept_auth(Response(200, body=TOKEN_ANSWER), NOW + 121)
    fcm.invalidate_auth(NOW + 122)
    assert fcm.auth_request(NOW + 122) is None


def test_failed_refresh_keeps_a_still_valid_token(fcm: FcmProvider) -> None:
    soon = NOW + 3600 - 100  # refresh due, token still valid
    assert fcm.auth_request(soon) is not None
    fcm.accept_auth(Response(503), soon)  # swallowed: the old token still works
    assert fcm.build(
        fcm.render(notification(body="b")), [Registration(installation_id=1, token="t")], soon
    )
    with pytest.raises(AuthError):  # refused credentials always surface
        fcm.accept_auth(Response(400, body=b'{"error": "invalid_grant"}'), soon)
    with pytest.raises(AuthError):  # and so does any failure once the token has expired
        fcm.accept_auth(Response(503), NOW + 3600)

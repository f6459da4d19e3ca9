"""Shared provider pieces: Retry-After, transport failures, the notification model."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pushcore.providers import registry
from pushcore.providers.apns import ApnsProvider
from pushcore.providers.base import (
    MAX_RETRY_AFTER,
    Outcome,
    Provider,
    json_object,
    parse_retry_after,
)
from pushcore.providers.credentials import ApnsCredentials, FcmCredentials, WebPushCredentials
from pushcore.providers.fcm import FcmProvider
from pushcore.providers.notification import deep_merge
from pushcore.providers.registry import Notification
from pushcore.providers.webpush import WebPushProvider
from pushcore.transport.base import Failure, Response

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("99999999", MAX_RETRY_AFTER),
        ("Sun, 15 Jun 2025 15:07:40 GMT", 60.0),  # HTTP-date one minute after NOW
        ("Sun, 15 Jun 2025 15:05:40 GMT", 0.0),  # in the past
        ("Sun, 15 Jun 2025 15:07:40 -0000", 60.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_relative_to_now(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_uses_date_header_without_now() -> None:
    got = parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", date="Wed, 21 Oct 2015 07:28:00 GMT")
    assert got == 30.0


def test_parse_retry_after_http_date_without_reference_is_unknown() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", date="garbage") is None


@pytest.fixture
def providers(
    apns_credentials: ApnsCredentials,
    fcm_credentials: FcmCredentials,
    webpush_credentials: WebPushCredentials,
) -> list[Provider[Any]]:
    return [
        ApnsProvider(apns_credentials),
        FcmProvider(fcm_credentials),
        WebPushProvider(webpush_credentials),
    ]


@pytest.mark.parametrize("failure", [f for f in Failure if f is not Failure.BLOCKED])
def test_transport_failures_are_retried_by_every_provider(
    providers: list[Provider[Any]], failure: Failure
) -> None:
    # processed-maybe failures too: a duplicate push is better than a lost one
    for provider in providers:
        result = provider.classify(Response(0, failure=failure, detail="x"))
        assert result.outcome is Outcome.RETRY
        assert result.reason == f"transport-{failure.value}"
        assert not result.refresh_auth


def test_a_blocked_peer_fails_the_message_and_keeps_the_registration(
    providers: list[Provider[Any]],
) -> None:
    """The endpoint policy refused the connected address: sending again would not help,
    and the registration is not reported dead (the policy may be changed)."""
    for provider in providers:
        result = provider.classify(Response(0, failure=Failure.BLOCKED, detail="x"))
        assert (result.outcome, result.reason) == (Outcome.PERMANENT, "endpoint-refused")


def test_registry_maps_platforms_to_classes() -> None:
    made_by = {spec.name: getattr(spec.provider, "__self__", None) for spec in registry.PLATFORMS}
    assert made_by == {"ios": ApnsProvider, "android": FcmProvider, "web": WebPushProvider}


def test_json_object_tolerates_junk() -> None:
    assert json_object(b"") == {}
    assert json_object(b"<html>") == {}
    assert json_object(b"[1]") == {}
    assert json_object(b'{"a": 1}') == {"a": 1}


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": 3, "e": 4}
    merged = deep_merge(base, {"a": {"b": 9}, "d": {"x": 1}, "e": None, "f": 5})
    assert merged == {"a": {"b": 9, "c": 2}, "d": {"x": 1}, "f": 5}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3, "e": 4}


def test_notification_decodes_and_is_frozen() -> None:
    raw = b'{"title": "Hi", "data": {"k": "v"}, "apns": {"push_type": "voip"}}'
    n = msgspec.json.decode(raw, type=Notification)
    assert n.title == "Hi"
    apns = registry.overrides_of(n, "ios")
    assert apns is not None
    assert apns.push_type == "voip"
    with pytest.raises(AttributeError):
        n.title = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"titel": "typo"}',
        b'{"data": {"k": 1}}',
        b'{"priority": "urgent"}',
        b'{"ttl_seconds": -1}',
        b'{"ttl_seconds": 2419201}',
        b'{"collapse_key": "has space"}',
        b'{"collapse_key": "' + b"k" * 65 + b'"}',
        b'{"webpush": {"topic": "not/base64url"}}',
        b'{"webpush": {"urgency": "urgent"}}',
        b'{"apns": {"push_type": "alert", "bogus": 1}}',
    ],
)
def test_notification_refuses_invalid_input(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=Notification)

"""The delivery layer end to end: real providers, real :class:`CurlTransport`, real simulators.

No mocks: :func:`~pushcore.fanout.delivery.deliver` builds the requests, libcurl sends
them over TLS + HTTP/2 to the in-process ``h2`` simulators (which can inject GOAWAY,
RST_STREAM and throttling), and the outcomes are checked against the fates the token
generators encode and against what the simulators counted per token.

Fixtures here are prefixed ``curl_`` so that they never clash with the aioapns tests'
``conftest.py`` in this folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.fanout.delivery import deliver
from pushcore.gateways import fates
from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.core import Counters, Faults, TransportFaults
from pushcore.gateways.fates import Fate
from pushcore.gateways.fcm import FcmOptions
from pushcore.gateways.simulators import Simulators
from pushcore.gateways.webpush import WebPushOptions
from pushcore.providers.apns import ApnsProvider
from pushcore.providers.base import Outcome, Registration, Result
from pushcore.providers.credentials import ApnsCredentials, FcmCredentials, WebPushCredentials
from pushcore.providers.errors import AuthError
from pushcore.providers.fcm import FcmProvider
from pushcore.providers.fcm_auth import AccessToken
from pushcore.providers.registry import notification
from pushcore.providers.webpush import WebPushProvider
from pushcore.transport.curl import CurlTransport

TOPIC = "com.example.curl"
TEAM_ID = "TEAMCURL01"
KEY_ID = "KEYCURL001"
SA_KEY_ID = "curl-sa-key"
PROJECT = "curl-project"
TIMEOUT = 10.0
NOTE = notification(title="Hello", body="from the curl delivery tests", data={"k": "v"})


# -- keys and credentials ------------------------------------------------------------------


def _pem_private(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True, slots=True)
class CurlKeys:
    apns: ec.EllipticCurvePrivateKey
    apns_other: ec.EllipticCurvePrivateKey  # a key the simulator does not know
    service_account: rsa.RSAPrivateKey
    service_account_other: rsa.RSAPrivateKey
    vapid: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="session")
def curl_keys() -> CurlKeys:
    return CurlKeys(
        apns=ec.generate_private_key(ec.SECP256R1()),
        apns_other=ec.generate_private_key(ec.SECP256R1()),
        service_account=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        service_account_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        vapid=ec.generate_private_key(ec.SECP256R1()),
    )


@pytest.fixture(scope="session")
def curl_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One CA for the session: certificate generation is the slow part of a simulator start.
    return tmp_path_factory.mktemp("curl-delivery-ca")


def apns_credentials(key: ec.EllipticCurvePrivateKey, topic: str = TOPIC) -> ApnsCredentials:
    return ApnsCredentials(
        topic=topic, private_key=_pem_private(key), team_id=TEAM_ID, key_id=KEY_ID
    )


def apns_options(keys: CurlKeys) -> ApnsOptions:
    """Signatures are verified only when the simulator is given the public keys."""
    return ApnsOptions(keys={KEY_ID: _pem_public(keys.apns)}, topics=[TOPIC])


def fcm_options(keys: CurlKeys) -> FcmOptions:
    return FcmOptions(keys={SA_KEY_ID: _pem_public(keys.service_account)})


def fcm_credentials(key: rsa.RSAPrivateKey, sims: Simulators) -> FcmCredentials:
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": SA_KEY_ID,
        "private_key": _pem_private(key),
        "client_email": "pushcore@curl-project.iam.gserviceaccount.com",
        "token_uri": f"{sims.fcm.origin}/token",
    }
    return FcmCredentials(service_account=account)


def vapid_credentials(key: ec.EllipticCurvePrivateKey) -> WebPushCredentials:
    return WebPushCredentials(vapid_private_key=_pem_private(key), subject="mailto:ops@example.com")


# -- simulators + transport ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    ca_dir: Path, *, transport: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[Simulators, CurlTransport]]:
    """The three ``h2`` simulators and a CurlTransport trusting their CA, both closed after."""
    async with Simulators.start(engine="h2", ca_dir=ca_dir, **options) as sims:
        curl = CurlTransport(ca_file=str(sims.ca_file), **(transport or {}))
        try:
            yield sims, curl
        finally:
            await curl.aclose()


def apns_batch(n_live: int, n_dead: int, n_bad: int, *, seed: int = 0) -> list[Registration]:
    """Live, ``dead…`` (410) and ``bad0…`` (400) tokens interleaved."""
    tokens = [fates.apns_token(i, Fate.LIVE, seed=seed) for i in range(n_live)]
    tokens += [fates.apns_token(i, Fate.DEAD, seed=seed) for i in range(n_dead)]
    tokens += [fates.apns_token(i, Fate.INVALID, seed=seed) for i in range(n_bad)]
    tokens = tokens[::2] + tokens[1::2]  # mix the fates within the batch
    return [Registration(installation_id=i, token=t) for i, t in enumerate(tokens)]


def live_apns(n: int, *, seed: int = 0) -> list[Registration]:
    return [Registration(installation_id=i, token=fates.apns_token(i, seed=seed)) for i in range(n)]


def outcomes(results: list[Result]) -> dict[Outcome, int]:
    counted: dict[Outcome, int] = {}
    for r in results:
        counted[r.outcome] = counted.get(r.outcome, 0) + 1
    return counted


def pairs(regs: list[Registration], results: list[Result]) -> Iterator[tuple[str, Result]]:
    assert len(results) == len(regs)
    for reg, result in zip(regs, results, strict=True):
        yield reg.token, result


def assert_each_live_accepted_once(counters: Counters, regs: list[Registration]) -> None:
    for reg in regs:
        assert counters.accepted(reg.token) == 1, reg.token


# -- APNs -------------------------------------------------------------------------------------


async def test_apns_batch_outcomes_follow_token_fates(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    regs = apns_batch(200, 50, 50)
    async with running(curl_ca_dir, apns=apns_options(curl_keys)) as (sims, curl):
        provider = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    before = time.time()
    for token, result in pairs(regs, results):
        fate = fates.apns_fate(token)
        if fate is Fate.LIVE:
            assert (result.outcome, result.reason, result.status) == (Outcome.DELIVERED, "ok", 200)
            assert counters.accepted(token) == 1
        elif fate is Fate.DEAD:
            assert (result.outcome, result.reason, result.status) == (
                Outcome.INVALID,
                "Unregistered",
                410,
            )
            assert result.invalid_since is not None
            assert abs(result.invalid_since - before) < 60
            assert counters.accepted(token) == 0
        else:
            assert (result.outcome, result.reason, result.status) == (
                Outcome.INVALID,
                "BadDeviceToken",
                400,
            )
            assert counters.accepted(token) == 0
        assert counters.received(token) == 1
    # nothing else reached the simulator: one request per registration, no retries
    assert counters.requests == 300
    assert len(counters.tokens) == 300
    assert counters.by_status == {200: 200, 400: 50, 410: 50}
    assert counters.faults == {}


async def test_apns_unknown_signing_key_is_a_sender_error_after_one_resend(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """A JWT signed with a key the simulator does not know: 403 InvalidProviderToken, which
    the provider treats as a stale token (RETRY + refresh_auth).  deliver() re-sends once
    with a fresh authorization; refused again, the key is wrong: SENDER_ERROR, never
    INVALID (nothing is deleted) and never retried forever."""
    regs = live_apns(20)
    async with running(curl_ca_dir, apns=apns_options(curl_keys)) as (sims, curl):
        provider = ApnsProvider(apns_credentials(curl_keys.apns_other), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    for token, result in pairs(regs, results):
        assert (result.outcome, result.reason, result.status) == (
            Outcome.SENDER_ERROR,
            "InvalidProviderToken",
            403,
        )
        assert counters.received(token) == 2  # the first send and deliver's one re-send
        assert counters.accepted(token) == 0
    assert counters.by_reason == {"InvalidProviderToken": 40}


async def test_apns_sender_errors_topic_and_missing_token(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """What is the sender's fault is SENDER_ERROR, sent once and never INVALID: a topic the
    key may not use, and certificate credentials where the service wants a provider token
    (the simulator asks for no client certificate, so no JWT at all arrives)."""
    regs = live_apns(10)
    async with running(curl_ca_dir, apns=apns_options(curl_keys)) as (sims, curl):
        wrong_topic = ApnsProvider(
            apns_credentials(curl_keys.apns, topic="com.example.other"), origin=sims.apns.origin
        )
        topic_results = await deliver(
            wrong_topic, curl, wrong_topic.render(NOTE), regs, timeout=TIMEOUT
        )
        certificate = ApnsCredentials(
            topic=TOPIC, private_key=_pem_private(curl_keys.apns), certificate="(unused here)"
        )
        no_jwt = ApnsProvider(certificate, origin=sims.apns.origin)
        assert no_jwt.signer is None
        cert_results = await deliver(no_jwt, curl, no_jwt.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    assert {(r.outcome, r.reason) for r in topic_results} == {
        (Outcome.SENDER_ERROR, "TopicDisallowed")
    }
    assert {(r.outcome, r.reason) for r in cert_results} == {
        (Outcome.SENDER_ERROR, "MissingProviderToken")
    }
    assert counters.by_reason == {"TopicDisallowed": 10, "MissingProviderToken": 10}
    assert all(counters.received(r.token) == 2 for r in regs)  # once per provider


# -- FCM --------------------------------------------------------------------------------------


def fcm_batch(n_live: int, n_unreg: int, n_inval: int, *, seed: int = 0) -> list[Registration]:
    tokens = [fates.fcm_token(i, Fate.LIVE, seed=seed) for i in range(n_live)]
    tokens += [fates.fcm_token(i, Fate.DEAD, seed=seed) for i in range(n_unreg)]
    tokens += [fates.fcm_token(i, Fate.INVALID, seed=seed) for i in range(n_inval)]
    tokens = tokens[::2] + tokens[1::2]
    return [Registration(installation_id=i, token=t) for i, t in enumerate(tokens)]


async def test_fcm_token_fetched_once_through_deliver_then_fates(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    first, second = fcm_batch(60, 20, 20), fcm_batch(30, 0, 0, seed=1)
    async with running(curl_ca_dir, fcm=fcm_options(curl_keys)) as (sims, curl):
        provider = FcmProvider(
            fcm_credentials(curl_keys.service_account, sims), base_url=sims.fcm.origin
        )
        assert provider.auth_request(time.time()) is not None  # nothing cached yet
        rendered = provider.render(NOTE)
        results = await deliver(provider, curl, rendered, first, timeout=TIMEOUT)
        again = await deliver(provider, curl, rendered, second, timeout=TIMEOUT)
        counters = sims.fcm.counters

    expected = {
        Fate.LIVE: (Outcome.DELIVERED, "ok", 200),
        Fate.DEAD: (Outcome.INVALID, "UNREGISTERED", 404),
        Fate.INVALID: (Outcome.INVALID, "INVALID_ARGUMENT", 400),
    }
    for token, result in pairs(first, results):
        assert (result.outcome, result.reason, result.status) == expected[fates.fcm_fate(token)]
    assert outcomes(again) == {Outcome.DELIVERED: 30}
    # one access token for both batches, fetched by deliver() over the same transport
    assert counters.by_reason.get("token") == 1
    # one request per registration; the simulator tracks rejected FCM tokens only by reason
    assert counters.by_status == {200: 1 + 60 + 30, 400: 20, 404: 20}
    assert counters.by_reason == {"token": 1, "UNREGISTERED": 20, "INVALID_ARGUMENT": 20}
    live = [r for r in first + second if fates.fcm_fate(r.token) is Fate.LIVE]
    assert_each_live_accepted_once(counters, live)
    assert provider.auth_request(time.time()) is None  # cached


async def test_fcm_rejected_access_token_is_refreshed_and_resent(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """A cached token the service no longer accepts: 401 UNAUTHENTICATED -> deliver()
    invalidates it, fetches a new one from /token and re-sends only those requests."""
    regs = fcm_batch(25, 0, 0)
    async with running(curl_ca_dir, fcm=fcm_options(curl_keys)) as (sims, curl):
        provider = FcmProvider(
            fcm_credentials(curl_keys.service_account, sims), base_url=sims.fcm.origin
        )
        now = time.time()
        # stored 2 minutes ago: outside the cache's invalidation grace period
        provider.cache.store(AccessToken("ya29.revoked", now + 3000), now - 120)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.fcm.counters

    assert outcomes(results) == {Outcome.DELIVERED: 25}
    # 25 refused (the FCM simulator counts those per reason, not per token), 1 token, 25 sent
    assert counters.by_reason == {"UNAUTHENTICATED": 25, "token": 1}
    assert counters.by_status == {401: 25, 200: 26}
    assert_each_live_accepted_once(counters, regs)


async def test_fcm_token_endpoint_refusing_the_assertion_raises_auth_error(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    regs = fcm_batch(5, 0, 0)
    async with running(curl_ca_dir, fcm=fcm_options(curl_keys)) as (sims, curl):
        provider = FcmProvider(
            fcm_credentials(curl_keys.service_account_other, sims), base_url=sims.fcm.origin
        )
        with pytest.raises(AuthError) as raised:
            await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.fcm.counters

    assert raised.value.retryable is False
    assert "400 invalid_grant" in str(raised.value)
    assert counters.requests == 1  # the token request only: no message was sent
    assert counters.by_reason == {"invalid_grant": 1}


# -- Web Push ---------------------------------------------------------------------------------


async def test_webpush_live_and_gone_with_payload_decrypted_by_the_simulator(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    options = WebPushOptions(verify_encryption=True)
    async with running(curl_ca_dir, webpush=options) as (sims, curl):
        origin = sims.webpush.origin
        subs = [fates.webpush_subscription(i, Fate.LIVE, origin=origin) for i in range(40)]
        subs += [fates.webpush_subscription(i, Fate.DEAD, origin=origin) for i in range(10)]
        regs = [
            Registration(installation_id=i, token=s.endpoint, p256dh=s.p256dh, auth=s.auth)
            for i, s in enumerate(subs[::2] + subs[1::2])
        ]
        provider = WebPushProvider(vapid_credentials(curl_keys.vapid), allow_loopback=True)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.webpush.counters

    for reg, result in zip(regs, results, strict=True):
        sub_id = reg.token.rsplit("/", 1)[1]
        if fates.webpush_fate(sub_id) is Fate.LIVE:
            assert (result.outcome, result.status) == (Outcome.DELIVERED, 201)
            assert counters.accepted(sub_id) == 1
        else:
            assert (result.outcome, result.reason, result.status) == (
                Outcome.INVALID,
                "http-410",
                410,
            )
            assert counters.accepted(sub_id) == 0
        assert counters.received(sub_id) == 1
    # every ciphertext decrypted with the subscription's key (else 400 "Invalid crypto")
    assert counters.by_status == {201: 40, 410: 10}


async def test_webpush_keys_of_another_subscription_do_not_decrypt(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """The simulator really checks the encryption: keys of another subscription give 400,
    which Web Push classifies as the sender's error (never a deletion)."""
    async with running(curl_ca_dir, webpush=WebPushOptions(verify_encryption=True)) as (
        sims,
        curl,
    ):
        mine = fates.webpush_subscription(1, origin=sims.webpush.origin)
        other = fates.webpush_subscription(2, origin=sims.webpush.origin)
        reg = Registration(
            installation_id=1, token=mine.endpoint, p256dh=other.p256dh, auth=other.auth
        )
        provider = WebPushProvider(vapid_credentials(curl_keys.vapid), allow_loopback=True)
        (result,) = await deliver(provider, curl, provider.render(NOTE), [reg], timeout=TIMEOUT)
        counters = sims.webpush.counters

    assert (result.outcome, result.status) == (Outcome.SENDER_ERROR, 400)
    assert counters.by_reason == {"Invalid crypto": 1}


# -- faults -----------------------------------------------------------------------------------


async def test_429_with_retry_after_is_retry_for_the_throttled_ones_only(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    regs = live_apns(90)
    faults = Faults(error_every=3, error_status=429, retry_after=7)
    async with running(curl_ca_dir, apns=apns_options(curl_keys), faults={"apns": faults}) as (
        sims,
        curl,
    ):
        provider = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    assert outcomes(results) == {Outcome.DELIVERED: 60, Outcome.RETRY: 30}
    for token, result in pairs(regs, results):
        assert counters.received(token) == 1
        if result.outcome is Outcome.RETRY:
            # which ones are throttled depends on arrival order: check against the counters
            assert (result.reason, result.status, result.retry_after) == (
                "TooManyRequests",
                429,
                7.0,
            )
            assert counters.accepted(token) == 0
        else:
            assert counters.accepted(token) == 1
    assert counters.faults == {"throttled": 30}


async def test_503_is_retry_on_every_provider(curl_ca_dir: Path, curl_keys: CurlKeys) -> None:
    # every 2nd request: the FCM token request is the 1st, so it passes
    faults = Faults(error_every=2, error_status=503, retry_after=3)
    async with running(
        curl_ca_dir, apns=apns_options(curl_keys), fcm=fcm_options(curl_keys), faults=faults
    ) as (sims, curl):
        apns = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        fcm = FcmProvider(
            fcm_credentials(curl_keys.service_account, sims), base_url=sims.fcm.origin
        )
        webpush = WebPushProvider(vapid_credentials(curl_keys.vapid), allow_loopback=True)
        apns_regs = live_apns(20)
        fcm_regs = fcm_batch(21, 0, 0)  # 1 token request + 21 sends: 11 throttled
        web_subs = [fates.webpush_subscription(i, origin=sims.webpush.origin) for i in range(20)]
        web_regs = [
            Registration(installation_id=i, token=s.endpoint, p256dh=s.p256dh, auth=s.auth)
            for i, s in enumerate(web_subs)
        ]
        got = await asyncio.gather(
            deliver(apns, curl, apns.render(NOTE), apns_regs, timeout=TIMEOUT),
            deliver(fcm, curl, fcm.render(NOTE), fcm_regs, timeout=TIMEOUT),
            deliver(webpush, curl, webpush.render(NOTE), web_regs, timeout=TIMEOUT),
        )
        apns_counters, fcm_counters = sims.apns.counters, sims.fcm.counters
        web_counters = sims.webpush.counters

    apns_results, fcm_results, web_results = got
    assert outcomes(apns_results) == {Outcome.DELIVERED: 10, Outcome.RETRY: 10}
    assert outcomes(fcm_results) == {Outcome.DELIVERED: 10, Outcome.RETRY: 11}
    assert outcomes(web_results) == {Outcome.DELIVERED: 10, Outcome.RETRY: 10}
    retried = [r for r in (*apns_results, *fcm_results, *web_results) if r.outcome is Outcome.RETRY]
    assert {(r.status, r.retry_after) for r in retried} == {(503, 3.0)}
    assert {r.reason for r in apns_results if r.outcome is Outcome.RETRY} == {"ServiceUnavailable"}
    assert {r.reason for r in fcm_results if r.outcome is Outcome.RETRY} == {"UNAVAILABLE"}
    regs: list[Registration]
    for regs, results, counters in (
        (apns_regs, apns_results, apns_counters),
        (fcm_regs, fcm_results, fcm_counters),
    ):
        for token, result in pairs(regs, results):
            assert counters.accepted(token) == (result.outcome is Outcome.DELIVERED)
    for reg, result in zip(web_regs, web_results, strict=True):
        sub_id = reg.token.rsplit("/", 1)[1]
        assert web_counters.accepted(sub_id) == (result.outcome is Outcome.DELIVERED)


async def test_goaway_every_registration_answered_none_delivered_twice(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """Each connection ends with GOAWAY after 50 requests; streams above the last-stream-id
    are refused (unprocessed) and libcurl re-sends them on a new connection."""
    regs = live_apns(300)
    async with running(
        curl_ca_dir,
        apns=apns_options(curl_keys),
        transport_faults={"apns": TransportFaults(goaway_after=50)},
    ) as (sims, curl):
        provider = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters
        connections = curl.connections_opened

    assert outcomes(results) == {Outcome.DELIVERED: 300}
    assert_each_live_accepted_once(counters, regs)
    assert counters.requests == 300  # refused streams were never processed
    assert counters.faults["goaway"] >= 300 // 50
    assert connections >= 300 // 50


async def test_rst_stream_is_retry_for_the_reset_streams_only(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    regs = live_apns(140)
    tf = TransportFaults(rst_every=7)  # INTERNAL_ERROR: the request may have been processed
    async with running(
        curl_ca_dir, apns=apns_options(curl_keys), transport_faults={"apns": tf}
    ) as (sims, curl):
        provider = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    assert outcomes(results) == {Outcome.DELIVERED: 120, Outcome.RETRY: 20}
    assert counters.faults == {"rst_stream": 20}
    for token, result in pairs(regs, results):
        if result.outcome is Outcome.RETRY:
            assert result.reason == "transport-reset"
            assert counters.received(token) == 0  # reset before the simulator saw it
        else:
            assert counters.accepted(token) == 1


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_server_down_every_registration_retry_connect(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    regs = live_apns(50)
    async with running(curl_ca_dir) as (_, curl):
        provider = ApnsProvider(
            apns_credentials(curl_keys.apns), origin=f"https://127.0.0.1:{_unused_port()}"
        )
        started = time.monotonic()
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=5.0)
        elapsed = time.monotonic() - started

    assert {r.reason for r in results} == {"transport-connect"}
    assert outcomes(results) == {Outcome.RETRY: 50}
    assert elapsed < 5.0


async def test_server_never_answering_the_handshake_is_connect_within_the_timeout(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """A listener that accepts TCP but never speaks TLS: the connect timeout fires, and the
    whole batch is CONNECT (never sent) well before the batch deadline."""
    regs = live_apns(50)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes TCP handshakes; nobody ever reads
        port = listener.getsockname()[1]
        async with running(curl_ca_dir, transport={"connect_timeout": 0.5}) as (_, curl):
            provider = ApnsProvider(
                apns_credentials(curl_keys.apns), origin=f"https://127.0.0.1:{port}"
            )
            started = time.monotonic()
            results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=5.0)
            elapsed = time.monotonic() - started

    assert {r.reason for r in results} == {"transport-connect"}
    assert outcomes(results) == {Outcome.RETRY: 50}
    assert elapsed < 2.5


async def test_dropped_connection_is_retry_and_the_lost_answer_was_delivered(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    """The connection is aborted right after its 10th request is processed: that answer
    (and any the simulator had not yet written) is lost, so registrations the simulator
    delivered come back RETRY (at-least-once: a re-send duplicates them); the requests it
    never processed are RETRY too, and nothing is INVALID."""
    regs = live_apns(30)
    tf = TransportFaults(drop_after=10)
    async with running(
        curl_ca_dir, apns=apns_options(curl_keys), transport_faults={"apns": tf}
    ) as (sims, curl):
        provider = ApnsProvider(apns_credentials(curl_keys.apns), origin=sims.apns.origin)
        results = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.apns.counters

    assert counters.faults.get("dropped", 0) >= 1
    assert set(outcomes(results)) <= {Outcome.DELIVERED, Outcome.RETRY}
    lost_answers = 0
    for token, result in pairs(regs, results):
        if result.outcome is Outcome.DELIVERED:
            assert counters.accepted(token) == 1
        else:
            assert result.reason.startswith("transport-"), result
            lost_answers += counters.accepted(token)
    assert lost_answers >= 1

"""Fidelity of the simulators, proven with clients nobody here wrote: aioapns against the
APNs simulator, firebase-admin's messaging client against the FCM simulator (OAuth token
included), and pywebpush against the Web Push simulator, which decrypts its bodies."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.gateways import fates
from pushcore.gateways.simulators import Simulators
from pushcore.gateways.webpush import WebPushOptions
from pushcore.providers.credentials import private_key_pem


@pytest.fixture(scope="module")
def third_party_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("third-party-ca")


@pytest.fixture
async def granian_sims(third_party_ca: Path) -> AsyncIterator[Simulators]:
    # granian speaks HTTP/1.1 as well: pywebpush and google-auth's token refresh use requests
    async with Simulators.start(
        engine="granian", ca_dir=third_party_ca, webpush=WebPushOptions(verify_encryption=True)
    ) as sims:
        yield sims


async def test_aioapns_client(granian_sims: Simulators) -> None:
    import aioapns
    from aioapns.common import NotificationRequest, PushType
    from aioapns.connection import APNsProductionClientProtocol

    ctx = ssl.create_default_context(cafile=str(granian_sims.ca_file))
    ctx.set_alpn_protocols(["h2"])  # aioapns sets no ALPN; the simulator needs h2
    client = aioapns.APNs(
        key=private_key_pem(ec.generate_private_key(ec.SECP256R1())),
        key_id="KEY1234567",
        team_id="ABCDE12345",
        topic="com.example.app",
        max_connections=1,
        max_connection_attempts=1,
        ssl_context=ctx,
    )
    # aioapns reads its host and port from class attributes of its protocol class
    client.pool.protocol_class = type(
        "SimulatorProtocol",
        (APNsProductionClientProtocol,),
        {"APNS_SERVER": "127.0.0.1", "APNS_PORT": granian_sims.apns.port},
    )
    live, dead = fates.apns_token(1), fates.apns_token(2, fates.Fate.DEAD)
    results = {}
    for token in (live, dead):
        request = NotificationRequest(
            device_token=token, message={"aps": {"alert": "hi"}}, push_type=PushType.ALERT
        )
        results[token] = await asyncio.wait_for(client.send_notification(request), 10)
    assert results[live].is_successful
    assert (results[dead].status, results[dead].description) == ("410", "Unregistered")
    stats = await granian_sims.apns.fetch_stats(with_tokens=True)
    assert stats["tokens"][live]["accepted"] == 1
    assert stats["by_http_version"] == {"2": 2}


# firebase-admin 7.7 deprecates Message.token for Message.fid; both are sent here
@pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")
async def test_firebase_admin_client(
    granian_sims: Simulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    import firebase_admin
    from firebase_admin import credentials, messaging

    ca = str(granian_sims.ca_file)
    monkeypatch.setenv("SSL_CERT_FILE", ca)  # httpx (the async send path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)  # requests (google-auth's token refresh)
    monkeypatch.setattr(
        messaging._MessagingService,
        "FCM_URL",
        granian_sims.fcm.origin + "/v1/projects/{0}/messages:send",
    )
    account = {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "k1",
        "private_key": private_key_pem(
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "client_email": "sender@demo-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": granian_sims.fcm.origin + "/token",
    }
    app = firebase_admin.initialize_app(
        credentials.Certificate(account), {"projectId": "demo-project"}, name="pushcore-test"
    )
    try:
        live, unreg = fates.fcm_token(1), fates.fcm_token(2, fates.Fate.DEAD)
        live_fid, unreg_fid = fates.fcm_token(3), fates.fcm_token(4, fates.Fate.DEAD)
        batch = await messaging.send_each_async(
            [
                messaging.Message(token=live, notification=messaging.Notification(title="hi")),
                messaging.Message(token=unreg, data={"k": "v"}),
                messaging.Message(fid=live_fid, data={"k": "v"}),
                messaging.Message(fid=unreg_fid, data={"k": "v"}),
            ],
            dry_run=False,
            app=app,
        )
    finally:
        # delete_app closes firebase-admin's async client with asyncio.run: not on this loop
        await asyncio.to_thread(firebase_admin.delete_app, app)
    ok, gone, ok_fid, gone_fid = batch.responses
    for answer in (ok, ok_fid):
        assert answer.success, answer.exception
        assert answer.message_id.startswith("projects/demo-project/messages/")
    assert isinstance(gone.exception, messaging.UnregisteredError)
    assert isinstance(gone_fid.exception, messaging.UnregisteredError)
    stats = await granian_sims.fcm.fetch_stats(with_tokens=True)
    assert stats["by_status"] == {"200": 3, "404": 2}  # the OAuth token, two deliveries
    assert stats["duplicates"] == 0
    # google-auth fetches the token with requests (HTTP/1.1), the sends go over httpx's h2
    assert stats["by_http_version"] == {"1.1": 1, "2": 4}


async def test_pywebpush_client(granian_sims: Simulators, monkeypatch: pytest.MonkeyPatch) -> None:
    from py_vapid import Vapid02
    from pywebpush import WebPushException, webpush

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(granian_sims.ca_file))
    vapid = Vapid02()
    vapid.generate_keys()
    origin = granian_sims.webpush.origin
    claims = {"sub": "mailto:ops@example.com"}
    live = fates.webpush_subscription(1, origin=origin)
    # webpush() runs its own event loop (asyncio.run): call it from a thread
    response = await asyncio.to_thread(
        webpush,
        {"endpoint": live.endpoint, "keys": {"p256dh": live.p256dh, "auth": live.auth}},
        data='{"title": "hi"}',
        vapid_private_key=vapid,
        vapid_claims=dict(claims),
        timeout=10,
    )
    # 201 only if the VAPID signature verified and the simulator decrypted the body
    assert response.status_code == 201, response.text
    # the two dead forms: a ``gone...`` subscription id and an endpoint path ending /gone
    dead = fates.webpush_subscription(2, fates.Fate.DEAD, origin=origin)
    ends_gone = fates.webpush_subscription(3, origin=origin)
    for endpoint, keys in ((dead.endpoint, dead), (ends_gone.endpoint + "/gone", ends_gone)):
        with pytest.raises(WebPushException) as refused:
            await asyncio.to_thread(
                webpush,
                {"endpoint": endpoint, "keys": {"p256dh": keys.p256dh, "auth": keys.auth}},
                data="bye",
                vapid_private_key=vapid,
                vapid_claims=dict(claims),
                timeout=10,
            )
        assert refused.value.response is not None
        assert refused.value.response.status_code == 410
    stats = await granian_sims.webpush.fetch_stats()
    assert (stats["delivered"], stats["rejected"], stats["by_status"]) == (
        1,
        2,
        {"201": 1, "410": 2},
    )
    assert stats["by_http_version"] == {"1.1": 3}  # pywebpush uses requests: no HTTP/2


class _Http2Session:
    """What pywebpush calls on its ``requests_session`` (``post``), carried over HTTP/2."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(
        self, url: str, *, timeout: float, data: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        return self.client.post(url, content=data, headers=dict(headers), timeout=timeout)


async def test_pywebpush_request_over_http2(granian_sims: Simulators) -> None:
    # pywebpush's own request (its encryption, headers and VAPID signature), handed to an
    # HTTP/2 client instead of requests: the h2 path of the simulator decrypts it too
    from py_vapid import Vapid02
    from pywebpush import WebPusher

    vapid = Vapid02()
    vapid.generate_keys()
    origin = granian_sims.webpush.origin
    claims = {"sub": "mailto:ops@example.com", "aud": origin, "exp": int(time.time()) + 600}
    live = fates.webpush_subscription(4, origin=origin)
    info = {"endpoint": live.endpoint, "keys": {"p256dh": live.p256dh, "auth": live.auth}}
    verify = ssl.create_default_context(cafile=str(granian_sims.ca_file))

    def send() -> httpx.Response:
        with httpx.Client(http2=True, verify=verify) as client:
            pusher = WebPusher(info, requests_session=_Http2Session(client))
            response = pusher.send('{"title": "hi"}', headers=vapid.sign(claims), ttl=60)
            assert isinstance(response, httpx.Response)
            assert response.http_version == "HTTP/2"
            return response

    response = await asyncio.to_thread(send)
    assert response.status_code == 201, response.text
    assert (await granian_sims.webpush.fetch_stats())["by_http_version"] == {"2": 1}

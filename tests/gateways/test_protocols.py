"""Each simulator over real HTTP/2 + TLS (httpx), on both engines."""

from __future__ import annotations

import asyncio
import os

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.gateways import fates
from pushcore.gateways.fates import Fate
from pushcore.gateways.simulators import Simulators
from tests.gateways.helpers import apns_headers, apns_jwt, fcm_assertion, vapid_headers

PAYLOAD = b'{"aps":{"alert":"hi"}}'


async def test_apns_fates_auth_and_stats(sims: Simulators, client: httpx.AsyncClient) -> None:
    url = f"{sims.apns.origin}/3/device/"
    live, dead, bad = (fates.apns_token(1), fates.apns_token(2, Fate.DEAD),
                       fates.apns_token(3, Fate.INVALID))  # fmt: skip
    r = await client.post(url + live, headers=apns_headers(), content=PAYLOAD)
    assert (r.http_version, r.status_code, r.content) == ("HTTP/2", 200, b"")
    assert len(r.headers["apns-id"]) == 36
    apns_id = "0f3a1c2e-1111-2222-3333-444455556666"
    r = await client.post(url + live, headers=apns_headers(**{"apns-id": apns_id}), content=PAYLOAD)
    assert r.headers["apns-id"] == apns_id

    r = await client.post(url + dead, headers=apns_headers(), content=PAYLOAD)
    assert r.status_code == 410
    assert r.json()["reason"] == "Unregistered"
    assert isinstance(r.json()["timestamp"], int)
    r = await client.post(url + bad, headers=apns_headers(), content=PAYLOAD)
    assert (r.status_code, r.json()) == (400, {"reason": "BadDeviceToken"})
    r = await client.post(url + "not-hex", headers=apns_headers(), content=PAYLOAD)
    assert (r.status_code, r.json()) == (400, {"reason": "BadDeviceToken"})

    headers = apns_headers()
    del headers["authorization"]
    r = await client.post(url + live, headers=headers, content=PAYLOAD)
    assert (r.status_code, r.json()) == (403, {"reason": "MissingProviderToken"})
    r = await client.post(url + live, headers=apns_headers(authorization="bearer x.y.z"),
                          content=PAYLOAD)  # fmt: skip
    assert (r.status_code, r.json()) == (403, {"reason": "InvalidProviderToken"})
    old = apns_headers(authorization=f"bearer {apns_jwt(iat=0)}")
    r = await client.post(url + live, headers=old, content=PAYLOAD)
    assert (r.status_code, r.json()) == (403, {"reason": "ExpiredProviderToken"})
    headers = apns_headers()
    del headers["apns-topic"]
    r = await client.post(url + live, headers=headers, content=PAYLOAD)
    assert (r.status_code, r.json()) == (400, {"reason": "MissingTopic"})
    r = await client.post(url + live, headers=apns_headers(), content=b"{" + b" " * 4095 + b"}")
    assert (r.status_code, r.json()) == (413, {"reason": "PayloadTooLarge"})
    voip = apns_headers(**{"apns-push-type": "voip"})
    r = await client.post(url + live, headers=voip, content=b"{" + b" " * 5000 + b"}")
    assert r.status_code == 200

    stats = await sims.apns.fetch_stats(with_tokens=True)
    assert stats["tokens"][live] == {"received": 8, "accepted": 3}
    assert stats["tokens"][dead] == {"received": 1, "accepted": 0}
    assert stats["by_reason"]["Unregistered"] == 1
    assert stats["by_status"]["200"] == 3
    await sims.apns.reset_stats()
    assert (await sims.apns.fetch_stats())["requests"] == 0


async def test_fcm_token_send_and_fates(sims: Simulators, client: httpx.AsyncClient) -> None:
    origin = sims.fcm.origin
    r = await client.post(
        f"{origin}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": fcm_assertion(f"{origin}/token"),
        },
    )
    assert r.status_code == 200, r.text
    grant = r.json()
    assert (grant["token_type"], grant["expires_in"]) == ("Bearer", 3600)
    auth = {"authorization": f"Bearer {grant['access_token']}"}
    send = f"{origin}/v1/projects/demo/messages:send"

    live = fates.fcm_token(1)
    r = await client.post(send, headers=auth, json={"message": {"token": live, "data": {"a": "b"}}})
    assert r.status_code == 200
    assert r.json()["name"].startswith("projects/demo/messages/")

    r = await client.post(
        send, headers=auth, json={"message": {"token": fates.fcm_token(2, Fate.DEAD)}}
    )
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["status"]) == (404, 404, "NOT_FOUND")
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": "UNREGISTERED",
        }
    ]
    r = await client.post(
        send, headers=auth, json={"message": {"token": fates.fcm_token(3, Fate.INVALID)}}
    )
    assert (r.status_code, r.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert r.json()["error"]["details"][0]["errorCode"] == "INVALID_ARGUMENT"

    r = await client.post(send, json={"message": {"token": live}})
    assert (r.status_code, r.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    r = await client.post(send, headers={"authorization": "Bearer made-up"},
                          json={"message": {"token": live}})  # fmt: skip
    assert (r.status_code, r.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    big = {"message": {"token": live, "data": {"x": "y" * 5000}}}
    r = await client.post(send, headers=auth, json=big)
    assert r.status_code == 400

    r = await client.post(f"{origin}/token", data={"grant_type": "password"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    expired = fcm_assertion(f"{origin}/token", lifetime=7200)
    grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    r = await client.post(f"{origin}/token", data={"grant_type": grant_type, "assertion": expired})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

    stats = await sims.fcm.fetch_stats(with_tokens=True)
    assert stats["tokens"][live] == {"received": 1, "accepted": 1}
    assert stats["by_reason"]["UNREGISTERED"] == 1


def _encrypt_for(subscription: fates.WebPushSubscription, plaintext: bytes) -> bytes:
    sub_id = subscription.endpoint.rsplit("/", 1)[1]
    p256dh, auth = fates.webpush_keys(sub_id)
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        plaintext, private_key=sender, dh=p256dh, auth_secret=auth, version="aes128gcm",
        salt=os.urandom(16),
    )  # fmt: skip
    return body


async def test_webpush_fates_ttl_vapid_size(sims: Simulators, client: httpx.AsyncClient) -> None:
    origin = sims.webpush.origin
    live = fates.webpush_subscription(1, origin=origin)
    gone = fates.webpush_subscription(2, Fate.DEAD, origin=origin)
    body = _encrypt_for(live, b'{"title": "hi"}')

    r = await client.post(live.endpoint, headers=vapid_headers(origin), content=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith(f"{origin}/m/")
    r = await client.post(gone.endpoint, headers=vapid_headers(origin), content=body)
    assert (r.status_code, r.json()["errno"]) == (410, 106)
    r = await client.post(live.endpoint, headers=vapid_headers(origin, ttl=None), content=body)
    assert (r.status_code, r.json()["errno"]) == (400, 111)
    r = await client.post(live.endpoint, headers={"ttl": "60"}, content=body)
    assert r.status_code == 401
    r = await client.post(live.endpoint, headers=vapid_headers("https://elsewhere.example"),
                          content=body)  # fmt: skip
    assert r.status_code == 401
    r = await client.post(live.endpoint, headers=vapid_headers(origin), content=b"x" * 4097)
    assert r.status_code == 413
    plain = {**vapid_headers(origin), "content-encoding": "gzip"}
    r = await client.post(live.endpoint, headers=plain, content=body)
    assert r.status_code == 415

    stats = await sims.webpush.fetch_stats(with_tokens=True)
    sub_id = live.endpoint.rsplit("/", 1)[1]
    assert stats["tokens"][sub_id]["accepted"] == 1
    assert stats["by_status"]["410"] == 1


async def test_many_concurrent_streams_counted_once(
    sims: Simulators, client: httpx.AsyncClient
) -> None:
    url = f"{sims.apns.origin}/3/device/"
    tokens = [fates.apns_token(i) for i in range(300)]
    headers = apns_headers()
    answers = await asyncio.gather(
        *(client.post(url + t, headers=headers, content=PAYLOAD) for t in tokens)
    )
    assert {r.status_code for r in answers} == {200}
    stats = await sims.apns.fetch_stats(with_tokens=True)
    assert all(stats["tokens"][t] == {"received": 1, "accepted": 1} for t in tokens)
    assert stats["accepted"] == 300

"""The simulators' control routes (``/__sim/stats``, ``/__sim/reset``, ``/__sim/faults``),
the ``/gone`` endpoint rule and the refusing-connections knob, on both engines."""

from __future__ import annotations

import ssl

import httpx
import pytest

from pushcore.gateways import fates
from pushcore.gateways.simulators import Simulators
from tests.gateways.helpers import apns_headers, vapid_headers

PAYLOAD = b'{"aps":{"alert":"hi"}}'


async def test_stats_reset_and_duplicates(sims: Simulators, client: httpx.AsyncClient) -> None:
    url = f"{sims.apns.origin}/3/device/"
    live, dead = fates.apns_token(1), fates.apns_token(2, fates.Fate.DEAD)
    for token in (live, live, dead):
        await client.post(url + token, headers=apns_headers(), content=PAYLOAD)
    stats = (await client.get(f"{sims.apns.origin}/__sim/stats")).json()
    assert (stats["requests"], stats["delivered"], stats["rejected"]) == (3, 2, 1)
    assert stats["duplicates"] == 1  # the live token was delivered twice
    assert stats["by_status"] == {"200": 2, "410": 1}
    r = await client.post(f"{sims.apns.origin}/__sim/reset")
    assert r.status_code == 200
    stats = (await client.get(f"{sims.apns.origin}/__sim/stats")).json()
    assert (stats["requests"], stats["delivered"], stats["duplicates"]) == (0, 0, 0)
    assert (await client.delete(f"{sims.apns.origin}/__sim/stats")).status_code == 405
    assert (await client.get(f"{sims.apns.origin}/__sim/nothing")).status_code == 404


async def test_faults_set_at_runtime(sims: Simulators, client: httpx.AsyncClient) -> None:
    base = sims.fcm.origin
    r = await client.post(
        f"{base}/__sim/faults", json={"error_every": 2, "error_status": 503, "retry_after": 9}
    )
    assert r.status_code == 200
    assert r.json()["error_every"] == 2
    url = f"{sims.apns.origin}/3/device/{fates.apns_token(3)}"
    # faults are per simulator: APNs is unaffected
    assert (await client.post(url, headers=apns_headers(), content=PAYLOAD)).status_code == 200
    statuses = []
    for _ in range(4):
        r = await client.post(f"{base}/v1/projects/p/messages:send", json={})
        statuses.append(r.status_code)
    assert statuses.count(503) == 2
    throttled = [s for s in statuses if s == 503]
    assert throttled
    bad = await client.post(f"{base}/__sim/faults", json={"error_status": 418})
    assert bad.status_code == 400
    assert (await client.post(f"{base}/__sim/faults", json={})).status_code == 200


async def test_webpush_endpoint_ending_gone(sims: Simulators, client: httpx.AsyncClient) -> None:
    origin = sims.webpush.origin
    r = await client.post(
        f"{origin}/push/abc123/gone", headers=vapid_headers(origin), content=b"x" * 100
    )
    assert r.status_code == 410
    r = await client.post(
        f"{origin}/push/abc/def", headers=vapid_headers(origin), content=b"x" * 100
    )
    assert r.status_code == 404


@pytest.mark.parametrize("sims", ["h2"], indirect=True)
async def test_refusing_connections(sims: Simulators, client: httpx.AsyncClient) -> None:
    url = f"{sims.apns.origin}/3/device/{fates.apns_token(4)}"
    r = await client.post(f"{sims.apns.origin}/__sim/faults", json={"refuse_connections": True})
    assert r.status_code == 200
    async with httpx.AsyncClient(http2=True, verify=_trust(sims), timeout=5) as fresh:
        with pytest.raises(httpx.TransportError):
            await fresh.post(url, headers=apns_headers(), content=PAYLOAD)
    # the already-open connection still works, and can lift the knob
    r = await client.post(f"{sims.apns.origin}/__sim/faults", json={})
    assert r.status_code == 200
    async with httpx.AsyncClient(http2=True, verify=_trust(sims), timeout=5) as fresh:
        r = await fresh.post(url, headers=apns_headers(), content=PAYLOAD)
        assert r.status_code == 200


def _trust(sims: Simulators) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sims.ca_file))


async def test_helpers_use_the_control_routes(sims: Simulators) -> None:
    stats = await sims.fcm.fetch_stats()
    assert {"requests", "delivered", "rejected", "by_status", "duplicates"} <= set(stats)
    answer = await sims.fcm.set_faults(latency=0.01, error_every=3)
    assert (answer["latency"], answer["error_every"], answer["error_status"]) == (0.01, 3, 429)
    await sims.fcm.reset_stats()
    assert (await sims.fcm.fetch_stats())["requests"] == 0
    with pytest.raises(RuntimeError, match="unknown fault fields: nonsense"):
        await sims.fcm.set_faults(nonsense=1)
    await sims.fcm.set_faults()


@pytest.mark.parametrize("sims", ["granian"], indirect=True)
@pytest.mark.parametrize("fields", [{"refuse_connections": True}, {"goaway_after": 1}])
async def test_granian_refuses_connection_faults_at_runtime(
    sims: Simulators, fields: dict[str, object]
) -> None:
    with pytest.raises(RuntimeError, match=r"answered 400.*need the h2 engine"):
        await sims.apns.set_faults(**fields)


@pytest.mark.parametrize("sims", ["h2"], indirect=True)
async def test_transport_faults_set_at_runtime(sims: Simulators, client: httpx.AsyncClient) -> None:
    def url(i: int) -> str:
        return f"{sims.apns.origin}/3/device/{fates.apns_token(i)}"

    answer = await sims.apns.set_faults(rst_fraction=1.0, rst_code=7)
    assert (answer["rst_fraction"], answer["max_concurrent_streams"]) == (1.0, 1000)
    with pytest.raises(httpx.HTTPError):
        await client.post(url(1), headers=apns_headers(), content=PAYLOAD)
    # GOAWAY after every request: httpx reconnects each time and every request is answered
    await sims.apns.set_faults(goaway_after=1)
    async with httpx.AsyncClient(http2=True, verify=_trust(sims), timeout=5) as fresh:
        for i in range(2, 5):
            r = await fresh.post(url(i), headers=apns_headers(), content=PAYLOAD)
            assert r.status_code == 200
    await sims.apns.set_faults()
    stats = await sims.apns.fetch_stats()
    assert stats["faults"] == {"goaway": 3, "rst_stream": 1}
    assert (stats["delivered"], stats["duplicates"]) == (3, 0)

"""Fault knobs, observed frame by frame with a raw ``h2`` client (and httpx for 429)."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import httpx
import pytest

from pushcore.gateways import fates
from pushcore.gateways.core import Faults, TransportFaults
from pushcore.gateways.simulators import Engine, Simulators
from tests.gateways.helpers import RawH2, apns_headers

PAYLOAD = b'{"aps":{}}'


def _path(i: int) -> str:
    return f"/3/device/{fates.apns_token(i)}"


async def test_goaway_after_n_answers_up_to_last_stream_and_refuses_the_rest(ca_dir: Path) -> None:
    # a client that never closes: the server does, once its grace after the GOAWAY is over
    tf = TransportFaults(goaway_after=2, goaway_grace=0.5)
    async with Simulators.start(ca_dir=ca_dir, transport_faults=tf) as sims:
        async with RawH2.connect(sims.apns.origin, sims.ca_file) as c:
            sids = [c.post(_path(i), apns_headers(), PAYLOAD) for i in range(4)]
            started = time.monotonic()
            await c.pump()
            lingered = time.monotonic() - started
        goaway = c.goaway()
        assert goaway is not None
        assert goaway.last_stream_id == sids[1]
        assert c.statuses() == {sids[0]: 200, sids[1]: 200}
        assert c.closed
        assert lingered >= 0.5  # not closed at once: answers and GOAWAY could be read first
        stats = sims.apns.counters
        assert stats.faults == {"goaway": 1}
        assert stats.accepted(fates.apns_token(1)) == 1
        assert stats.received(fates.apns_token(2)) == 0  # refused: never processed


async def test_rst_stream_every_nth_request(ca_dir: Path) -> None:
    tf = TransportFaults(rst_every=2)
    async with Simulators.start(ca_dir=ca_dir, transport_faults=tf) as sims:
        async with RawH2.connect(sims.apns.origin, sims.ca_file) as c:
            sids = [c.post(_path(i), apns_headers(), PAYLOAD) for i in range(4)]
            await c.pump(until=0.5)
        assert c.statuses() == {sids[0]: 200, sids[2]: 200}
        assert c.resets() == {sids[1]: 2, sids[3]: 2}  # INTERNAL_ERROR
        assert sims.apns.counters.faults == {"rst_stream": 2}
        assert sims.apns.counters.accepted(fates.apns_token(1)) == 0


async def test_drop_after_n_processes_but_never_answers(ca_dir: Path) -> None:
    tf = TransportFaults(drop_after=2)
    async with Simulators.start(ca_dir=ca_dir, transport_faults=tf) as sims:
        async with RawH2.connect(sims.apns.origin, sims.ca_file) as c:
            first = c.post(_path(0), apns_headers(), PAYLOAD)
            await c.pump(until=0.3)
            c.post(_path(1), apns_headers(), PAYLOAD)
            await c.pump()
        assert c.closed
        assert c.goaway() is None
        assert c.statuses() == {first: 200}
        # The lost answer's request was delivered: a sender must not assume otherwise.
        assert sims.apns.counters.accepted(fates.apns_token(1)) == 1
        assert sims.apns.counters.faults == {"dropped": 1}


async def test_max_concurrent_streams_is_announced_and_honoured(ca_dir: Path) -> None:
    tf = TransportFaults(max_concurrent_streams=5)
    async with Simulators.start(
        ca_dir=ca_dir, transport_faults=tf, faults=Faults(latency=0.1)
    ) as sims:
        async with RawH2.connect(sims.apns.origin, sims.ca_file) as c:
            await c.pump(until=0.2)
            assert c.conn.remote_settings.max_concurrent_streams == 5
        verify = ssl.create_default_context(cafile=str(sims.ca_file))
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            answers = await asyncio.gather(
                *(client.post(sims.apns.origin + _path(i), headers=apns_headers(), content=PAYLOAD)
                  for i in range(20))
            )  # fmt: skip
        assert {r.status_code for r in answers} == {200}
        assert sims.apns.counters.peak_in_flight == 5


@pytest.mark.parametrize("engine", ["h2", "granian"])
async def test_every_nth_is_throttled_with_retry_after(ca_dir: Path, engine: Engine) -> None:
    faults = Faults(error_every=3, error_status=429, retry_after=7)
    async with Simulators.start(engine=engine, ca_dir=ca_dir, faults=faults) as sims:
        verify = ssl.create_default_context(cafile=str(sims.ca_file))
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            statuses = []
            for i in range(6):
                r = await client.post(sims.apns.origin + _path(i), headers=apns_headers(),
                                      content=PAYLOAD)  # fmt: skip
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "7"
                    assert r.json() == {"reason": "TooManyRequests"}
            send = f"{sims.fcm.origin}/v1/projects/p/messages:send"
            fcm = [(await client.post(send, json={})).status_code for _ in range(2)]
            r = await client.post(send, json={})
            assert (fcm, r.status_code) == ([401, 401], 429)
            assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert statuses == [200, 200, 429, 200, 200, 429]
        stats = await sims.apns.fetch_stats(with_tokens=True)
        assert stats["faults"] == {"throttled": 2}
        assert stats["tokens"][fates.apns_token(2)] == {"received": 1, "accepted": 0}


@pytest.mark.parametrize("engine", ["h2", "granian"])
async def test_latency_overlaps_requests(ca_dir: Path, engine: Engine) -> None:
    async with Simulators.start(engine=engine, ca_dir=ca_dir, faults=Faults(latency=0.3)) as sims:
        verify = ssl.create_default_context(cafile=str(sims.ca_file))
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.post(sims.apns.origin + _path(i), headers=apns_headers(), content=PAYLOAD)
                  for i in range(20))
            )  # fmt: skip
            elapsed = time.monotonic() - started
        assert {r.status_code for r in answers} == {200}
        assert 0.3 <= elapsed < 2.0
        assert (await sims.apns.fetch_stats())["peak_in_flight"] >= 10


async def test_granian_refuses_connection_level_faults(ca_dir: Path) -> None:
    with pytest.raises(ValueError, match="h2 engine"):
        async with Simulators.start(
            engine="granian", ca_dir=ca_dir, transport_faults=TransportFaults(goaway_after=1)
        ):
            pass


async def test_httpx_reconnects_after_goaway(ca_dir: Path) -> None:
    async with Simulators.start(
        ca_dir=ca_dir, transport_faults=TransportFaults(goaway_after=2)
    ) as sims:
        verify = ssl.create_default_context(cafile=str(sims.ca_file))
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            for i in range(5):
                r = await client.post(sims.apns.origin + _path(i), headers=apns_headers(),
                                      content=PAYLOAD)  # fmt: skip
                assert r.status_code == 200
        assert sims.apns.counters.faults == {"goaway": 2}
        assert all(sims.apns.counters.accepted(fates.apns_token(i)) == 1 for i in range(5))

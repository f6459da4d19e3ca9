"""The naive baseline: what a sender without queue or bounds does, ``asyncio.gather`` over
every token at once, in one process: aioapns for APNs, ``httpx.AsyncClient(http2=True)``
for FCM and Web Push."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks import delivery_engines, transport
from benchmarks.fanout import simulators
from benchmarks.fanout.registrations import PROVIDER_OF, RegTuple, registration, sample
from pushcore.fanout.delivery import authorize
from pushcore.gateways.simulators import Simulators
from pushcore.providers.base import Provider, Registration
from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport

TIMEOUT = 600.0  # all three providers together
REQUEST_TIMEOUT = 120.0


@dataclass
class _Tally:
    """Answers of all three senders, which run concurrently on one loop."""

    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, key: str, n: int = 1) -> None:
        self.errors[key] = self.errors.get(key, 0) + n


async def measure(sims: Simulators, live_rows: Sequence[Any], n: int) -> dict[str, Any]:
    """Send ``n`` of the live registrations; the baseline's part of the JSON."""
    regs = sample(live_rows, n)
    for sim in sims:
        await sim.reset_stats()
    out = await _send(sims, regs)
    out["simulators_accepted"] = await simulators.accepted(sims)
    return out


async def _send(sims: Simulators, regs: list[RegTuple]) -> dict[str, Any]:
    providers = transport._providers(sims)
    await _authorize_fcm(sims, providers["fcm"])
    ctx = ssl.create_default_context(cafile=str(sims.ca_file))
    by_name: dict[str, list[Registration]] = {name: [] for name in PROVIDER_OF.values()}
    for reg in regs:
        by_name[PROVIDER_OF[reg[0]]].append(registration(reg))
    tally = _Tally()
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(
            _with_aioapns(sims, providers["apns"], by_name["apns"], tally),
            _with_httpx(providers["fcm"], by_name["fcm"], ctx, tally),
            _with_httpx(providers["webpush"], by_name["webpush"], ctx, tally),
        ),
        TIMEOUT,
    )
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {
        "what": "asyncio.gather over every token: aioapns (APNs), httpx HTTP/2 (FCM, Web Push)",
        "sample": len(regs),
        "delivered": tally.ok,
        "errors": tally.errors,
        "wall_s": round(wall, 2),
        "notifications_per_second": round(tally.ok / wall) if wall else 0,
        "sender_cpu_s_per_1000": round(cpu * 1000 / max(tally.ok, 1), 4),
    }


async def _authorize_fcm(sims: Simulators, fcm: Provider[Any]) -> None:
    """The FCM OAuth token, fetched before the clock starts: set-up, not sending."""
    probe = CurlTransport(ca_file=str(sims.ca_file), max_in_flight=4)
    try:
        await authorize(fcm, probe, timeout=30)
    finally:
        await probe.aclose()


async def _with_httpx(
    provider: Provider[Any], group: list[Registration], ctx: ssl.SSLContext, tally: _Tally
) -> None:
    # no pool timeout: requests wait for the one HTTP/2 connection httpx opens
    timeout = httpx.Timeout(REQUEST_TIMEOUT, pool=None)
    async with httpx.AsyncClient(http2=True, verify=ctx, timeout=timeout) as client:
        built = provider.build(provider.render(transport.NOTE), group, time.time())
        answers = await asyncio.gather(
            *(
                client.post(r.url, content=r.body, headers=list(r.headers))
                for r in built
                if isinstance(r, Request)
            ),
            return_exceptions=True,
        )
    for answer in answers:
        if isinstance(answer, BaseException):
            tally.error(type(answer).__name__)
        elif answer.status_code in (200, 201):
            tally.ok += 1
        else:
            tally.error(str(answer.status_code))


async def _with_aioapns(
    sims: Simulators, apns: Provider[Any], group: list[Registration], tally: _Tally
) -> None:
    credentials = apns.credentials  # type: ignore[attr-defined]
    setup = delivery_engines.Setup(
        sims,
        credentials,
        credentials.private_key,
        [r.token for r in group],
        max(len(group), 1),  # no bound: one task per token
        len(group),
        REQUEST_TIMEOUT,
    )
    outcome = await delivery_engines.run_aioapns(setup)
    tally.ok += outcome.ok
    for key, n in outcome.other.items():
        tally.error(f"aioapns {key}", n)

"""AioapnsTransport under deliver() against the in-process APNs simulator (h2 engine)."""

from __future__ import annotations

import time
from pathlib import Path

from pushcore.fanout.delivery import deliver
from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.core import Faults, TransportFaults
from pushcore.gateways.fates import Fate, apns_token
from pushcore.gateways.simulators import Simulators
from pushcore.providers.apns import ApnsProvider
from pushcore.providers.base import Outcome, Registration
from pushcore.providers.credentials import ApnsCredentials
from pushcore.providers.notification import ApnsOverrides
from pushcore.providers.registry import notification
from pushcore.transport.base import Failure, Request
from tests.delivery.conftest import TransportFactory

NOTE = notification(title="Hello", body="from the aioapns backend")
EXPECTED = {Fate.LIVE: Outcome.DELIVERED, Fate.DEAD: Outcome.INVALID, Fate.INVALID: Outcome.INVALID}


def registrations(n: int, *, seed: int = 0) -> list[tuple[Registration, Fate]]:
    """Two live tokens out of three; the rest alternate dead (410) and bad (400)."""
    out = []
    for i in range(n):
        fate = Fate.LIVE if i % 3 else (Fate.DEAD if i % 2 else Fate.INVALID)
        out.append((Registration(installation_id=i, token=apns_token(i, fate, seed=seed)), fate))
    return out


async def test_batch_of_500(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    async with Simulators.start(engine="h2", ca_dir=ca_dir, apns=apns_options) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        transport = make_transport(sims)
        regs = registrations(500)
        results = await deliver(
            provider, transport, provider.render(NOTE), [r for r, _ in regs], timeout=30
        )
        for (reg, fate), result in zip(regs, results, strict=True):
            assert result.outcome is EXPECTED[fate], (reg.token, result)
        counters = sims.apns.counters
        live = [r.token for r, fate in regs if fate is Fate.LIVE]
        assert len(live) == 333
        assert all(counters.tokens[t].accepted == 1 for t in live)
        assert counters.by_status[200] == len(live)
        dead = [res for (_, fate), res in zip(regs, results, strict=True) if fate is Fate.DEAD]
        assert all(res.reason == "Unregistered" and res.invalid_since for res in dead)
        assert counters.by_status[410] == len(dead)
        assert counters.by_reason["BadDeviceToken"] == 500 - len(live) - len(dead)


async def test_error_bodies_beyond_one_flow_control_window(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    """4,000 error bodies (~150 KiB) on one connection: aioapns alone stalls after ~64 KiB
    because it never returns window; the transport acknowledges every DATA frame."""
    async with Simulators.start(engine="h2", ca_dir=ca_dir, apns=apns_options) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        regs = [
            Registration(installation_id=i, token=apns_token(i, Fate.DEAD)) for i in range(4000)
        ]
        results = await deliver(
            provider, make_transport(sims), provider.render(NOTE), regs, timeout=20
        )
        assert all(r.outcome is Outcome.INVALID for r in results)
        assert sims.apns.counters.by_status[410] == 4000


async def test_429_is_retry_with_retry_after(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    faults = Faults(error_every=4, error_status=429, retry_after=7)
    async with Simulators.start(
        engine="h2", ca_dir=ca_dir, apns=apns_options, faults=faults
    ) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        regs = [Registration(installation_id=i, token=apns_token(i)) for i in range(40)]
        results = await deliver(
            provider, make_transport(sims), provider.render(NOTE), regs, timeout=10
        )
        retried = [r for r in results if r.outcome is Outcome.RETRY]
        assert len(retried) == 10
        assert all(r.reason == "TooManyRequests" and r.retry_after == 7.0 for r in retried)
        assert sum(r.outcome is Outcome.DELIVERED for r in results) == 30


async def test_rst_stream_fails_fast_instead_of_hanging(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    async with Simulators.start(
        engine="h2",
        ca_dir=ca_dir,
        apns=apns_options,
        transport_faults=TransportFaults(rst_every=5),
    ) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        regs = [Registration(installation_id=i, token=apns_token(i)) for i in range(50)]
        started = time.monotonic()
        results = await deliver(
            provider, make_transport(sims), provider.render(NOTE), regs, timeout=20
        )
        assert time.monotonic() - started < 5  # a hang would last the whole 20 s
        reset = [r for r in results if r.reason == "transport-reset"]
        assert len(reset) == 10
        assert all(r.outcome is Outcome.RETRY for r in reset)
        assert sum(r.outcome is Outcome.DELIVERED for r in results) == 40


async def test_goaway_refuses_without_resending(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    """Each connection goes away after 30 requests: the streams above its last-stream-id
    come back REFUSED (aioapns' own pool would re-send all in-flight ones, duplicating the
    processed ones); sending the refused ones again, on new connections, reaches every
    token exactly once."""
    async with Simulators.start(
        engine="h2",
        ca_dir=ca_dir,
        apns=apns_options,
        transport_faults=TransportFaults(goaway_after=30),
    ) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        transport, rendered = make_transport(sims), provider.render(NOTE)
        regs = [Registration(installation_id=i, token=apns_token(i)) for i in range(101)]
        # One request first, so that the next 100 all go out at once on that connection.
        (first,) = await deliver(provider, transport, rendered, regs[:1], timeout=10)
        assert first.outcome is Outcome.DELIVERED
        results = await deliver(provider, transport, rendered, regs[1:], timeout=10)
        assert [r.reason for r in results] == ["ok"] * 29 + ["transport-refused"] * 71
        pending = regs[30:]
        for _ in range(5):  # the next connections go away after 30 requests too
            results = await deliver(provider, transport, rendered, pending, timeout=10)
            assert {r.reason for r in results} <= {"ok", "transport-refused"}
            pending = [
                reg
                for reg, res in zip(pending, results, strict=True)
                if res.outcome is not Outcome.DELIVERED
            ]
            if not pending:
                break
        assert not pending
        counters = sims.apns.counters
        assert counters.faults["goaway"] >= 3
        assert len(counters.tokens) == 101
        assert all(t.received == 1 and t.accepted == 1 for t in counters.tokens.values())


async def test_unanswered_request_times_out(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    async with Simulators.start(
        engine="h2", ca_dir=ca_dir, apns=apns_options, faults=Faults(latency=2)
    ) as sims:
        transport = make_transport(sims)
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        regs = [Registration(installation_id=i, token=apns_token(i)) for i in range(3)]
        built = provider.build(provider.render(NOTE), regs, time.time())
        requests = [r for r in built if isinstance(r, Request)]
        started = time.monotonic()
        responses = await transport.send(requests, timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert [r.failure for r in responses] == [Failure.TIMEOUT] * 3
        # the abandoned streams were reset and their slots returned: the next batch works
        # (the simulator still waits 2 s per request, so give it the time)
        (again,) = await transport.send(requests[:1], timeout=10)
        assert again.status == 200


async def test_headers_survive_the_conversion(
    credentials: ApnsCredentials,
    apns_options: ApnsOptions,
    ca_dir: Path,
    make_transport: TransportFactory,
) -> None:
    """A push type aioapns' enum lacks, a priority, a collapse id and "now or never"
    expiration: the simulator refuses malformed ones (InvalidPushType, BadPriority...)."""
    overrides = ApnsOverrides(push_type="widgets", priority=5, collapse_id="c1", expiration=0)
    note = notification(title="t", ttl_seconds=0, apns=overrides)
    async with Simulators.start(engine="h2", ca_dir=ca_dir, apns=apns_options) as sims:
        provider = ApnsProvider(credentials, origin=sims.apns.origin)
        regs = [Registration(installation_id=1, token=apns_token(1))]
        (result,) = await deliver(
            provider, make_transport(sims), provider.render(note), regs, timeout=10
        )
        assert result.outcome is Outcome.DELIVERED, result

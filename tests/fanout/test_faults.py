"""Faults survived by real processes: a provider outage longer than the old retry chain
(with the provider-wide pause), PostgreSQL unreachable while a worker writes results back,
and one worker child killed while its siblings have batches in flight."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from pushcore.gateways.core import Faults, TransportFaults
from pushcore.gateways.simulators import H2Simulator, Simulators
from tests.fanout.conftest import Launch, Worker, worker_env
from tests.fanout.harness import Campaign
from tests.fanout.tcp_proxy import TcpProxy
from tests.registry.helpers import Client

pytestmark = pytest.mark.slow

OUTAGE = 10.0  # seconds of 503: the old chain (5 attempts, 0.2 s doubling to 1 s) is ~2 s


async def test_provider_outage_longer_than_the_retry_chain_ends_delivered_with_a_pause(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    """APNs answers 503 to everything for 10 s, then recovers; the message still ends with
    every registration delivered once.  Run without the pause and with it: with it the
    simulator sees far fewer requests during the outage."""
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(40):
            await c.register("ios", i)
        during: dict[str, int] = {}
        for storm_batches in ("0", "3"):
            worker = await launch(
                sims,
                PUSHCORE_BATCH_SIZE="4",
                PUSHCORE_RETRY_WINDOW_SECONDS="60",
                PUSHCORE_STORM_BATCHES=storm_batches,
                PUSHCORE_STORM_WINDOW_SECONDS="5",
                PUSHCORE_STORM_PAUSE_SECONDS="2",
            )
            await sims.apns.set_faults(error_fraction=1.0, error_status=503, retry_after=0)
            before = sims.apns.counters.requests
            sent = await c.send(target={"all": True})
            await asyncio.sleep(OUTAGE)
            during[storm_batches] = sims.apns.counters.requests - before
            await sims.apns.set_faults()
            msg = await c.wait(sent["message_id"], timeout=60)
            assert msg["status"] == "done", msg
            assert msg["counts"]["delivered"] == 40, msg
            assert msg["counts"]["failed"] == 0, msg
            worker.stop()
        for device in c.devices:
            assert c.accepted(device) == 2  # once per message
        # without the pause every batch keeps retrying on its own (~500 requests in 10 s)
        assert during["0"] > 120, during
        assert during["3"] * 3 < during["0"], during


async def test_retries_end_at_the_window_or_the_ttl_not_at_a_count(
    sim_ca_dir: Path,
    database_url: str,
    tmp_path: Path,
    worker_factory: list[Worker],
    api: Client,
) -> None:
    """APNs answers 503 for good.  With a 12 s retry window (the TTL far), retries stop
    once the next one would come due after the window; with a 12 s TTL (the window far)
    the TTL ends them.  The attempt cap is set out of the way (100) so that only time can
    end them."""
    span = 12
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(8):
            await c.register("ios", i)
        await sims.apns.set_faults(error_fraction=1.0, error_status=503, retry_after=0)
        for window, ttl in ((span, 3600), (3600, span)):
            env = worker_env(
                database_url,
                sims,
                PUSHCORE_BATCH_SIZE="4",
                PUSHCORE_MAX_ATTEMPTS="100",
                PUSHCORE_RETRY_WINDOW_SECONDS=str(window),
                PUSHCORE_STORM_BATCHES="0",
            )
            worker = Worker(env, tmp_path / f"worker-{window}.log")  # ready before the send
            worker_factory.append(worker)  # stopped at the end even if it fails to start
            worker.start()
            before = sims.apns.counters.requests
            started = time.monotonic()
            sent = await c.send(target={"all": True}, ttl_seconds=ttl)
            msg = await c.wait(sent["message_id"], timeout=span + 40)
            elapsed = time.monotonic() - started
            assert msg["status"] == "done", msg
            assert msg["counts"]["failed"] == 8, msg
            reasons = msg["failure_reasons"]
            # the last retry due before the TTL may be claimed just after it: "expired"
            ended = ("retries_exhausted",) if ttl > span else ("retries_exhausted", "expired")
            assert sum(n for r, n in reasons.items() if r.startswith(ended)) == 8, msg
            attempts = (sims.apns.counters.requests - before) / 8
            # retried, and ended by time: not before the window (or TTL) was up, and far
            # below the cap of 100 attempts
            assert 2 <= attempts < 100, (attempts, msg)
            assert elapsed > span - 2, elapsed
            worker.stop()


@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once"])
async def test_a_reset_stream_is_resent_only_at_least_once(
    sim_ca_dir: Path, launch: Launch, api: Client, guarantee: str
) -> None:
    """Every 4th APNs request is reset (RST_STREAM INTERNAL_ERROR: the provider may have
    processed it).  At least once: sent again, all delivered.  At most once: counted as
    failed ``uncertain:transport-reset``, never sent again."""
    faults = {"apns": TransportFaults(rst_every=4)}
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, transport_faults=faults) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(8):
            await c.register("ios", i)
        await launch(sims, PUSHCORE_BATCH_SIZE="8", PUSHCORE_DELIVERY_GUARANTEE=guarantee)
        sent = await c.send(target={"all": True})
        msg = await c.wait(sent["message_id"])
        assert msg["status"] == "done", msg
        if guarantee == "at-least-once":
            assert msg["counts"]["delivered"] == 8, msg
            assert all(c.accepted(d) == 1 for d in c.devices)
        else:
            assert msg["counts"]["delivered"] == 6, msg
            assert msg["failure_reasons"].get("uncertain:transport-reset") == 2, msg
            apns = sims.apns
            assert isinstance(apns, H2Simulator)
            assert apns.server.stats.received.total() == 8  # nothing sent again
            assert sorted(c.accepted(d) for d in c.devices) == [0, 0] + [1] * 6


def _port_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


async def test_database_cut_during_write_back_sends_nothing_twice(
    sim_ca_dir: Path,
    database_url: str,
    tmp_path: Path,
    worker_factory: list[Worker],
    api: Client,
) -> None:
    """The worker reaches PostgreSQL through a proxy that the test cuts while batches are
    at the provider (answers take 1.5 s); it comes back 3 s later, within the lease (8 s).
    The worker keeps its results and writes them then: nobody is sent to twice."""
    proxy = TcpProxy(*_port_of(database_url))
    await proxy.start()
    try:
        slow = Faults(latency=1.5)
        async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, faults={"apns": slow}) as sims:
            c = Campaign(api, sims)
            await c.create_app()
            for i in range(24):
                await c.register("ios", i)
            env = worker_env(_through(database_url, proxy.port), sims, PUSHCORE_BATCH_SIZE="4")
            worker = Worker(env, tmp_path / "worker.log")
            worker_factory.append(worker)
            # start() waits for the worker synchronously: off the loop that runs the proxy
            await asyncio.get_running_loop().run_in_executor(None, worker.start)
            sent = await c.send(target={"all": True})
            while sims.apns.counters.requests < 8:  # two batches at the provider
                await asyncio.sleep(0.05)
            await proxy.cut()
            await asyncio.sleep(3.0)
            await proxy.restore()
            msg = await c.wait(sent["message_id"], timeout=60)
            assert msg["status"] == "done", msg
            assert msg["counts"]["delivered"] == 24, msg
            for device in c.devices:
                assert c.accepted(device) == 1, device
            log = worker.log_path.read_text()
            assert "cannot write results" in log  # the write-back really met the outage
            assert "giving up" not in log
    finally:
        await proxy.aclose()


async def _batch_states(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT b.state, count(*) AS n FROM batches b JOIN messages m ON m.id = b.message_id"
            " WHERE m.status IN ('queued', 'sending') GROUP BY b.state"
        )
    finally:
        await conn.close()
    return {row["state"]: row["n"] for row in rows}


def _children(log: str) -> list[int]:
    return sorted({int(pid) for pid in re.findall(r"\[PID (\d+)\].*worker resources ready", log)})


async def test_a_killed_worker_child_stops_the_worker_after_its_siblings_finish(
    sim_ca_dir: Path,
    database_url: str,
    tmp_path: Path,
    worker_factory: list[Worker],
    api: Client,
) -> None:
    """What docs/operations.md says of a worker child's death: Dramatiq's main process
    SIGTERMs the other children, which finish the batches they hold, and exits; the unit's
    restart (here: the test starting the worker again) and the lease do the rest.  Only
    the killed child's batches are sent again."""
    threads, batch = 2, 5
    slow = Faults(latency=1.0)
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, faults={"apns": slow}) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(60):
            await c.register("ios", i)
        env = worker_env(database_url, sims, PUSHCORE_BATCH_SIZE=str(batch))
        command = ["-m", "dramatiq", "workers.boot:setup", "--processes", "2"]
        first = Worker(env, tmp_path / "first.log", [*command, "--threads", str(threads)])
        worker_factory.append(first)  # stopped at the end even if it fails to start
        first.start()
        deadline = time.monotonic() + 30
        while len(_children(first.log_path.read_text())) < 2:
            assert time.monotonic() < deadline, first.log_path.read_text()[-2000:]
            await asyncio.sleep(0.1)
        sent = await c.send(target={"all": True})
        while (await _batch_states(database_url)).get("sending", 0) < 2 * threads:
            await asyncio.sleep(0.05)  # both children busy
        victim = _children(first.log_path.read_text())[0]
        os.kill(victim, signal.SIGKILL)
        assert first.proc is not None
        code = await asyncio.get_running_loop().run_in_executor(None, first.proc.wait, 30)
        assert code != 0  # a failure exit: systemd's Restart=on-failure restarts it
        log = first.log_path.read_text()
        assert "exited unexpectedly" in log
        # the sibling finished and wrote back what it held; only the victim's are left
        assert (await _batch_states(database_url)).get("sending", 0) <= threads
        second = Worker(env, tmp_path / "second.log", [*command, "--threads", str(threads)])
        worker_factory.append(second)
        second.start()
        msg = await c.wait(sent["message_id"], timeout=90)
        assert msg["status"] == "done", msg
        assert msg["counts"]["delivered"] == 60, msg
        twice = sum(c.accepted(d) - 1 for d in c.devices)
        assert all(1 <= c.accepted(d) <= 2 for d in c.devices)
        assert twice <= threads * batch  # at most the victim's batches in flight

"""Local-time delivery (``send_at_local``) through HTTP, PostgreSQL, real Dramatiq workers
and the simulators.

The workers' schedule clock is moved with PUSHCORE_CLOCK_OFFSET_SECONDS (the SQL
``clock_now()`` and ``Settings.now()`` read it): each phase starts workers whose clock is
a few seconds before the next zone's time, so a test sees every group released at its time
without waiting 15 minutes between zones.  The API of the test process keeps the real
clock, as it does for accepting the send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pushcore.config import Settings
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Worker, worker_env
from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import Client

pytestmark = pytest.mark.slow

DHAKA, KATHMANDU, KOLKATA, TOKYO = "Asia/Dhaka", "Asia/Kathmandu", "Asia/Kolkata", "Asia/Tokyo"
NOTE = {"title": "Good morning"}
# how late a group may arrive after its time: a reaper pass (0.5 s in the tests' workers),
# a claim and a send, on a loaded 2-core machine
LATE = 30.0


class Phases:
    """Workers started one after the other, each with its own clock offset."""

    def __init__(self, database_url: str, sims: Simulators, tmp: Path, into: list[Worker]):
        self.database_url, self.sims, self.tmp, self.workers = database_url, sims, tmp, into

    def start(self, clock_at: dt.datetime) -> float:
        """Stop the running workers and start one whose clock reads ``clock_at`` now;
        return its offset (seconds)."""
        for w in self.workers:
            w.stop()
        offset = (clock_at - dt.datetime.now(dt.UTC)).total_seconds()
        env = worker_env(self.database_url, self.sims, PUSHCORE_CLOCK_OFFSET_SECONDS=str(offset))
        worker = Worker(env, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        worker.start()
        return offset


@pytest.fixture
def phases(
    database_url: str, sims: Simulators, tmp_path: Path, worker_factory: list[Worker]
) -> Phases:
    return Phases(database_url, sims, tmp_path, worker_factory)


def wall_clock(zone: str, at: dt.datetime) -> dt.datetime:
    """What the clock on the wall in ``zone`` reads at ``at`` (whole seconds)."""
    return at.astimezone(zoneinfo.ZoneInfo(zone)).replace(tzinfo=None, microsecond=0)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def arrived(c: Campaign, devices: list[Device]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(c.accepted(d) == 1 for d in devices)

    return check


def on_time(c: Campaign, devices: list[Device], due: dt.datetime, offset: float) -> None:
    """Each device got its push at ``due`` by the workers' clock: not before (the claim
    takes a batch at most one second early), and not much later."""
    for d in devices:
        got = c.accepted_at(d)
        assert got is not None, d
        late = got + offset - due.timestamp()
        assert -1.0 <= late <= LATE, (d, late)


async def zone_devices(c: Campaign, zones: dict[str, int]) -> dict[str, list[Device]]:
    out: dict[str, list[Device]] = {}
    i = 0
    for zone, n in zones.items():
        out[zone] = []
        for _ in range(n):
            platform = ("ios", "android", "web")[i % 3]
            device = {} if zone == "" else {"time_zone": zone}
            out[zone].append(await c.register(platform, i, device=device))
            i += 1
    return out


async def test_local_time_releases_each_zone_at_its_time_with_its_own_ttl(
    api: Client, sims: Simulators, phases: Phases
) -> None:
    """Dhaka (UTC+6), Kathmandu (+5:45, also the default zone of an installation without
    one) and Kolkata (+5:30) get 09:00-style local time 15 minutes apart; Tokyo's time had
    passed when the send was accepted.  A small list target: the send skips the lane."""
    c = Campaign(api, sims)
    await c.create_app()
    groups = await zone_devices(c, {DHAKA: 3, KATHMANDU: 3, KOLKATA: 2, TOKYO: 1, "": 1})
    local = wall_clock(DHAKA, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20))
    due = {z: local.replace(tzinfo=zoneinfo.ZoneInfo(z)) for z in (DHAKA, KATHMANDU, KOLKATA)}
    ids = [d.installation_id for g in groups.values() for d in g]
    sent = await c.send(
        target={"installation_ids": ids},
        notification=NOTE,
        send_at_local=local.isoformat(),
        default_time_zone=KATHMANDU,
        ttl_seconds=600,
    )
    assert sent["status"] == "scheduled"
    mid = sent["message_id"]

    offset = phases.start(due[DHAKA] - dt.timedelta(seconds=4))
    await until(arrived(c, groups[DHAKA]), "Dhaka's pushes")
    on_time(c, groups[DHAKA], due[DHAKA], offset)

    async def first_phase_counted() -> bool:
        counts = (await c.message(mid))["counts"]
        return bool(counts["delivered"] == 3 and counts["failed"] == 1)

    await until(first_phase_counted, "Dhaka delivered and Tokyo skipped")
    msg = await c.message(mid)
    assert msg["status"] == "scheduled", msg
    assert msg["counts"]["targeted"] == 10
    assert msg["counts"]["waiting"] == 3 + 2 + 1  # Kathmandu with the default one, Kolkata
    assert msg["failure_reasons"] == {"local_time_passed": 1}
    later = groups[KATHMANDU] + groups[KOLKATA] + groups[""] + groups[TOKYO]
    assert all(c.received(d) == 0 for d in later)

    offset = phases.start(due[KATHMANDU] - dt.timedelta(seconds=4))
    kathmandu = groups[KATHMANDU] + groups[""]
    await until(arrived(c, kathmandu), "Kathmandu's pushes")
    # 15 minutes after Dhaka's time and after the send was accepted: a message-wide TTL of
    # 600 s would have expired them; each batch's counts from its own time
    on_time(c, kathmandu, due[KATHMANDU], offset)

    async def second_phase_counted() -> bool:
        return bool((await c.message(mid))["counts"]["delivered"] == 7)

    await until(second_phase_counted, "Kathmandu delivered")
    msg = await c.message(mid)
    assert msg["status"] == "scheduled", msg
    assert msg["counts"]["waiting"] == 2
    assert all(c.received(d) == 0 for d in groups[KOLKATA])

    # Kolkata's workers come up 700 s after its time: past its own TTL (600 s)
    phases.start(due[KOLKATA] + dt.timedelta(seconds=700))
    msg = await c.wait(mid)
    assert msg["status"] == "done", msg
    assert msg["counts"]["waiting"] == 0
    assert msg["counts"]["delivered"] == 7
    assert msg["counts"]["failed"] == 3
    assert msg["failure_reasons"] == {"local_time_passed": 1, "expired": 2}
    assert all(c.received(d) == 0 for d in groups[KOLKATA] + groups[TOKYO])
    assert all(c.accepted(d) == 1 for d in groups[DHAKA] + kathmandu)


async def test_cancel_of_a_partly_released_local_time_message(
    api: Client, sims: Simulators, phases: Phases
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    groups = await zone_devices(c, {DHAKA: 2, KATHMANDU: 2, KOLKATA: 2})
    local = wall_clock(DHAKA, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20))
    due = {z: local.replace(tzinfo=zoneinfo.ZoneInfo(z)) for z in (DHAKA, KATHMANDU, KOLKATA)}
    sent = await c.send(
        target={"all": True},
        notification=NOTE,
        send_at_local=local.isoformat(),
        default_time_zone="Europe/Lisbon",
    )
    mid = sent["message_id"]
    phases.start(due[DHAKA] - dt.timedelta(seconds=3))
    await until(arrived(c, groups[DHAKA]), "Dhaka's pushes")

    async def delivered() -> bool:
        return bool((await c.message(mid))["counts"]["delivered"] == 2)

    await until(delivered, "Dhaka delivered")
    resp = await api.delete(f"/v1/apps/{c.code}/messages/{mid}", headers=c.server)
    cancelled: dict[str, Any] = await resp.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"]["waiting"] == 0
    assert cancelled["counts"]["delivered"] == 2
    assert cancelled["failure_reasons"] == {"cancelled": 4}

    # a clock past every zone's time: the cancelled groups are never released or sent
    phases.start(due[KOLKATA] + dt.timedelta(seconds=5))
    await asyncio.sleep(3)  # six reaper passes of the new worker
    assert all(c.received(d) == 0 for d in groups[KATHMANDU] + groups[KOLKATA])
    msg = await c.message(mid)
    assert msg["status"] == "cancelled"
    assert msg["counts"]["delivered"] == 2
    assert msg["counts"]["failed"] == 4
    assert msg["counts"]["pending"] == 0


async def test_planner_pages_in_zone_order_keep_batches_full(
    api: Client, sims: Simulators, fanout_settings: Settings
) -> None:
    """Pages of 8 over installations registered round-robin across three zones and none:
    read in id order each page would hold four zones (batches of 2); in (zone, id) order
    the batches are full but for each zone's last, every batch has one due time, its
    zone's, and every installation is in exactly one.  Planned by the planner's function
    on the real database and broker; nothing is due, so nothing is enqueued."""
    from pushcore.db.pool import create_pool
    from pushcore.fanout import localtime, planning
    from workers.broker import close_broker, make_broker
    from workers.enqueue import DramatiqEnqueuer

    c = Campaign(api, sims)
    await c.create_app()
    zones = [DHAKA, KATHMANDU, KOLKATA, ""]
    by_zone: dict[str, list[Device]] = {z: [] for z in zones}
    for i in range(36):
        zone = zones[i % 4]
        by_zone[zone].append(
            await c.register("android", i, device={"time_zone": zone} if zone else {})
        )
    local = wall_clock(DHAKA, dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
    sent = await c.send(
        target={"all": True}, send_at_local=local.isoformat(), default_time_zone="Asia/Karachi"
    )
    settings = dataclasses.replace(fanout_settings, batch_size=4, plan_batches_per_statement=2)
    pool = await create_pool(settings, max_size=2)
    broker = make_broker(settings)
    try:
        mid = await pool.fetchval(
            "SELECT id FROM messages WHERE public_id = $1", sent["message_id"]
        )
        assert await planning.plan(pool, settings, DramatiqEnqueuer(broker), mid) == "scheduled"
        rows = await pool.fetch(
            "SELECT installation_ids, due_at, held FROM batches WHERE message_id = $1", mid
        )
        ids = {
            await pool.fetchval(
                "SELECT id FROM installations WHERE public_id = $1", d.installation_id
            ): z
            for z, ds in by_zone.items()
            for d in ds
        }
    finally:
        await asyncio.to_thread(close_broker, broker)
        await pool.close()
    planned = [i for r in rows for i in r["installation_ids"]]
    assert sorted(planned) == sorted(ids)
    for r in rows:
        (zone,) = {ids[i] for i in r["installation_ids"]}
        assert r["due_at"] == localtime.instant(local, zone or "Asia/Karachi")
        assert r["held"]
    # 9 per zone, in zone order ("", Dhaka, Kathmandu, Kolkata), pages of 8:
    # [4 4] [1 | 4 3] [2 | 4 2] [3 | 4 1] [4]: 12 batches; in id order each page would have
    # held 2 of each zone: 18 batches of 2
    assert sorted(len(r["installation_ids"]) for r in rows) == [1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4]
    msg = await c.message(sent["message_id"])
    assert (msg["status"], msg["counts"]["waiting"], msg["counts"]["targeted"]) == (
        "scheduled", 36, 36,
    )  # fmt: skip


async def test_a_released_batch_whose_enqueue_was_lost_is_handed_out_by_the_reaper(
    api: Client, sims: Simulators, fanout_settings: Settings, phases: Phases
) -> None:
    """The release pass commits (held cleared, recipients no longer waiting) and its
    process dies before the enqueue: the ledger still says the batch is queued and due,
    so the next worker's reaper hands it out after PUSHCORE_REQUEUE_AFTER_SECONDS."""
    from pushcore.db import reaping
    from pushcore.db.pool import create_pool
    from pushcore.fanout import planning
    from workers.broker import close_broker, make_broker
    from workers.enqueue import DramatiqEnqueuer

    c = Campaign(api, sims)
    await c.create_app()
    devices = [await c.register("ios", i, device={"time_zone": DHAKA}) for i in range(2)]
    local = wall_clock(DHAKA, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20))
    due = local.replace(tzinfo=zoneinfo.ZoneInfo(DHAKA))
    sent = await c.send(
        target={"all": True}, send_at_local=local.isoformat(), default_time_zone=DHAKA
    )
    pool = await create_pool(fanout_settings, max_size=2)
    ahead = dataclasses.replace(
        fanout_settings,
        clock_offset_seconds=(due - dt.datetime.now(dt.UTC)).total_seconds() + 1,
    )
    pool_ahead = await create_pool(ahead, max_size=2)
    broker = make_broker(fanout_settings)
    try:
        mid = await pool.fetchval(
            "SELECT id FROM messages WHERE public_id = $1", sent["message_id"]
        )
        assert (
            await planning.plan(pool, fanout_settings, DramatiqEnqueuer(broker), mid) == "scheduled"
        )
        assert await reaping.release_held(pool, 100) == []  # not due by the real clock
        # due: released (one batch), and the enqueue that would follow never happens
        assert len(await reaping.release_held(pool_ahead, 100)) == 1
    finally:
        await asyncio.to_thread(close_broker, broker)
        await pool.close()
        await pool_ahead.close()
    msg = await c.message(sent["message_id"])
    assert (msg["status"], msg["counts"]["waiting"]) == ("sending", 0)
    assert all(c.received(d) == 0 for d in devices)
    phases.start(due + dt.timedelta(seconds=2))
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done"
    assert msg["counts"]["delivered"] == 2
    assert all(c.accepted(d) == 1 for d in devices)

"""The transactional lane end to end: real worker processes, the simulators, the HTTP API.

A send to a small target is planned when it is accepted (its 202 already says whom it
targets) and sent by the workers' lane loops; these tests prove it keeps every promise a
broadcast keeps: counts, retries, TTL, cancel, idempotency, sender errors, dead tokens,
a killed worker and a flushed Redis, and that a running broadcast does not hold it up.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import redis

from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.core import Faults
from pushcore.gateways.simulators import Simulators
from pushcore.providers import registry
from tests.fanout.conftest import REDIS_URL, Launch, Worker, worker_env
from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import Client, json
from workers.broker import PLAN_QUEUE


async def _users(c: Campaign, n: int, platforms: tuple[str, ...], dead_every: int = 0) -> None:
    """User ``u<k>`` gets one installation per platform; every ``dead_every``-th device
    has a token the simulators answer as dead."""
    for k in range(n):
        for j, platform in enumerate(platforms):
            i = k * len(platforms) + j
            live = not (dead_every and i % dead_every == dead_every - 1)
            device = await c.register(platform, i, live=live)
            await c.personalize(device, f"u{k}")


def _of(c: Campaign, user: int, per_user: int) -> list[Device]:
    return c.devices[user * per_user : (user + 1) * per_user]


async def test_small_send_is_planned_at_once_and_delivered(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 3, ("ios", "android", "web"), dead_every=4)
    await launch(sims)
    sent = await c.send(target={"external_user_ids": ["u0", "u1"]})
    # planned in the statement that accepted it: no plan job, the audience already known
    assert sent["status"] == "sending"
    assert sent["counts"]["targeted"] == 6
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    mine = _of(c, 0, 3) + _of(c, 1, 3)
    live = [d for d in mine if d.live]
    dead = [d for d in mine if not d.live]
    assert dead, "the fixture must include a dead token"
    assert msg["counts"]["delivered"] == len(live)
    assert msg["counts"]["invalid_removed"] == len(dead)
    assert all(c.accepted(d) == 1 for d in live)
    assert not any([await c.exists(d) for d in dead])
    assert all(c.received(d) == 0 for d in _of(c, 2, 3))  # u2 was not targeted


async def test_many_small_sends_each_keep_their_counts(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 30, ("android", "ios"))
    await launch(sims)
    sent = await asyncio.gather(
        *(c.send(target={"external_user_ids": [f"u{k}"]}) for k in range(30))
    )
    sent.append(await c.send(target={"external_user_ids": ["nobody"]}))
    for k, s in enumerate(sent):
        msg = await c.wait(s["message_id"])
        expected = 0 if k == 30 else 2
        assert (msg["status"], msg["counts"]["delivered"]) == ("done", expected), msg
    assert all(c.accepted(d) == 1 for d in c.devices)


async def test_lane_retries_after_503_and_429(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    faults = {
        "apns": Faults(error_every=2, error_status=429, retry_after=0),
        "fcm": Faults(error_every=3, error_status=503, retry_after=0),
    }
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, faults=faults) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        await _users(c, 6, ("ios", "android"))
        # One-device batches failing half the time are a storm by the default settings
        # (5 failing batches in 10 s pause the provider for 30 s and more); this test is
        # about each batch's own retries, so storms are off (test_faults covers them).
        await launch(sims, PUSHCORE_STORM_BATCHES="0")
        sent = [await c.send(target={"external_user_ids": [f"u{k}"]}) for k in range(6)]
        for s in sent:
            msg = await c.wait(s["message_id"])
            assert (msg["status"], msg["counts"]["delivered"]) == ("done", 2), msg
        assert all(c.accepted(d) == 1 for d in c.devices)
        assert sims.apns.counters.snapshot()["by_status"].get("429", 0) > 0


async def test_ttl_cancel_and_idempotency(api: Client, sims: Simulators, launch: Launch) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 3, ("android",))
    # no worker yet: the lane batches wait in the ledger
    expiring = await c.send(target={"external_user_ids": ["u0"]}, ttl_seconds=1)
    cancelled = await c.send(target={"external_user_ids": ["u1"]})
    resp = await api.delete(
        f"/v1/apps/{c.code}/messages/{cancelled['message_id']}", headers=c.server
    )
    body = await json(resp, 200)
    assert body["status"] == "cancelled"
    assert body["failure_reasons"] == {"cancelled": 1}
    first = await c.send(target={"external_user_ids": ["u2"]}, idempotency_key="order-7")
    again = await c.send(
        status=200, target={"external_user_ids": ["u2"]}, idempotency_key="order-7"
    )
    assert again["message_id"] == first["message_id"]
    await asyncio.sleep(1.5)
    await launch(sims)
    msg = await c.wait(expiring["message_id"])
    assert (msg["counts"]["failed"], msg["failure_reasons"]) == (1, {"expired": 1})
    assert (await c.wait(first["message_id"]))["counts"]["delivered"] == 1
    assert [c.accepted(d) for d in c.devices] == [0, 0, 1]
    assert (await c.message(cancelled["message_id"]))["counts"]["delivered"] == 0


async def test_sender_error_fails_the_message_and_deletes_nothing(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, apns=ApnsOptions(topics=["com.someone.else"])
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app(topic="com.example.app")
        await _users(c, 2, ("ios",), dead_every=2)
        await launch(sims)
        sent = await c.send(target={"external_user_ids": ["u0", "u1"]})
        msg = await c.wait(sent["message_id"], states=("failed",))
        assert any("TopicDisallowed" in e for e in msg["errors"]), msg
        assert msg["counts"]["invalid_removed"] == 0
        assert all([await c.exists(d) for d in c.devices])


async def test_killed_worker_and_flushed_redis_lose_no_lane_message(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    slow = Faults(latency=0.3)
    faults = {"apns": slow, "fcm": slow, "webpush": slow}
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, faults=faults) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        await _users(c, 20, ("ios", "web"))
        # a short lease, so that the killed worker's claims come back within the test
        env = {"PUSHCORE_LEASE_SECONDS": "6", "PUSHCORE_LANE_CLAIM_BATCHES": "4"}
        first = await launch(sims, **env)
        sent = [await c.send(target={"external_user_ids": [f"u{k}"]}) for k in range(20)]
        while sum(c.received(d) for d in c.devices) == 0:
            await asyncio.sleep(0.05)
        first.kill()
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        client.close()
        await launch(sims, **env)
        for s in sent:
            msg = await c.wait(s["message_id"], timeout=90)
            assert (msg["status"], msg["counts"]["delivered"]) == ("done", 2), msg
        for d in c.devices:
            # at least once; twice only if its claim was in flight when the worker died
            assert 1 <= c.accepted(d) <= 2, d
        launch.stop_all()


async def test_a_running_broadcast_does_not_hold_the_lane_up(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    """A broadcast of many small batches to a slow provider fills the provider queue; a
    one-user message sent meanwhile is done while the broadcast is still going."""
    slow = Faults(latency=0.1)
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir, faults={"fcm": slow}) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(600):
            await c.register("android", i)
        person = await c.register("ios", 10_000)
        await c.personalize(person, "vip")
        await launch(sims, PUSHCORE_BATCH_SIZE="5")
        broadcast = await c.send(target={"all": True}, platforms=["android"])
        while (await c.message(broadcast["message_id"]))["counts"]["delivered"] < 20:
            await asyncio.sleep(0.05)
        one = await c.send(target={"external_user_ids": ["vip"]})
        msg = await c.wait(one["message_id"], timeout=30)
        assert msg["counts"]["delivered"] == 1
        during = await c.message(broadcast["message_id"])
        assert during["status"] == "sending", during  # the broadcast had not finished
        assert during["counts"]["delivered"] < 600
        final = await c.wait(broadcast["message_id"], timeout=120)
        assert final["counts"]["delivered"] == 600


async def test_batch_route_answers_each_send_on_its_own(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 2, ("android",))
    await launch(sims)
    first = await c.send(target={"external_user_ids": ["u1"]}, idempotency_key="k1")
    items: list[dict[str, Any]] = [
        {"target": {"external_user_ids": ["u0"]}, "notification": {"title": "a"}},
        {"target": {"external_user_ids": ["u0"]}, "notification": {"title": 5}},
        {"target": {"all": True, "tags": ["x"]}, "notification": {"title": "b"}},
        {
            "target": {"external_user_ids": ["u1"]},
            "notification": {"title": "c"},
            "idempotency_key": "k1",
        },
    ]
    resp = await api.post(
        f"/v1/apps/{c.code}/messages:batch", json={"messages": items}, headers=c.server
    )
    results = (await json(resp, 200))["results"]
    assert [r["status"] for r in results] == [202, 422, 422, 200]
    assert results[1]["error"]["field"] == "messages[1].notification.title"
    assert results[2]["error"]["field"] == "messages[2].target"
    assert results[3]["message"]["message_id"] == first["message_id"]
    done = await c.wait(results[0]["message"]["message_id"])
    assert done["counts"]["delivered"] == 1
    from pushcore.client import PushcoreClient

    base = str(api.make_url("")).rstrip("/")
    async with PushcoreClient(base, c.code, c.server_key) as push:
        answers = await push.send_many(items[:2])
    assert [a["status"] for a in answers] == [202, 422]
    too_many = {"messages": [items[0]] * 1001}
    resp = await api.post(f"/v1/apps/{c.code}/messages:batch", json=too_many, headers=c.server)
    assert (await json(resp, 422))["error"]["field"] == "messages"


async def test_lane_loops_claim_only_the_platforms_of_their_queues(
    api: Client,
    sims: Simulators,
    launch: Launch,
    database_url: str,
    tmp_path: Path,
    worker_factory: list[Worker],
) -> None:
    """A worker started with ``--queues`` for APNs alone sends a small message's iOS lane
    batch but leaves its Android one to the workers of the FCM queue."""
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 1, ("ios", "android"))
    ios, android = c.devices
    apns_only = Worker(
        worker_env(database_url, sims),
        tmp_path / "apns-only.log",
        command=[
            *("-m", "dramatiq", "workers.boot:setup", "--processes", "1", "--threads", "2"),
            *("--queues", PLAN_QUEUE, registry.spec("ios").queue),
        ],
    )
    worker_factory.append(apns_only)
    apns_only.start()
    sent = await c.send(target={"external_user_ids": ["u0"]})
    for _ in range(300):
        if c.accepted(ios):
            break
        await asyncio.sleep(0.05)
    assert c.accepted(ios) == 1
    # well past a lane claim (milliseconds) and a reaper re-enqueue (3 s here): nobody
    # consumes the FCM queue, so the Android batch is still waiting
    await asyncio.sleep(4)
    msg = await c.message(sent["message_id"])
    assert (msg["status"], msg["counts"]["delivered"]) == ("sending", 1), msg
    assert c.accepted(android) == 0
    await launch(sims)  # every queue
    msg = await c.wait(sent["message_id"])
    assert (msg["status"], msg["counts"]["delivered"]) == ("done", 2), msg
    assert (c.accepted(ios), c.accepted(android)) == (1, 1)


async def test_cancel_skips_a_batch_another_transaction_holds(
    api: Client, sims: Simulators, launch: Launch, database_url: str
) -> None:
    """Cancel never waits for a batch row another transaction holds: a write-back locks its
    batch, then its message, and cancel (message, then batches) waiting for the batch was a
    deadlock.  It closes the other batches; the held one, claimed later, is decided as the
    cancelled message's without sending."""
    c = Campaign(api, sims)
    await c.create_app()
    await _users(c, 1, ("ios", "android"))
    ios, android = c.devices
    sent = await c.send(target={"external_user_ids": ["u0"]})  # no worker: both queued
    message = uuid.UUID(sent["message_id"])
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "SELECT b.id FROM batches b JOIN messages m ON m.id = b.message_id "
            "WHERE m.public_id = $1 AND b.platform = 'ios' FOR UPDATE OF b",
            message,
        )
        resp = await asyncio.wait_for(
            api.delete(f"/v1/apps/{c.code}/messages/{sent['message_id']}", headers=c.server),
            timeout=15,
        )
        assert (await json(resp, 200))["status"] == "cancelled"
        # the write-back's second step, its message: it waits for nothing now
        await asyncio.wait_for(
            conn.execute("UPDATE messages SET delivered = delivered WHERE public_id = $1", message),
            timeout=15,
        )
        await tx.rollback()
        rows = await conn.fetch(
            "SELECT b.platform, b.state FROM batches b JOIN messages m ON m.id = b.message_id "
            "WHERE m.public_id = $1",
            message,
        )
        states = {r["platform"]: r["state"] for r in rows}
        assert states == {"ios": "queued", "android": "done"}
    finally:
        await conn.close()
    await launch(sims)
    msg = await c.wait(sent["message_id"], states=("cancelled",))
    for _ in range(200):  # the ios batch, claimed now, decided without sending
        msg = await c.message(sent["message_id"])
        if msg["counts"]["failed"] == 2:
            break
        await asyncio.sleep(0.05)
    assert msg["failure_reasons"] == {"cancelled": 1, "message_cancelled": 1}, msg
    assert (c.accepted(ios), c.accepted(android)) == (0, 0)

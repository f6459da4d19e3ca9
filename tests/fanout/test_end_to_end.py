"""The fan-out end to end: API → PostgreSQL → planner → Redis → Dramatiq worker →
providers → HTTP/2 → simulators → results back in PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pushcore.config import Settings
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import Client

pytestmark = pytest.mark.slow


async def test_broadcast_delivers_live_and_deletes_dead(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    campaign = Campaign(api, sims)
    await campaign.create_app()
    for platform in ("ios", "android", "web"):
        for i in range(25):
            await campaign.register(platform, i, live=i % 8 != 0)
    await launch(sims)
    sent = await campaign.send(target={"all": True})
    msg = await campaign.wait(sent["message_id"])
    live = [d for d in campaign.devices if d.live]
    dead = [d for d in campaign.devices if not d.live]
    assert msg["status"] == "done", msg
    assert msg["counts"]["targeted"] == 75
    assert msg["counts"]["delivered"] == len(live)
    assert msg["counts"]["invalid_removed"] == len(dead)
    assert msg["counts"]["failed"] == 0
    for device in live:
        assert campaign.accepted(device) == 1, device
        assert await campaign.exists(device)
    for device in dead:
        assert not await campaign.exists(device), device


async def test_each_target_kind_reaches_exactly_its_registrations(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    ann_phone = await c.register("ios", 1, tags=["news", "sports"])
    ann_tablet = await c.register("android", 2, tags=["news"])
    ann_web = await c.register("web", 3)
    bob_phone = await c.register("ios", 4, tags=["sports"])
    anon = await c.register("android", 5, tags=["news", "sports"])
    muted = await c.register("ios", 6, tags=["news"], push_enabled=False)
    for d in (ann_phone, ann_tablet, ann_web):
        await c.personalize(d, "ann", email="Ann@Example.com", msisdn="+15550000001")
    await c.personalize(bob_phone, "bob", email="bob@example.com")
    await api.put(
        f"/v1/apps/{c.code}/installations/{ann_tablet.installation_id}/primary",
        json={"primary": True},
        headers=c.server,
    )
    await launch(sims)
    cases: list[tuple[dict[str, Any], list[Device]]] = [
        ({"target": {"tags": ["news"]}}, [ann_phone, ann_tablet, anon]),
        ({"target": {"tags": ["news", "sports"], "match": "all"}}, [ann_phone, anon]),
        (
            {"target": {"external_user_ids": ["ann", "ann", "nobody"]}},
            [ann_phone, ann_tablet, ann_web],
        ),
        (
            {"target": {"external_user_ids": ["ann", "bob"]}, "primary_only": True},
            [ann_tablet, bob_phone],
        ),
        (
            {"target": {"emails": ["ANN@example.com"]}, "platforms": ["ios", "web"]},
            [ann_phone, ann_web],
        ),
        ({"target": {"msisdns": ["+15550000001"]}}, [ann_phone, ann_tablet, ann_web]),
        ({"target": {"installation_ids": [anon.installation_id, muted.installation_id]}}, [anon]),
        ({"target": {"all": True}, "primary_only": True}, [ann_tablet, bob_phone, anon]),
    ]
    everyone = [ann_phone, ann_tablet, ann_web, bob_phone, anon, muted]
    for body, expected in cases:
        before = {d.installation_id: c.accepted(d) for d in everyone}
        sent = await c.send(**body)
        msg = await c.wait(sent["message_id"])
        reached = [d for d in everyone if c.accepted(d) > before[d.installation_id]]
        assert sorted(d.installation_id for d in reached) == sorted(
            d.installation_id for d in expected
        ), body
        assert all(c.accepted(d) == before[d.installation_id] + 1 for d in reached), body
        assert msg["counts"]["targeted"] == len(expected)
        assert msg["counts"]["delivered"] == len(expected)


async def test_retries_after_429_and_503_end_delivered(
    sim_ca_dir: Path,
    launch: Launch,
    api: Client,
) -> None:
    from pushcore.gateways.core import Faults

    faults = {
        "apns": Faults(error_every=3, error_status=429, retry_after=0),
        "android": Faults(),
        "fcm": Faults(error_every=4, error_status=503, retry_after=0),
    }
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, faults={k: v for k, v in faults.items() if k != "android"}
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(20):
            await c.register("ios", i)
            await c.register("android", i)
        await launch(sims)
        sent = await c.send(target={"all": True}, platforms=["ios", "android"])
        msg = await c.wait(sent["message_id"])
        assert msg["status"] == "done", msg
        assert msg["counts"]["delivered"] == 40, msg
        assert msg["counts"]["failed"] == 0
        assert sims.apns.counters.snapshot()["by_status"].get("429", 0) > 0
        for d in c.devices:
            assert c.accepted(d) == 1


async def test_sender_error_stops_the_message_and_deletes_nothing(
    sim_ca_dir: Path,
    launch: Launch,
    api: Client,
) -> None:
    from pushcore.gateways.apns import ApnsOptions

    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, apns=ApnsOptions(topics=["com.someone.else"])
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app(topic="com.example.app")
        devices = [await c.register("ios", i, live=i % 2 == 0) for i in range(30)]
        await launch(sims)
        sent = await c.send(target={"all": True}, platforms=["ios"])
        msg = await c.wait(sent["message_id"], states=("failed",))
        assert msg["status"] == "failed"
        assert any("TopicDisallowed" in e for e in msg["errors"]), msg
        assert msg["counts"]["invalid_removed"] == 0
        for d in devices:
            assert await c.exists(d)
        # the counts still add up once the remaining batches drained
        final = await c.wait(sent["message_id"], states=("failed",))
        assert final["counts"]["delivered"] == 0


async def test_send_at_schedules_and_cancel_stops(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    import datetime as dt

    c = Campaign(api, sims)
    await c.create_app()
    devices = [await c.register("android", i) for i in range(5)]
    await launch(sims)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    scheduled = await c.send(target={"all": True}, send_at=soon)
    assert scheduled["status"] == "scheduled"
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    cancelled = await c.send(target={"all": True}, send_at=later)
    resp = await api.delete(
        f"/v1/apps/{c.code}/messages/{cancelled['message_id']}", headers=c.server
    )
    assert (await resp.json())["status"] == "cancelled"
    msg = await c.wait(scheduled["message_id"])
    assert msg["counts"]["delivered"] == 5
    assert all(c.accepted(d) == 1 for d in devices)
    assert (await c.message(cancelled["message_id"]))["counts"]["delivered"] == 0


async def test_idempotency_key_returns_the_first_message(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await c.register("ios", 1)
    first = await c.send(target={"all": True}, idempotency_key="order-42")
    again = await c.send(status=200, target={"all": True}, idempotency_key="order-42")
    assert again["message_id"] == first["message_id"]


async def test_killed_worker_and_flushed_redis_still_answer_everyone(
    sim_ca_dir: Path,
    launch: Launch,
    api: Client,
) -> None:
    """SIGKILL the only worker while batches are in flight, flush Redis (every queued
    message lost), start a new worker: the ledger and the reaper finish the campaign."""
    import asyncio

    import redis

    from pushcore.gateways.core import Faults
    from tests.fanout.conftest import REDIS_URL

    slow = Faults(latency=0.2)
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, faults={"apns": slow, "fcm": slow, "webpush": slow}
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(40):
            await c.register(("ios", "android", "web")[i % 3], i, live=i % 10 != 0)
        first = await launch(sims, PUSHCORE_BATCH_SIZE="4")
        sent = await c.send(target={"all": True})
        while (await c.message(sent["message_id"]))["counts"]["delivered"] == 0:
            await asyncio.sleep(0.05)
        first.kill()
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        client.close()
        await launch(sims, PUSHCORE_BATCH_SIZE="4")
        msg = await c.wait(sent["message_id"], timeout=90)
        assert msg["status"] == "done", msg
        c_ = msg["counts"]
        live = [d for d in c.devices if d.live]
        dead = [d for d in c.devices if not d.live]
        assert c_["targeted"] == 40
        assert c_["delivered"] == len(live)
        assert c_["invalid_removed"] == len(dead)
        for d in live:
            # at least once; twice only if its batch was in flight when the worker died
            assert 1 <= c.accepted(d) <= 2, d
        for d in dead:
            assert not await c.exists(d)
        launch.stop_all()


@pytest.mark.timeout(300)  # the demo's own processes, seeding and campaign on 2 cores
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_demo_campaign_runs_green(database_url: str, broker: str) -> None:
    """``make demo``'s main job at a small size, on either broker: processes, campaign and
    its own check against the simulators."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env["PUSHCORE_DATABASE_URL"] = database_url
    from tests.fanout.conftest import REDIS_URL

    env["PUSHCORE_REDIS_URL"] = REDIS_URL
    env["PUSHCORE_BROKER"] = broker
    out = subprocess.run(
        [sys.executable, "-m", "pushcore", "demo", "--devices", "3000", "--processes", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "check: every live registration delivered exactly once" in out.stdout
    assert "user-1's inbox: 2 messages, 2 unread" in out.stdout
    assert "marked the news seen: 1 unread" in out.stdout
    assert "INBOX CHECK FAILED" not in out.stdout


async def test_opened_reports_count_into_the_message(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    from tests.registry.helpers import bearer

    c = Campaign(api, sims)
    await c.create_app()
    device = await c.register("ios", 1)
    await launch(sims)
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    events = [
        {"name": "push.delivered", "message_id": sent["message_id"]},
        {"name": "push.opened", "message_id": sent["message_id"]},
    ]
    resp = await api.post(
        f"/v1/installations/{device.installation_id}/events",
        json=events,
        headers=bearer(device.secret),
    )
    assert resp.status == 202
    assert (await c.message(sent["message_id"]))["counts"]["opened"] == 1
    # another app's installation cannot bump this app's message
    other = Campaign(api, sims)
    await other.create_app()
    stranger = await other.register("ios", 2)
    await api.post(
        f"/v1/installations/{stranger.installation_id}/events",
        json=[{"name": "push.opened", "message_id": sent["message_id"]}],
        headers=bearer(stranger.secret),
    )
    assert (await c.message(sent["message_id"]))["counts"]["opened"] == 1


async def test_client_and_direct_enqueue_send_like_the_api(
    api: Client,
    sims: Simulators,
    launch: Launch,
    fanout_settings: Settings,
) -> None:
    """``pushcore.client`` over HTTP, and ``submit_message`` enqueued on Dramatiq directly."""
    import asyncio

    from pushcore.client import ClientError, PushcoreClient
    from workers.broker import close_broker, make_broker
    from workers.enqueue import submit_message

    c = Campaign(api, sims)
    await c.create_app()
    devices = [await c.register("android", i) for i in range(3)]
    await c.personalize(devices[0], "carol", email="carol@example.com")
    await launch(sims)
    base = str(api.make_url("")).rstrip("/")
    async with PushcoreClient(base, c.code, c.server_key) as push:
        sent = await push.send({"external_user_ids": ["carol"]}, {"title": "Hi"})
        report = await push.wait(sent["message_id"], timeout=60, interval=0.2)
        assert report["counts"]["delivered"] == 1
        assert [
            u["external_user_id"] for u in await push.find_users(email="carol@example.com")
        ] == ["carol"]
        with pytest.raises(ClientError) as refused:
            await push.send({"all": True, "tags": ["x"]}, {"title": "Hi"})
        assert (refused.value.status, refused.value.field) == (422, "target")
        broker = make_broker(fanout_settings)
        await asyncio.to_thread(
            submit_message,
            broker,
            c.code,
            {"target": {"all": True}, "notification": {"title": "From the queue"}},
        )
        await asyncio.to_thread(close_broker, broker)
        for _ in range(100):
            listed = await push.messages(limit=5)
            if len(listed) == 2 and listed[0]["status"] == "done":
                break
            await asyncio.sleep(0.2)
        assert listed[0]["counts"]["delivered"] == 3, listed
    assert [c.accepted(d) for d in devices] == [2, 1, 1]


async def test_ttl_skips_batches_that_would_arrive_too_late(
    api: Client,
    sims: Simulators,
    launch: Launch,
) -> None:
    import asyncio

    c = Campaign(api, sims)
    await c.create_app()
    devices = [await c.register("ios", i) for i in range(4)]
    sent = await c.send(target={"all": True}, ttl_seconds=1)
    await asyncio.sleep(1.5)  # no worker yet: by the time one runs, the message expired
    await launch(sims)
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done"
    assert msg["counts"]["failed"] == 4
    assert msg["failure_reasons"] == {"expired": 4}
    assert all(c.accepted(d) == 0 for d in devices)

"""Sends into the inbox through the planner, end to end: real worker processes, the
simulators, the HTTP API.  Whole-app and tag targets, inbox-only broadcasts (nothing reaches
the simulators), scheduled sends appearing at their send_at, big user lists creating
unknown users, and retention pruned by the workers' maintenance loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from pushcore.config import Settings
from pushcore.db.pool import create_pool
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.inbox.helpers import Inboxes, ids
from tests.registry.helpers import Client, bearer, json


async def _audience(box: Inboxes) -> None:
    """Users pat (ios + android) and quinn (web, tagged), an anonymous device (tagged)."""
    await box.user_device("pat", "ios")
    await box.user_device("pat", "android")
    web = await box.register("web", 10, tags=["vip"])
    await box.personalize(web, "quinn")
    await box.register("ios", 11, tags=["vip"])  # anonymous


async def test_broadcast_into_the_inbox(api: Client, sims: Simulators, launch: Launch) -> None:
    box = Inboxes(api, sims)
    await box.create_app()
    await _audience(box)
    await launch(sims)
    sent = await box.send(target={"all": True}, inbox={"topic": "news"})
    msg = await box.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    assert msg["counts"]["delivered"] == 4  # the push reaches every device, anonymous too
    assert all(box.accepted(d) == 1 for d in box.devices)
    assert msg["counts"]["inboxed"] == 2  # users only: the anonymous device has no inbox
    pat, quinn = box.devices[0], box.devices[2]
    assert ids(await box.device_inbox(pat)) == [sent["message_id"]]
    assert ids(await box.device_inbox(box.devices[1])) == [sent["message_id"]]
    assert ids(await box.device_inbox(quinn)) == [sent["message_id"]]
    await box.device_inbox(box.devices[3], 409)
    # a user who arrives after the broadcast does not find it in a new inbox
    late = await box.user_device("ray")
    assert ids(await box.device_inbox(late)) == []
    # seen and delete on a broadcast are the user's alone
    assert await box.device_seen(pat, [sent["message_id"]]) == {"count_unread": 0, "ignored": 0}
    assert (await box.device_inbox(box.devices[1]))["count_unread"] == 0
    assert (await box.device_inbox(quinn))["count_unread"] == 1
    assert (await box.device_seen(late, [sent["message_id"]]))["ignored"] == 1
    await box.device_delete(quinn, sent["message_id"])
    assert ids(await box.device_inbox(quinn)) == []
    assert ids(await box.device_inbox(pat)) == [sent["message_id"]]
    msg = await box.message(sent["message_id"])
    assert (msg["counts"]["inboxed"], msg["counts"]["seen"]) == (2, 1)


async def test_tags_reach_the_users_of_matching_installations(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    box = Inboxes(api, sims)
    await box.create_app()
    await _audience(box)
    await launch(sims)
    sent = await box.send(target={"tags": ["vip"]}, inbox=True)
    msg = await box.wait(sent["message_id"])
    assert msg["counts"]["delivered"] == 2  # quinn's web device and the anonymous one
    assert msg["counts"]["inboxed"] == 1
    assert ids(await box.server_inbox("quinn")) == [sent["message_id"]]
    assert ids(await box.server_inbox("pat")) == []
    # the audience is the one at send time: tagging pat's device later changes nothing
    resp = await api.patch(
        f"/v1/installations/{box.devices[0].installation_id}",
        json={"tags": ["vip"]},
        headers=bearer(box.devices[0].secret),
    )
    await json(resp, 200)
    assert ids(await box.server_inbox("pat")) == []


async def test_inbox_only_broadcast_sends_nothing(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    box = Inboxes(api, sims)
    await box.create_app()
    await _audience(box)
    await launch(sims)
    sent = await box.note(target={"all": True})
    msg = await box.wait(sent["message_id"])
    assert msg["status"] == "done"
    counts = msg["counts"]
    assert counts["inboxed"] == 2
    push = ("targeted", "delivered", "invalid_removed", "failed", "retrying", "pending")
    assert [counts[k] for k in push] == [0] * len(push)
    tags = await box.wait((await box.note(target={"tags": ["vip"]}))["message_id"])
    assert (tags["counts"]["inboxed"], tags["counts"]["targeted"]) == (1, 0)
    assert all(box.received(d) == 0 for d in box.devices)  # nothing reached the simulators
    assert ids(await box.server_inbox("quinn")) == [tags["message_id"], sent["message_id"]]


async def test_scheduled_and_big_lists_go_through_the_planner(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    box = Inboxes(api, sims)
    await box.create_app()
    phone = await box.user_device("sam")
    await launch(sims)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    users = ["sam"] + [f"nobody-{k}" for k in range(150)]  # beyond the lane's 100
    sent = await box.note(target={"external_user_ids": users}, send_at=at.isoformat())
    assert sent["status"] == "scheduled"
    assert ids(await box.device_inbox(phone)) == []  # not before its send_at
    msg = await box.wait(sent["message_id"])
    assert dt.datetime.now(dt.UTC) >= at
    assert (msg["status"], msg["counts"]["inboxed"]) == ("done", 151)
    page = await box.device_inbox(phone)
    assert ids(page) == [sent["message_id"]]
    assert page["messages"][0]["sent_at"] >= at.isoformat().replace("+00:00", "Z")[:19]
    assert ids(await box.server_inbox("nobody-149")) == [sent["message_id"]]


async def test_the_maintenance_loop_prunes_past_the_retention(
    api: Client, sims: Simulators, launch: Launch, fanout_settings: Settings
) -> None:
    box = Inboxes(api, sims)
    await box.create_app()
    phone = await box.user_device("tom")
    old = (await box.note(target={"external_user_ids": ["tom"]}))["message_id"]
    new = (await box.note(target={"external_user_ids": ["tom"]}))["message_id"]
    pool = await create_pool(fanout_settings, max_size=1)
    try:
        # the test's clock: one message sent 8 days ago, the daily pass due now
        await pool.execute(
            "UPDATE inbox_messages SET sent_at = sent_at - interval '8 days' "
            "WHERE message_id = (SELECT id FROM messages WHERE public_id = $1::text::uuid)",
            old,
        )
        await pool.execute("UPDATE reaper_passes SET ran_at = '-infinity' WHERE name = 'prune'")
    finally:
        await pool.close()
    await launch(sims, PUSHCORE_INBOX_RETENTION_DAYS="7")
    deadline = time.monotonic() + 30
    while ids(await box.device_inbox(phone)) != [new]:
        assert time.monotonic() < deadline, "the old message was not pruned"
        await asyncio.sleep(0.2)


async def test_submit_message_on_dramatiq_takes_inbox_and_opened_still_counts(
    api: Client, sims: Simulators, launch: Launch, fanout_settings: Settings
) -> None:
    """A send enqueued on Dramatiq directly (actor ``submit_message``) is checked and stored
    as the route's; ``push.opened`` with the message id counts into ``opened``."""
    from workers.broker import close_broker, make_broker
    from workers.enqueue import submit_message

    box = Inboxes(api, sims)
    await box.create_app()
    phone = await box.user_device("uma")
    await launch(sims)
    broker = make_broker(fanout_settings)
    try:
        for body in (
            {"push": False, "inbox": {"topic": "x" * 65}},  # refused: never stored
            {"push": False, "inbox": {"topic": "queue"}},
        ):
            request = {"target": {"all": True}, "notification": {"title": "queued"}, **body}
            await asyncio.to_thread(submit_message, broker, box.code, request)
    finally:
        await asyncio.to_thread(close_broker, broker)
    deadline = time.monotonic() + 30
    while not (page := await box.device_inbox(phone))["messages"]:
        assert time.monotonic() < deadline, "the queued send never reached the inbox"
        await asyncio.sleep(0.2)
    (message,) = page["messages"]
    assert message["topic"] == "queue"
    listed = await json(await api.get(f"/v1/apps/{box.code}/messages", headers=box.server), 200)
    assert [m["message_id"] for m in listed["messages"]] == [message["message_id"]]
    resp = await api.post(
        f"/v1/installations/{phone.installation_id}/events",
        json=[{"name": "push.opened", "message_id": message["message_id"]}],
        headers=bearer(phone.secret),
    )
    await json(resp, 202)
    counts = (await box.wait(message["message_id"]))["counts"]
    assert (counts["opened"], counts["inboxed"], counts["targeted"]) == (1, 1, 0)

"""Reading, seen and delete through HTTP against the real database, on messages sent to
user lists (the lane writes their inbox entries in the statement that accepts them, so no
worker is needed here; the planner's paths are in ``test_sending.py``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from pushcore.api.auth import identity_token
from pushcore.config import Settings
from pushcore.db.maintenance import prune_inbox
from pushcore.db.pool import create_pool
from pushcore.gateways.simulators import Simulators
from tests.inbox.helpers import Inboxes, ids
from tests.registry.helpers import ADMIN, Client, bearer, json


async def _app(api: Client, sims: Simulators) -> Inboxes:
    box = Inboxes(api, sims)
    await box.create_app()
    return box


async def test_list_counts_topics_and_dates(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("ann")
    sent = []
    for k, topic in enumerate(["news", "offers", None, "news"]):
        inbox = {"topic": topic} if topic else True
        out = await box.note(
            target={"external_user_ids": ["ann"]},
            inbox=inbox,
            notification={"title": f"t{k}", "body": "b", "data": {"k": str(k)}},
        )
        assert (out["status"], out["counts"]["inboxed"]) == ("done", 1), out
        assert out["counts"]["targeted"] == 0  # push false: no device targeted
        sent.append(out["message_id"])
    page = await box.device_inbox(phone)
    assert ids(page) == sent[::-1]  # newest first
    assert (page["count_total"], page["count_unread"]) == (4, 4)
    assert page["next_cursor"] is None
    first = page["messages"][-1]
    assert first["notification"]["title"] == "t0"
    assert first["notification"]["data"] == {"k": "0"}
    assert (first["topic"], first["seen_at"]) == ("news", None)

    news = await box.device_inbox(phone, topic="news")
    assert ids(news) == [sent[3], sent[0]]
    assert (news["count_total_filtered"], news["count_unread_filtered"]) == (2, 2)
    assert (news["count_total"], news["count_unread"]) == (4, 4)  # the whole inbox
    both = await box.device_inbox(phone, topic=["news", "offers"])
    assert ids(both) == [sent[3], sent[1], sent[0]]

    await box.device_seen(phone, [sent[0]])
    news = await box.device_inbox(phone, topic="news")
    assert (news["count_unread_filtered"], news["count_unread"]) == (1, 3)

    times = [m["sent_at"] for m in page["messages"]][::-1]  # oldest first
    window = await box.device_inbox(phone, from_=times[1], to=times[3])
    assert ids(window) == [sent[2], sent[1]]  # from inclusive, to exclusive
    assert window["count_total_filtered"] == 2
    assert ids(await box.device_inbox(phone, from_=times[3])) == [sent[3]]
    # the server reads the same inbox
    assert ids(await box.server_inbox("ann")) == sent[::-1]


async def test_cursor_paging_is_stable_while_messages_arrive(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("bo")
    sent = [(await box.note(target={"external_user_ids": ["bo"]}))["message_id"] for _ in range(5)]
    first = await box.device_inbox(phone, limit=2)
    assert ids(first) == [sent[4], sent[3]]
    assert first["next_cursor"]
    arrived = (await box.note(target={"external_user_ids": ["bo"]}))["message_id"]
    second = await box.device_inbox(phone, limit=2, cursor=first["next_cursor"])
    assert ids(second) == [sent[2], sent[1]]
    assert second["count_total"] == 6  # counts are of the inbox now
    third = await box.device_inbox(phone, limit=2, cursor=second["next_cursor"])
    assert ids(third) == [sent[0]]
    assert third["next_cursor"] is None
    assert ids(await box.device_inbox(phone, limit=1)) == [arrived]


async def test_seen_and_delete_are_the_users_on_every_device(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("cy", "ios")
    tablet = await box.user_device("cy", "android")
    other = await box.user_device("dee")
    a, b, c = [
        (await box.note(target={"external_user_ids": ["cy"]}))["message_id"] for _ in range(3)
    ]
    theirs = (await box.note(target={"external_user_ids": ["dee"]}))["message_id"]

    out = await box.device_seen(phone, [a, a, theirs, str(uuid.uuid4())])
    assert out == {"count_unread": 2, "ignored": 2}  # dee's and an unknown id
    on_tablet = await box.device_inbox(tablet)
    seen_at = {m["message_id"]: m["seen_at"] for m in on_tablet["messages"]}
    assert seen_at[a] is not None
    assert seen_at[b] is None
    assert on_tablet["count_unread"] == 2
    # seen again (another device, the server): the first seen_at stays
    assert await box.device_seen(tablet, [a, b]) == {"count_unread": 1, "ignored": 0}
    assert await box.server_seen("cy", [a]) == {"count_unread": 1, "ignored": 0}
    again = {m["message_id"]: m["seen_at"] for m in (await box.device_inbox(phone))["messages"]}
    assert again[a] == seen_at[a]
    msg = await box.message(a)
    assert (msg["counts"]["inboxed"], msg["counts"]["seen"]) == (1, 1)

    await box.device_delete(tablet, b)
    assert ids(await box.device_inbox(phone)) == [c, a]
    await box.device_delete(phone, b, 404)  # already gone, on every device
    await box.device_delete(phone, theirs, 404)  # not in this user's inbox
    await box.device_delete(phone, "not-a-uuid", 404)
    await box.server_delete("cy", c)
    assert ids(await box.device_inbox(tablet)) == [a]
    assert ids(await box.device_inbox(other)) == [theirs]  # dee's own inbox untouched
    assert (await box.device_seen(phone, [b]))["ignored"] == 1  # deleted: not in the inbox


async def test_inbox_follows_the_installations_user(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("eve")
    for_eve = (await box.note(target={"external_user_ids": ["eve"]}))["message_id"]
    for_fay = (await box.note(target={"external_user_ids": ["fay"]}))["message_id"]
    assert ids(await box.device_inbox(phone)) == [for_eve]
    resp = await api.delete(
        f"/v1/installations/{phone.installation_id}/user", headers=bearer(phone.secret)
    )
    await json(resp, 200)
    denied = await box.device_inbox(phone, 409)
    assert denied["error"]["code"] == "not_personalized"
    await box.device_seen(phone, [for_eve], 409)
    await box.device_delete(phone, for_eve, 409)
    await box.personalize(phone, "fay")  # fay was created by the send to her: her inbox waited
    assert ids(await box.device_inbox(phone)) == [for_fay]
    await box.personalize(phone, "eve", force_depersonalize=True)
    assert ids(await box.device_inbox(phone)) == [for_eve]
    # a wrong secret is 401 as on every device route, an anonymous new device 409
    await box.device_inbox(type(phone)("ios", "", True, phone.installation_id, "pci_wrong"), 401)
    anonymous = await box.register("web", 99)
    await box.device_inbox(anonymous, 409)


async def test_who_a_list_target_reaches(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    await box.user_device("gil")
    await box.personalize(await box.register("android", 50), "hal", email="Hal@Example.com")
    await box.personalize(await box.register("android", 51), "ida", msisdn="+4915112345678")
    out = await box.note(target={"emails": ["hal@example.com", "nobody@example.com"]})
    assert out["counts"]["inboxed"] == 1  # emails and phones reach known users only
    assert ids(await box.server_inbox("hal")) == [out["message_id"]]
    out = await box.note(target={"msisdns": ["+4915112345678", "+4915100000000"]})
    assert out["counts"]["inboxed"] == 1
    gil = box.devices[0]
    out = await box.note(target={"installation_ids": [gil.installation_id]})
    assert ids(await box.server_inbox("gil")) == [out["message_id"]]
    out = await box.note(target={"external_user_ids": ["gil", "new-one"]})
    assert out["counts"]["inboxed"] == 2
    assert ids(await box.server_inbox("new-one")) == [out["message_id"]]
    user = await json(await api.get(f"/v1/apps/{box.code}/users/new-one", headers=box.server), 200)
    assert user["installations"] == []  # created for its inbox, waiting for a login


async def test_push_and_inbox_with_primary_only(api: Client, sims: Simulators) -> None:
    """primary_only limits the push, not the inbox: the 202 of a lane send says whom it
    targets, and the inbox holds it for the user."""
    box = await _app(api, sims)
    phone = await box.user_device("jo", "ios")
    await box.user_device("jo", "android")
    sent = await box.send(
        target={"external_user_ids": ["jo"]}, inbox={"topic": "news"}, primary_only=True
    )
    assert (sent["counts"]["targeted"], sent["counts"]["inboxed"]) == (1, 1)
    assert ids(await box.device_inbox(phone)) == [sent["message_id"]]


async def test_expiry_cancel_and_schedule(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("kim")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    short = await box.note(
        target={"external_user_ids": ["kim"]}, inbox={"expires_at": soon.isoformat()}
    )
    kept = await box.note(target={"external_user_ids": ["kim"]})
    assert ids(await box.device_inbox(phone)) == [kept["message_id"], short["message_id"]]
    while dt.datetime.now(dt.UTC) < soon + dt.timedelta(milliseconds=200):
        await asyncio.sleep(0.2)
    page = await box.device_inbox(phone)
    assert ids(page) == [kept["message_id"]]  # expired: no longer listed nor counted
    assert page["count_total"] == 1
    assert (await box.device_seen(phone, [short["message_id"]]))["ignored"] == 1

    # a push still being sent (no worker runs here) is in the inbox until it is cancelled
    pushed = await box.send(target={"external_user_ids": ["kim"]}, inbox=True)
    assert pushed["status"] == "sending"
    assert ids(await box.device_inbox(phone))[0] == pushed["message_id"]
    cancelled = await json(
        await api.delete(
            f"/v1/apps/{box.code}/messages/{pushed['message_id']}", headers=box.server
        ),
        200,
    )
    assert cancelled["status"] == "cancelled"
    assert ids(await box.device_inbox(phone)) == [kept["message_id"]]
    # a finished message is not cancelled: it stays
    await json(
        await api.delete(f"/v1/apps/{box.code}/messages/{kept['message_id']}", headers=box.server),
        200,
    )
    assert ids(await box.device_inbox(phone)) == [kept["message_id"]]

    # scheduled: in no inbox before its send_at (the planner puts it there when due)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    scheduled = await box.note(target={"external_user_ids": ["kim"]}, send_at=later.isoformat())
    assert scheduled["status"] == "scheduled"
    assert ids(await box.device_inbox(phone)) == [kept["message_id"]]


async def test_retention_prunes_old_messages(
    api: Client, sims: Simulators, fanout_settings: Settings
) -> None:
    box = await _app(api, sims)
    phone = await box.user_device("lu")
    others = [f"lu-{k}" for k in range(5)]
    sent = (await box.note(target={"external_user_ids": ["lu", *others]}))["message_id"]
    await box.device_seen(phone, [sent])
    pool = await create_pool(fanout_settings, max_size=1)
    try:
        now = dt.datetime.now(dt.UTC)
        # the clock the test controls: 89 days later it is kept, 91 days later it is gone
        await prune_inbox(pool, 90, now=now + dt.timedelta(days=89))
        assert ids(await box.device_inbox(phone)) == [sent]
        # entries in chunks smaller than the message's six
        assert await prune_inbox(pool, 90, now=now + dt.timedelta(days=91), chunk=2) >= 1
        left = await pool.fetchval(
            "SELECT count(*) FROM inbox_entries e JOIN messages m ON m.id = e.message_id "
            "WHERE m.public_id = $1::text::uuid",
            sent,
        )
        assert left == 0
    finally:
        await pool.close()
    page = await box.device_inbox(phone)
    assert (page["messages"], page["count_total"]) == ([], 0)
    msg = await box.message(sent)  # the message and its report stay
    assert (msg["counts"]["inboxed"], msg["counts"]["seen"]) == (6, 1)


async def test_privacy_erase_deletes_the_inbox(
    api: Client, sims: Simulators, fanout_settings: Settings
) -> None:
    box = await _app(api, sims)
    await box.user_device("mo")
    await box.note(target={"external_user_ids": ["mo"]})
    await json(await api.delete(f"/v1/apps/{box.code}/users/mo", headers=box.server), 204)
    await box.server_inbox("mo", 404)
    pool = await create_pool(fanout_settings, max_size=1)
    try:
        left = await pool.fetchval(
            "SELECT count(*) FROM inbox_entries e LEFT JOIN users u ON u.id = e.user_id "
            "WHERE u.id IS NULL"
        )
    finally:
        await pool.close()
    assert left == 0


async def test_other_apps_get_404(api: Client, sims: Simulators) -> None:
    mine = await _app(api, sims)
    theirs = await _app(api, sims)
    phone = await mine.user_device("ned")
    sent = (await mine.note(target={"external_user_ids": ["ned"]}))["message_id"]
    for method, path, body in (
        ("GET", f"/v1/apps/{mine.code}/users/ned/inbox", None),
        ("POST", f"/v1/apps/{mine.code}/users/ned/inbox/seen", {"message_ids": [sent]}),
        ("DELETE", f"/v1/apps/{mine.code}/users/ned/inbox/{sent}", None),
    ):
        resp = await api.request(method, path, json=body, headers=theirs.server)
        await json(resp, 404)
    # the same external id in another app is another user, with another inbox
    await theirs.user_device("ned")
    assert (await theirs.server_inbox("ned"))["messages"] == []
    assert (await theirs.server_seen("ned", [sent]))["ignored"] == 1
    await theirs.server_delete("ned", sent, 404)
    assert ids(await mine.device_inbox(phone)) == [sent]
    await json(await api.get(f"/v1/apps/{mine.code}/users/ned/inbox"), 401)


async def test_identity_verification_is_unchanged(api: Client, sims: Simulators) -> None:
    created = await json(
        await api.post(
            "/v1/apps", json={"name": "verified", "identity_verification": True}, headers=ADMIN
        ),
        201,
    )
    code, secret = created["app_code"], created["identity_secret"]
    device = await json(
        await api.post(
            f"/v1/apps/{code}/installations", json={"platform": "ios", "push_token": "ab" * 32}
        ),
        201,
    )
    path = f"/v1/installations/{device['installation_id']}"
    auth = bearer(device["installation_secret"])
    await json(await api.put(path + "/user", json={"external_user_id": "oz"}, headers=auth), 403)
    await json(await api.get(path + "/inbox", headers=auth), 409)  # still anonymous
    body = {"external_user_id": "oz", "identity_token": identity_token(secret, "oz")}
    await json(await api.put(path + "/user", json=body, headers=auth), 200)
    assert (await json(await api.get(path + "/inbox", headers=auth), 200))["messages"] == []


async def test_the_client_reads_and_marks(api: Client, sims: Simulators) -> None:
    from pushcore.client import ClientError, PushcoreClient

    box = await _app(api, sims)
    await box.user_device("pia")
    base = str(api.make_url("")).rstrip("/")
    async with PushcoreClient(base, box.code, box.server_key) as push:
        sent = [
            await push.send(
                {"external_user_ids": ["pia"]}, {"title": "t"}, push=False, inbox=options
            )
            for options in ({"topic": "a"}, {"topic": "b"}, True)
        ]
        page = await push.inbox("pia", topics=["a", "b"], limit=1)
        assert [m["message_id"] for m in page["messages"]] == [sent[1]["message_id"]]
        assert (page["count_total"], page["count_total_filtered"]) == (3, 2)
        rest = await push.inbox("pia", topics=["a", "b"], cursor=page["next_cursor"])
        assert [m["message_id"] for m in rest["messages"]] == [sent[0]["message_id"]]
        marked = await push.mark_seen("pia", [sent[0]["message_id"]])
        assert marked == {"count_unread": 2, "ignored": 0}
        await push.delete_from_inbox("pia", sent[2]["message_id"])
        assert (await push.inbox("pia"))["count_total"] == 2
        with pytest.raises(ClientError) as refused:
            await push.inbox("pia", limit=500)
        assert (refused.value.status, refused.value.field) == (422, "limit")


async def test_concurrent_marks_count_a_user_once(api: Client, sims: Simulators) -> None:
    box = await _app(api, sims)
    devices = [await box.user_device("quy", p) for p in ("ios", "android", "web")]
    sent = (await box.note(target={"external_user_ids": ["quy", "rue"]}))["message_id"]
    await box.user_device("rue")
    marks = await asyncio.gather(*(box.device_seen(d, [sent]) for d in devices * 3))
    assert all(m == {"count_unread": 0, "ignored": 0} for m in marks), marks
    await box.server_seen("rue", [sent])
    msg = await box.message(sent)
    assert (msg["counts"]["inboxed"], msg["counts"]["seen"]) == (2, 2)


async def test_many_users_marking_the_same_messages_at_once(api: Client, sims: Simulators) -> None:
    """Users of one counter shard mark the same messages in different orders at the same
    time: every mark counts once, none fails (the counter rows are locked in one order)."""
    box = await _app(api, sims)
    names = [f"crowd-{k}" for k in range(40)]
    devices = [await box.user_device(name) for name in names]
    sent = [(await box.note(target={"external_user_ids": names}))["message_id"] for _ in range(6)]
    orders = [sent[k % 6 :] + sent[: k % 6] for k in range(len(devices))]
    marks = await asyncio.gather(
        *(box.device_seen(d, order) for d, order in zip(devices, orders, strict=True))
    )
    assert all(m == {"count_unread": 0, "ignored": 0} for m in marks), marks
    for message_id in sent:
        msg = await box.message(message_id)
        assert (msg["counts"]["inboxed"], msg["counts"]["seen"]) == (40, 40)


async def test_inbox_only_needs_no_provider_credentials(api: Client) -> None:
    created = await json(
        await api.post("/v1/apps", json={"name": "no providers"}, headers=ADMIN), 201
    )
    code, server = created["app_code"], bearer(created["server_key"])
    body = {"target": {"external_user_ids": ["vic"]}, "notification": {"title": "t"}}
    path = f"/v1/apps/{code}/messages"
    refused = await json(await api.post(path, json=body, headers=server), 422)
    assert refused["error"]["field"] == "platforms"  # a push needs credentials
    out = await json(
        await api.post(path, json={**body, "push": False, "inbox": True}, headers=server), 202
    )
    assert (out["status"], out["counts"]["inboxed"], out["platforms"]) == ("done", 1, [])
    page = await json(await api.get(f"/v1/apps/{code}/users/vic/inbox", headers=server), 200)
    assert [m["message_id"] for m in page["messages"]] == [out["message_id"]]

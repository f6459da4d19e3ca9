"""Per-recipient content end to end: templates and localizations posted over HTTP, rendered
by a real worker, read back from the bytes each simulator received for each token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pushcore.config import Settings
from pushcore.db.maintenance import prune_recipient_data
from pushcore.db.pool import create_pool
from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.fcm import FcmOptions
from pushcore.gateways.simulators import Simulators
from pushcore.gateways.webpush import WebPushOptions
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import Client, json

pytestmark = pytest.mark.slow


@pytest.fixture
async def rsims(sim_ca_dir: Path) -> AsyncIterator[Simulators]:
    """Simulators that keep every accepted payload per token."""
    async with Simulators.start(
        engine="h2",
        ca_dir=sim_ca_dir,
        apns=ApnsOptions(record_payloads=True),
        fcm=FcmOptions(record_payloads=True),
        webpush=WebPushOptions(record_payloads=True),
    ) as started:
        yield started


def received(c: Campaign, device: Device) -> list[dict[str, Any]]:
    """What the device's simulator accepted for it, as the app sees it: the APNs body, the
    FCM message without its token, the Web Push plaintext (decrypted by the simulator)."""
    sim = {"ios": c.sims.apns, "android": c.sims.fcm, "web": c.sims.webpush}[device.platform]
    out = []
    for raw in sim.counters.payloads.get(device.token, []):
        decoded = msgspec.json.decode(raw)
        if device.platform == "android":
            decoded = decoded["message"]
            del decoded["token"]
        out.append(decoded)
    return out


def shown(platform: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Title, body, badge and data of a provider payload."""
    if platform == "ios":
        aps = payload["aps"]
        data = {k: v for k, v in payload.items() if k not in ("aps", "url", "image")}
        alert = aps.get("alert", {})
        return {
            "title": alert.get("title"),
            "body": alert.get("body"),
            "badge": aps.get("badge"),
            "data": data,
        }
    if platform == "android":
        notification = payload.get("notification", {})
        return {
            "title": notification.get("title"),
            "body": notification.get("body"),
            "badge": payload.get("apns", {}).get("payload", {}).get("aps", {}).get("badge"),
            "data": payload.get("data", {}),
        }
    return {
        "title": payload.get("title"),
        "body": payload.get("body"),
        "badge": payload.get("badge"),
        "data": payload.get("data", {}),
    }


async def _user(c: Campaign, device: Device, user: str, **fields: Any) -> None:
    await c.personalize(device, user, **fields)


async def _tags(c: Campaign, user: str, tags: list[str]) -> None:
    resp = await c.client.patch(
        f"/v1/apps/{c.code}/users/{user}", json={"tags": tags}, headers=c.server
    )
    await json(resp, 200)


TEMPLATED = {
    "title": "Hi {{ user.attributes.first_name | default: 'there' }}",
    "body": "Order {{ message.data.order }} on {{ installation.platform }}"
    " v{{ installation.device.app_version }}",
    "data": {
        "order": "1234",
        "who": "{{ user.external_id }}",
        "tags": "{{ user.tags | join: ',' }}",
    },
    "badge": "{{ user.attributes.unread }}",
}
LOCALIZED = {
    "pt": {"title": "Olá {{ user.attributes.first_name | default: 'você' }}"},
    "pt-BR": {"title": "Oi {{ user.attributes.first_name }}", "data": {"lang": "pt-BR"}},
    "fr": {"title": "Bonjour {{ user.attributes.first_name | upcase }}", "body": "Commande"},
}


async def test_variables_localizations_and_missing_attributes_land_in_each_payload(
    api: Client, rsims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, rsims)
    await c.create_app()
    ana = await c.register("ios", 1, device={"language": "pt-BR", "app_version": "7.1"})
    rui = await c.register("android", 2, device={"language": "pt-PT", "app_version": "6"})
    eve = await c.register("web", 3, device={"language": "fr-CA"})
    bob = await c.register("ios", 4, device={"language": "en-US", "app_version": "7.0"})
    anon = await c.register("android", 5, device={"language": "de"})
    await _user(c, ana, "ana", attributes={"first_name": "Ana", "unread": 3})
    await _tags(c, "ana", ["vip", "beta"])
    await _user(c, rui, "rui", attributes={"first_name": "Rui", "unread": 0})
    await _user(c, eve, "eve", email="eve@example.com", attributes={"first_name": "Eve"})
    await _user(c, bob, "bob")  # no attributes at all
    await launch(rsims)

    sent = await c.send(target={"all": True}, notification=TEMPLATED, localizations=LOCALIZED)
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    assert msg["counts"]["delivered"] == 5, msg

    got = {d.token: [shown(d.platform, p) for p in received(c, d)] for d in c.devices}
    assert got[ana.token] == [
        {
            "title": "Oi Ana",  # pt-BR: the exact tag wins over pt
            "body": "Order 1234 on ios v7.1",
            "badge": 3,
            "data": {"order": "1234", "who": "ana", "tags": "vip,beta", "lang": "pt-BR"},
        }
    ]
    assert got[rui.token] == [
        {
            "title": "Olá Rui",  # pt-PT falls back to pt
            "body": "Order 1234 on android v6",
            "badge": 0,
            "data": {"order": "1234", "who": "rui", "tags": ""},
        }
    ]
    assert got[eve.token] == [
        {
            "title": "Bonjour EVE",  # fr-CA falls back to fr, whose body replaces the default
            "body": "Commande",
            "badge": None,  # a missing attribute renders empty: no badge at all
            "data": {"order": "1234", "who": "eve", "tags": ""},
        }
    ]
    assert got[bob.token] == [
        {
            "title": "Hi there",  # en-US: no localization, the default; default filter
            "body": "Order 1234 on ios v7.0",
            "badge": None,
            "data": {"order": "1234", "who": "bob", "tags": ""},
        }
    ]
    assert got[anon.token] == [
        {
            "title": "Hi there",  # anonymous: every user.* is missing
            "body": "Order 1234 on android v",  # missing device property: empty text
            "badge": None,
            "data": {"order": "1234", "who": "", "tags": ""},
        }
    ]


async def test_provider_override_blocks_are_templates_too(
    api: Client, rsims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, rsims)
    await c.create_app()
    ios = await c.register("ios", 1)
    web = await c.register("web", 2)
    await _user(c, ios, "ann", email="ann@example.com")
    await _user(c, web, "ann")
    await launch(rsims)
    sent = await c.send(
        target={"external_user_ids": ["ann"]},
        notification={"title": "Hello"},
        apns={
            "aps": {"alert": {"subtitle": "{{ user.email }}"}},
            "payload": {"u": "{{ user.external_id }}"},
        },
        webpush={"payload": {"hello": "{{ user.email | split: '@' | first }}"}},
    )
    msg = await c.wait(sent["message_id"])
    assert msg["counts"]["delivered"] == 2, msg
    (apns,) = received(c, ios)
    assert apns["aps"]["alert"] == {"title": "Hello", "subtitle": "ann@example.com"}
    assert apns["u"] == "ann"
    assert received(c, web) == [{"hello": "ann"}]
    # the same records over the simulator's control route
    stats = await rsims.webpush.fetch_stats(with_payloads=True)
    assert stats["payloads"] == {web.token: ['{"hello":"ann"}']}


async def test_an_oversized_or_failing_recipient_fails_alone(
    api: Client, rsims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, rsims)
    await c.create_app()
    small = await c.register("ios", 1)
    large = await c.register("ios", 2)
    wordy = await c.register("android", 3)
    bad_badge = await c.register("web", 4)
    await _user(c, small, "small", attributes={"bio": "short", "n": 1})
    await _user(c, large, "large", attributes={"bio": "x" * 1000, "n": 2})
    await _user(c, wordy, "wordy", attributes={"bio": "y" * 1000, "n": 3})
    await _user(c, bad_badge, "bad", attributes={"bio": "ok", "n": "many"})
    await launch(rsims)
    # five copies of a 1,000-character bio: over APNs' and FCM's 4 KiB (each value under
    # the 4,096 bytes a rendered value may have)
    body = "{{ user.attributes.bio }}" * 4
    sent = await c.send(
        target={"all": True},
        notification={
            "title": "{{ user.attributes.bio }}",
            "body": body,
            "badge": "{{ user.attributes.n }}",
        },
    )
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    assert msg["counts"]["delivered"] == 1
    assert msg["counts"]["failed"] == 3
    assert msg["failure_reasons"]["payload_too_large"] == 2
    assert msg["failure_reasons"]["template_error"] == 1  # badge "many" is not a number
    assert [shown("ios", p) for p in received(c, small)] == [
        {"title": "short", "body": "short" * 4, "badge": 1, "data": {}}
    ]
    for device in (large, wordy, bad_badge):
        assert c.received(device) == 0, device


async def test_preview_equals_what_the_simulators_received(
    api: Client, rsims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, rsims)
    await c.create_app()
    devices = [
        await c.register("ios", 1, device={"language": "fr"}),
        await c.register("android", 2, device={"language": "pt-BR", "app_version": "2"}),
        await c.register("web", 3),
    ]
    for d in devices:
        await _user(c, d, "zoe", attributes={"first_name": "Zoé", "unread": 5})
    other = await c.register("ios", 9)  # not Zoé's: not in her preview
    await launch(rsims)
    send: dict[str, Any] = {
        "target": {"external_user_ids": ["zoe"]},
        "notification": TEMPLATED,
        "localizations": LOCALIZED,
    }
    resp = await api.post(
        f"/v1/apps/{c.code}/messages/preview",
        json={"message": send, "external_user_id": "zoe"},
        headers=c.server,
    )
    preview = await json(resp, 200)
    assert c.received(other) == 0
    assert all(c.received(d) == 0 for d in devices)
    by_id = {p["installation_id"]: p for p in preview["payloads"]}
    assert set(by_id) == {d.installation_id for d in devices}

    sent = await c.send(**send)
    await c.wait(sent["message_id"])
    for d in devices:
        assert received(c, d) == [by_id[d.installation_id]["payload"]], d
    assert by_id[devices[0].installation_id]["language"] == "fr"
    assert shown("ios", by_id[devices[0].installation_id]["payload"])["title"] == "Bonjour ZOÉ"

    # one installation, a fixed message
    resp = await api.post(
        f"/v1/apps/{c.code}/messages/preview",
        json={
            "message": {"target": {"all": True}, "notification": {"title": "Plain"}},
            "installation_id": devices[2].installation_id,
        },
        headers=c.server,
    )
    (only,) = (await json(resp, 200))["payloads"]
    assert only["platform"] == "web"
    assert only["payload"]["title"] == "Plain"


async def test_preview_failures_and_isolation(api: Client, rsims: Simulators) -> None:
    c = Campaign(api, rsims)
    await c.create_app()
    ios = await c.register("ios", 1)
    await _user(c, ios, "max", attributes={"n": "x"})
    other = Campaign(api, rsims)
    await other.create_app()
    url = f"/v1/apps/{c.code}/messages/preview"
    send = {
        "target": {"all": True},
        "notification": {"title": "a", "badge": "{{ user.attributes.n }}"},
    }
    got = await json(
        await api.post(url, json={"message": send, "external_user_id": "max"}, headers=c.server),
        200,
    )
    assert got["payloads"] == [
        {"installation_id": ios.installation_id, "platform": "ios", "failed": "template_error"}
    ]
    # unknown user, another app's key, another app's installation
    resp = await api.post(
        url, json={"message": send, "external_user_id": "nobody"}, headers=c.server
    )
    assert (await json(resp, 404))["error"]["code"] == "not_found"
    resp = await api.post(
        url, json={"message": send, "external_user_id": "max"}, headers=other.server
    )
    await json(resp, 404)
    resp = await api.post(
        f"/v1/apps/{other.code}/messages/preview",
        json={"message": send, "installation_id": ios.installation_id},
        headers=other.server,
    )
    await json(resp, 404)


def test_simulator_payload_records_are_exposed_on_the_stats_route() -> None:
    from pushcore.gateways.core import Counters

    counters = Counters()
    counters.record(200, "", "tok")
    counters.keep("tok", b'{"a":1}')
    counters.keep("untracked", b"x")  # a token never recorded is not kept
    snap = counters.snapshot(with_payloads=True)
    assert snap["payloads"] == {"tok": ['{"a":1}']}
    for i in range(20):
        counters.keep("tok", str(i).encode())
    assert len(counters.payloads["tok"]) == 8
    assert counters.payloads["tok"][-1] == b"19"


@pytest.mark.parametrize("padding", [0, 120], ids=["lane", "planner"])
async def test_recipients_data_reaches_each_users_installations(
    api: Client, rsims: Simulators, launch: Launch, padding: int
) -> None:
    """A ``recipients`` send: each user's own values in the bytes of each of their devices,
    through the lane (a few users) and through the planner (over PUSHCORE_LANE_MAX_TARGETS)."""
    c = Campaign(api, rsims)
    await c.create_app()
    ana_phone = await c.register("ios", 1)
    ana_web = await c.register("web", 2)
    bob = await c.register("android", 3)
    cid = await c.register("ios", 4)
    await _user(c, ana_phone, "ana", attributes={"first_name": "Ana"})
    await _user(c, ana_web, "ana")
    await _user(c, bob, "bob", attributes={"first_name": "Bob"})
    await _user(c, cid, "cid")
    await launch(rsims)
    recipients: list[dict[str, Any]] = [
        {"external_user_id": "ana", "data": {"order": "A-1", "items": 3}},
        {"external_user_id": "bob", "data": {"order": "B-2"}},
        {"external_user_id": "ana", "data": {"order": "ignored: ana was given first"}},
        {"external_user_id": "cid"},  # no data: the default filter's value
        *({"external_user_id": f"nobody-{i}"} for i in range(padding)),
    ]
    sent = await c.send(
        target={"recipients": recipients},
        notification={
            "title": "{{ user.attributes.first_name | default: 'Hi' }}",
            "body": "Order {{ recipient.data.order | default: 'none' }}"
            " ({{ recipient.data.items | default: 1 }} items)",
        },
    )
    assert sent["counts"]["targeted"] in (0, 4)  # the lane knows at once, the planner later
    msg = await c.wait(sent["message_id"])
    assert msg["counts"]["delivered"] == 4, msg
    got = {d.token: [shown(d.platform, p)["body"] for p in received(c, d)] for d in c.devices}
    assert got == {
        ana_phone.token: ["Order A-1 (3 items)"],
        ana_web.token: ["Order A-1 (3 items)"],
        bob.token: ["Order B-2 (1 items)"],
        cid.token: ["Order none (1 items)"],
    }
    assert [shown("ios", p)["title"] for p in received(c, ana_phone)] == ["Ana"]

    # the preview of a recipients send shows the user's own values too
    resp = await api.post(
        f"/v1/apps/{c.code}/messages/preview",
        json={
            "message": {
                "target": {"recipients": recipients[:2]},
                "notification": {"body": "{{ recipient.data.order }}"},
            },
            "external_user_id": "bob",
        },
        headers=c.server,
    )
    (only,) = (await json(resp, 200))["payloads"]
    assert only["payload"]["notification"]["body"] == "B-2"


async def test_a_batch_larger_than_a_render_slice_keeps_every_recipients_own_content(
    api: Client, rsims: Simulators, launch: Launch
) -> None:
    """250 installations in one batch: rendered in slices of 100 (the event loop gets a turn
    between them), each recipient still gets its own payload, failures stay its own."""
    c = Campaign(api, rsims)
    await c.create_app()
    devices = [
        await c.register("ios", i, device={"n": i, "badge": "x" if i % 50 == 7 else i % 9})
        for i in range(250)
    ]
    await launch(rsims, PUSHCORE_BATCH_SIZE="1000")
    sent = await c.send(
        target={"all": True},
        notification={
            "title": "Device {{ installation.device.n }}",
            "badge": "{{ installation.device.badge }}",
        },
    )
    msg = await c.wait(sent["message_id"])
    failing = [d for i, d in enumerate(devices) if i % 50 == 7]
    assert msg["counts"]["delivered"] == 250 - len(failing), msg
    assert msg["failure_reasons"] == {"template_error": len(failing)}, msg
    for i, d in enumerate(devices):
        if d in failing:
            assert c.received(d) == 0
        else:
            assert [shown("ios", p) for p in received(c, d)] == [
                {"title": f"Device {i}", "body": None, "badge": i % 9, "data": {}}
            ], i


async def test_recipients_data_is_pruned_after_the_retention_unless_inboxed(
    api: Client, rsims: Simulators, launch: Launch, fanout_settings: Settings
) -> None:
    """The reaper's hourly prune deletes a finished message's ``recipients`` data after
    PUSHCORE_RESULTS_RETENTION_DAYS, but keeps it while the message is still in inboxes
    (their reads render with it), and keeps a recent message's."""
    c = Campaign(api, rsims)
    await c.create_app()
    await _user(c, await c.register("android", 1), "ana")
    await _user(c, await c.register("ios", 2), "bob")
    await launch(rsims)
    recipients = [
        {"external_user_id": "ana", "data": {"order": "A-1"}},
        {"external_user_id": "bob", "data": {"order": "B-2"}},
    ]
    body = {"title": "Order", "body": "{{ recipient.data.order }}"}
    ids = {}
    for name, extra in (("old", {}), ("inboxed", {"inbox": True}), ("recent", {})):
        sent = await c.send(target={"recipients": recipients}, notification=body, **extra)
        await c.wait(sent["message_id"])
        ids[name] = uuid.UUID(sent["message_id"])
    pool = await create_pool(fanout_settings)
    try:

        async def kept() -> dict[str, int]:
            rows = await pool.fetch(
                """SELECT m.public_id, count(r.*) AS n FROM messages m
                   LEFT JOIN message_recipients r ON r.message_id = m.id
                   WHERE m.public_id = ANY($1::uuid[]) GROUP BY m.public_id""",
                list(ids.values()),
            )
            by_id = {r["public_id"]: r["n"] for r in rows}
            return {name: by_id[i] for name, i in ids.items()}

        assert await kept() == {"old": 2, "inboxed": 2, "recent": 2}
        await pool.execute(
            "UPDATE messages SET finished_at = now() - interval '31 days' "
            "WHERE public_id = ANY($1::uuid[])",
            [ids["old"], ids["inboxed"]],
        )
        assert await prune_recipient_data(pool, 30, chunk=1) == 2
        assert await kept() == {"old": 0, "inboxed": 2, "recent": 2}
        # the inbox still renders the inboxed message with each reader's own data
        resp = await api.get(f"/v1/apps/{c.code}/users/bob/inbox", headers=c.server)
        (note,) = (await json(resp, 200))["messages"]
        assert note["notification"]["body"] == "B-2"
        # once the inbox message is gone (its retention), its data goes too
        await pool.execute(
            "DELETE FROM inbox_messages WHERE message_id = "
            "(SELECT id FROM messages WHERE public_id = $1)",
            ids["inboxed"],
        )
        assert await prune_recipient_data(pool, 30) == 2
        assert await kept() == {"old": 0, "inboxed": 0, "recent": 2}
    finally:
        await pool.close()

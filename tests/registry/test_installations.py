"""Device-side installation lifecycle: register, re-register, update, token replacement,
delete, web subscriptions and events."""

from __future__ import annotations

import asyncio
import uuid

from pushcore.config import Settings
from pushcore.db.maintenance import prune_stale
from pushcore.db.pool import create_pool
from tests.registry.helpers import App, Client, apns_token, bearer, json, web_subscription


async def test_anonymous_registration(client: Client) -> None:
    app = await App.create(client)
    token = apns_token()
    inst = await app.register(push_token=token.upper(), tags=["news"], device={"model": "X1"})
    assert inst["installation_secret"].startswith("pci_")
    assert inst["platform"] == "ios"
    assert inst["token_tail"] == "…" + token[-8:] or inst["token_tail"] == token[-8:]
    assert inst["external_user_id"] is None
    assert inst["push_enabled"] is True
    assert inst["tags"] == ["news"]
    assert inst["device"] == {"model": "X1"}
    shown = await json(
        await client.get(
            f"/v1/installations/{inst['installation_id']}",
            headers=bearer(inst["installation_secret"]),
        ),
        200,
    )
    assert shown["installation_id"] == inst["installation_id"]
    assert token not in str(shown)  # never the whole token


async def test_reregistering_a_token_updates_instead_of_duplicating(client: Client) -> None:
    app = await App.create(client)
    token = apns_token()
    first = await app.register(push_token=token, tags=["a"])
    await app.personalize(first, external_user_id="ann")
    again = await app.register(status=200, push_token=token, device={"os": "18"})
    assert again["installation_id"] == first["installation_id"]
    assert again["installation_secret"] != first["installation_secret"]
    assert again["tags"] == ["a"]  # kept when not given
    assert again["external_user_id"] == "ann"  # the user link stays
    user = await app.user("ann")
    assert len(user["installations"]) == 1
    # the old secret no longer opens the installation
    path = f"/v1/installations/{first['installation_id']}"
    await json(await client.get(path, headers=bearer(first["installation_secret"])), 401)
    await json(await client.get(path, headers=bearer(again["installation_secret"])), 200)


async def test_token_replacement_refreshes_age_and_frees_old_token(client: Client) -> None:
    app = await App.create(client)
    old = apns_token()
    inst = await app.register(push_token=old)
    path = f"/v1/installations/{inst['installation_id']}"
    auth = bearer(inst["installation_secret"])
    await asyncio.sleep(0.01)
    new = apns_token()
    updated = await json(await client.patch(path, json={"push_token": new}, headers=auth), 200)
    assert updated["token_tail"] == new[-8:]
    assert updated["token_updated_at"] > inst["token_updated_at"]
    # the old token is no longer this installation's: registering it makes a new one
    other = await app.register(push_token=old)
    assert other["installation_id"] != inst["installation_id"]
    # taking a token another installation holds is a conflict
    resp = await client.patch(path, json={"push_token": old}, headers=auth)
    body = await json(resp, 409)
    assert body["error"]["field"] == "push_token"


async def test_unchanged_properties_change_nothing(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register(tags=["a"], device={"model": "X1"})
    path = f"/v1/installations/{inst['installation_id']}"
    auth = bearer(inst["installation_secret"])
    same = await json(
        await client.patch(path, json={"tags": ["a"], "device": {"model": "X1"}}, headers=auth),
        200,
    )
    assert same["updated_at"] == inst["updated_at"]
    assert same["token_updated_at"] == inst["token_updated_at"]
    changed = await json(
        await client.patch(
            path,
            json={"push_enabled": False, "device": {"os": "18", "model": None}},
            headers=auth,
        ),
        200,
    )
    assert changed["push_enabled"] is False
    assert changed["device"] == {"os": "18"}  # merged; null removes a key
    assert changed["updated_at"] > inst["updated_at"]
    assert changed["token_updated_at"] == inst["token_updated_at"]


async def test_token_of_the_wrong_platform_is_refused(client: Client) -> None:
    app = await App.create(client)
    ios = await app.register()
    path = f"/v1/installations/{ios['installation_id']}"
    auth = bearer(ios["installation_secret"])
    resp = await client.patch(path, json={"push_token": "fcm:not-hex"}, headers=auth)
    assert (await json(resp, 422))["error"]["field"] == "push_token"
    resp = await client.patch(path, json={"web_subscription": web_subscription()}, headers=auth)
    assert (await json(resp, 422))["error"]["field"] == "web_subscription"
    android = await app.register(platform="android")
    resp = await client.patch(
        f"/v1/installations/{android['installation_id']}",
        json={"push_token": "fcm:new-token"},
        headers=bearer(android["installation_secret"]),
    )
    assert (await json(resp, 200))["token_tail"] == "ew-token"


async def test_web_subscription_registration_and_change(client: Client) -> None:
    app = await App.create(client)
    sub = web_subscription("https://updates.push.services.mozilla.com/wpush/v2/abc")
    sub["expirationTime"] = None  # what PushSubscription.toJSON() sends
    inst = await app.register(platform="web", web_subscription=sub)
    assert inst["platform"] == "web"
    again = await app.register(status=200, platform="web", web_subscription=sub)
    assert again["installation_id"] == inst["installation_id"]
    new_sub = web_subscription()
    changed = await json(
        await client.patch(
            f"/v1/installations/{inst['installation_id']}",
            json={"web_subscription": new_sub},
            headers=bearer(again["installation_secret"]),
        ),
        200,
    )
    assert changed["token_tail"] == new_sub["endpoint"][-8:]


async def test_delete_installation(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(inst, external_user_id="dan")
    path = f"/v1/installations/{inst['installation_id']}"
    auth = bearer(inst["installation_secret"])
    await json(await client.delete(path, headers=auth), 204)
    await json(await client.get(path, headers=auth), 401)
    assert (await app.user("dan"))["installations"] == []


async def test_events_are_stored(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    path = f"/v1/installations/{inst['installation_id']}/events"
    auth = bearer(inst["installation_secret"])
    events = [
        {"name": "push.delivered", "message_id": "5f0c4c1e-1f1e-4a5e-9d7c-2f1f3b1d8e11"},
        {"name": "push.opened", "at": "2026-11-22T10:00:00+00:00", "attributes": {"x": 1}},
        {"name": "session.start"},
    ]
    body = await json(await client.post(path, json=events, headers=auth), 202)
    assert body == {"accepted": 3}
    too_many = [{"name": "custom"}] * 101
    await json(await client.post(path, json=too_many, headers=auth), 422)


async def test_stale_registrations_are_pruned(client: Client, settings: Settings) -> None:
    app = await App.create(client)
    stale = await app.register()
    fresh = await app.register()
    pool = await create_pool(settings, max_size=1)
    try:
        await pool.execute(
            "UPDATE installations SET token_updated_at = now() - interval '61 days' "
            "WHERE public_id = $1",
            uuid.UUID(stale["installation_id"]),
        )
        assert await prune_stale(pool, 60) >= 1
    finally:
        await pool.close()
    await json(
        await client.get(
            f"/v1/installations/{stale['installation_id']}",
            headers=bearer(stale["installation_secret"]),
        ),
        401,
    )
    await json(
        await client.get(
            f"/v1/installations/{fresh['installation_id']}",
            headers=bearer(fresh["installation_secret"]),
        ),
        200,
    )

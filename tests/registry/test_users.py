"""Personalize, depersonalize, primary, user lookup and privacy erase."""

from __future__ import annotations

import asyncio

from pushcore.api.auth import identity_token
from tests.registry.helpers import ADMIN, App, Client, bearer, json


async def test_personalize_and_several_devices_per_user(client: Client) -> None:
    app = await App.create(client)
    phone = await app.register()
    tablet = await app.register(platform="android")
    web = await app.register(platform="web")
    for inst in (phone, tablet, web):
        linked = await app.personalize(
            inst, external_user_id="u-1", email="Ann@Example.com", attributes={"plan": "pro"}
        )
        assert linked["external_user_id"] == "u-1"
    user = await app.user("u-1")
    assert user["email"] == "Ann@Example.com"
    assert user["attributes"] == {"plan": "pro"}
    assert {i["installation_id"] for i in user["installations"]} == {
        phone["installation_id"],
        tablet["installation_id"],
        web["installation_id"],
    }
    assert {i["platform"] for i in user["installations"]} == {"ios", "android", "web"}


async def test_conflicting_personalize_is_409_unless_forced(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(inst, external_user_id="alice")
    again = await app.personalize(inst, external_user_id="alice")  # same user: fine
    assert again["external_user_id"] == "alice"
    body = await app.personalize(inst, status=409, external_user_id="bob")
    assert body["error"]["code"] == "attached_to_other_user"
    assert (await app.user("alice"))["installations"][0]["installation_id"] == inst[
        "installation_id"
    ]
    moved = await app.personalize(inst, external_user_id="bob", force_depersonalize=True)
    assert moved["external_user_id"] == "bob"
    assert (await app.user("alice"))["installations"] == []
    assert len((await app.user("bob"))["installations"]) == 1


async def test_depersonalize_makes_installation_anonymous(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(inst, external_user_id="carl")
    path = f"/v1/installations/{inst['installation_id']}/user"
    auth = bearer(inst["installation_secret"])
    out = await json(await client.delete(path, headers=auth), 200)
    assert out["external_user_id"] is None
    assert (await app.user("carl"))["installations"] == []
    await json(await client.delete(path, headers=auth), 200)  # idempotent
    # now any user may take it without force
    assert (await app.personalize(inst, external_user_id="dora"))["external_user_id"] == "dora"


async def test_server_side_personalize_and_depersonalize(client: Client) -> None:
    app = await App.create(client, identity_verification=True)
    inst = await app.register()
    path = f"/v1/apps/{app.code}/installations/{inst['installation_id']}/user"
    # the server needs no identity proof
    linked = await json(
        await client.put(path, json={"external_user_id": "srv"}, headers=app.server), 200
    )
    assert linked["external_user_id"] == "srv"
    await json(await client.put(path, json={"external_user_id": "other"}, headers=app.server), 409)
    out = await json(await client.delete(path, headers=app.server), 200)
    assert out["external_user_id"] is None


async def test_single_primary_per_user(client: Client) -> None:
    app = await App.create(client)
    a = await app.register()
    b = await app.register()
    for inst in (a, b):
        await app.personalize(inst, external_user_id="pat")

    async def primary(inst: dict[str, object], value: bool, status: int = 200) -> object:
        return await json(
            await client.put(
                f"/v1/installations/{inst['installation_id']}/primary",
                json={"primary": value},
                headers=bearer(str(inst["installation_secret"])),
            ),
            status,
        )

    await primary(a, True)
    assert (await app.user("pat"))["primary_installation_id"] == a["installation_id"]
    await primary(b, True)  # moves the primary; a is no longer primary
    user = await app.user("pat")
    assert user["primary_installation_id"] == b["installation_id"]
    assert [i["installation_id"] for i in user["installations"] if i["primary"]] == [
        b["installation_id"]
    ]
    await primary(a, False)  # a was not primary: nothing changes
    assert (await app.user("pat"))["primary_installation_id"] == b["installation_id"]
    # server-side variant
    await json(
        await client.put(
            f"/v1/apps/{app.code}/installations/{a['installation_id']}/primary",
            json={"primary": True},
            headers=app.server,
        ),
        200,
    )
    assert (await app.user("pat"))["primary_installation_id"] == a["installation_id"]
    # moving the primary installation to another user clears pat's primary
    await app.personalize(a, external_user_id="quinn", force_depersonalize=True)
    assert (await app.user("pat"))["primary_installation_id"] is None
    # an anonymous installation cannot be primary
    anon = await app.register()
    assert (await primary(anon, True, 409))["error"]["code"] == "no_user"  # type: ignore[index]


async def test_lookup_by_email_and_phone(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(
        inst, external_user_id="eve", email="Eve@Example.com", msisdn="+4915112345678"
    )
    other = await app.register()
    await app.personalize(other, external_user_id="eve2", email="eve@example.com")
    found = await json(
        await client.get(f"/v1/apps/{app.code}/users?email=EVE@example.com", headers=app.server),
        200,
    )
    assert sorted(u["external_user_id"] for u in found["users"]) == ["eve", "eve2"]
    by_phone = await json(
        await client.get(
            f"/v1/apps/{app.code}/users", params={"msisdn": "+4915112345678"}, headers=app.server
        ),
        200,
    )
    assert [u["external_user_id"] for u in by_phone["users"]] == ["eve"]
    assert by_phone["users"][0]["installations"][0]["installation_id"] == inst["installation_id"]
    none = await json(
        await client.get(f"/v1/apps/{app.code}/users?email=nobody@example.com", headers=app.server),
        200,
    )
    assert none["users"] == []


async def test_patch_user(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(
        inst, external_user_id="fay", email="fay@example.com", attributes={"a": 1, "b": 2}
    )
    path = f"/v1/apps/{app.code}/users/fay"
    out = await json(
        await client.patch(
            path,
            json={
                "msisdn": "+15551234567",
                "email": None,
                "attributes": {"b": None, "c": 3},
                "tags": ["vip"],
            },
            headers=app.server,
        ),
        200,
    )
    assert out["msisdn"] == "+15551234567"
    assert out["email"] is None
    assert out["attributes"] == {"a": 1, "c": 3}
    assert out["tags"] == ["vip"]
    await json(
        await client.patch(f"/v1/apps/{app.code}/users/nobody", json={}, headers=app.server), 404
    )


async def test_privacy_erase(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    await app.personalize(
        inst, external_user_id="gus", email="gus@example.com", msisdn="+15550000001"
    )
    await json(await client.delete(f"/v1/apps/{app.code}/users/gus", headers=app.server), 204)
    await app.user("gus", status=404)
    found = await json(
        await client.get(f"/v1/apps/{app.code}/users?email=gus@example.com", headers=app.server),
        200,
    )
    assert found["users"] == []
    # the installation survives, anonymous
    shown = await json(
        await client.get(
            f"/v1/installations/{inst['installation_id']}",
            headers=bearer(inst["installation_secret"]),
        ),
        200,
    )
    assert shown["external_user_id"] is None
    await json(await client.delete(f"/v1/apps/{app.code}/users/gus", headers=app.server), 404)


async def test_identity_verification(client: Client) -> None:
    app = await App.create(client, identity_verification=True)
    inst = await app.register()
    missing = await app.personalize(inst, status=403, external_user_id="ida")
    assert missing["error"]["field"] == "identity_token"
    wrong = identity_token(app.identity_secret, "someone-else")
    await app.personalize(inst, status=403, external_user_id="ida", identity_token=wrong)
    good = identity_token(app.identity_secret, "ida")
    assert len(good) == 64
    assert good == good.lower()
    ok = await app.personalize(inst, external_user_id="ida", identity_token=good)
    assert ok["external_user_id"] == "ida"
    # an app without verification accepts device-side personalize without a token
    plain = await App.create(client)
    assert (await plain.personalize(await plain.register(), external_user_id="x"))[
        "external_user_id"
    ] == "x"
    # turning verification on later applies at once
    await json(
        await client.patch(
            f"/v1/apps/{plain.code}", json={"identity_verification": True}, headers=ADMIN
        ),
        200,
    )
    await plain.personalize(await plain.register(), status=403, external_user_id="y")


async def test_concurrent_personalize_leaves_one_consistent_state(client: Client) -> None:
    app = await App.create(client)
    for _ in range(5):
        inst = await app.register()
        results = await asyncio.gather(
            *(
                client.put(
                    f"/v1/installations/{inst['installation_id']}/user",
                    json={"external_user_id": name},
                    headers=bearer(inst["installation_secret"]),
                )
                for name in ("racer-a", "racer-b", "racer-c", "racer-d")
            )
        )
        statuses = sorted(r.status for r in results)
        assert statuses == [200, 409, 409, 409], statuses
        (winner,) = [(await r.json())["external_user_id"] for r in results if r.status == 200]
        # exactly one user holds the installation, and it is the one the API said
        holders = []
        for name in ("racer-a", "racer-b", "racer-c", "racer-d"):
            resp = await client.get(f"/v1/apps/{app.code}/users/{name}", headers=app.server)
            if resp.status == 200:
                body = await resp.json()
                if any(
                    i["installation_id"] == inst["installation_id"] for i in body["installations"]
                ):
                    holders.append(name)
        assert holders == [winner]
        await client.delete(
            f"/v1/installations/{inst['installation_id']}/user",
            headers=bearer(inst["installation_secret"]),
        )

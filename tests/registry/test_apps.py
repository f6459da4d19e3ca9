"""Apps, credentials and server keys through the admin API."""

from __future__ import annotations

import secrets

from tests.registry.helpers import ADMIN, App, Client, bearer, ec_pem, json, rsa_pem


async def test_admin_token_required(client: Client) -> None:
    for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": "Basic x"}):
        resp = await client.post("/v1/apps", json={"name": "x"}, headers=headers)
        body = await json(resp, 401)
        assert body["error"]["code"] == "unauthorized"


async def test_create_app_returns_secrets_once(client: Client) -> None:
    app = await App.create(client, name="shop")
    assert app.code.startswith("app_")
    assert app.server_key.startswith("pcs_")
    assert app.identity_secret
    shown = await json(await client.get(f"/v1/apps/{app.code}", headers=ADMIN), 200)
    assert shown["name"] == "shop"
    assert "server_key" not in shown
    assert "identity_secret" not in shown
    # the app's own server key may read it too
    assert (await json(await client.get(f"/v1/apps/{app.code}", headers=app.server), 200))[
        "app_code"
    ] == app.code
    listed = await json(await client.get("/v1/apps", headers=ADMIN), 200)
    assert app.code in [a["app_code"] for a in listed["apps"]]


async def test_credentials_are_write_only(client: Client) -> None:
    apns_key = ec_pem()
    rsa_key = rsa_pem()
    vapid = ec_pem()
    app = await App.create(
        client,
        apns={
            "team_id": "ABCDE12345",
            "key_id": "KEY1234567",
            "private_key": apns_key,
            "topic": "com.example.app",
            "environment": "sandbox",
        },
        fcm={
            "service_account": {
                "type": "service_account",
                "project_id": "demo-project",
                "private_key": rsa_key,
                "client_email": "sender@demo-project.iam.gserviceaccount.com",
            }
        },
        webpush={"vapid_private_key": vapid, "subject": "mailto:ops@example.com"},
    )
    for body in (
        app.created,
        await json(await client.get(f"/v1/apps/{app.code}", headers=ADMIN), 200),
    ):
        text = str(body)
        assert "PRIVATE KEY" not in text
        assert body["apns"]["team_id"] == "ABCDE12345"
        assert body["apns"]["environment"] == "sandbox"
        assert body["fcm"]["project_id"] == "demo-project"
        assert body["webpush"]["vapid_public_key"]


async def test_patch_app_replaces_and_removes_credentials(client: Client) -> None:
    app = await App.create(client)
    path = f"/v1/apps/{app.code}"
    patched = await json(
        await client.patch(
            path,
            json={
                "name": "renamed",
                "identity_verification": True,
                "webpush": {"vapid_private_key": ec_pem(), "subject": "https://example.com"},
            },
            headers=ADMIN,
        ),
        200,
    )
    assert patched["name"] == "renamed"
    assert patched["identity_verification"] is True
    assert patched["webpush"]["subject"] == "https://example.com"
    removed = await json(await client.patch(path, json={"webpush": None}, headers=ADMIN), 200)
    assert removed["webpush"] is None
    assert removed["name"] == "renamed"
    # unchanged values leave updated_at alone
    again = await json(await client.patch(path, json={"name": "renamed"}, headers=ADMIN), 200)
    assert again["updated_at"] == removed["updated_at"]
    # only the admin may patch
    await json(await client.patch(path, json={"name": "x"}, headers=app.server), 401)


async def test_server_keys_create_list_revoke(client: Client) -> None:
    app = await App.create(client)
    keys_path = f"/v1/apps/{app.code}/keys"
    created = await json(await client.post(keys_path, headers=ADMIN), 201)
    second = bearer(created["server_key"])
    await json(await client.get(f"/v1/apps/{app.code}/users/nobody", headers=second), 404)
    listed = await json(await client.get(keys_path, headers=ADMIN), 200)
    assert {k["key_id"] for k in listed["keys"]} == {app.created["key_id"], created["key_id"]}
    await json(await client.delete(f"{keys_path}/{created['key_id']}", headers=ADMIN), 204)
    resp = await client.get(f"/v1/apps/{app.code}/users/nobody", headers=second)
    assert (await json(resp, 401))["error"]["code"] == "unauthorized"
    # the first key still works; revoking an unknown key is a 404
    await json(await client.get(f"/v1/apps/{app.code}/users/nobody", headers=app.server), 404)
    await json(await client.delete(f"{keys_path}/key_nope", headers=ADMIN), 404)


async def test_unknown_app_is_404_for_admin(client: Client) -> None:
    missing = "app_" + secrets.token_hex(6)
    for method, path in (("GET", ""), ("POST", "/keys"), ("GET", "/keys")):
        resp = await client.request(method, f"/v1/apps/{missing}{path}", headers=ADMIN)
        assert (await json(resp, 404))["error"]["code"] == "not_found"
    resp = await client.patch(f"/v1/apps/{missing}", json={"name": "x"}, headers=ADMIN)
    await json(resp, 404)

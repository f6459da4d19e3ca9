"""A server key of app A sees nothing of app B; device secrets only open their installation."""

from __future__ import annotations

from tests.registry.helpers import App, Client, bearer, json


async def test_server_key_of_other_app_gets_404(client: Client) -> None:
    a = await App.create(client, name="A")
    b = await App.create(client, name="B")
    inst_b = await b.register()
    await b.personalize(inst_b, external_user_id="bob", email="bob@example.com")
    iid = inst_b["installation_id"]
    attempts = [
        ("GET", f"/v1/apps/{b.code}", None),
        ("GET", f"/v1/apps/{b.code}/users/bob", None),
        ("GET", f"/v1/apps/{b.code}/users?email=bob@example.com", None),
        ("PATCH", f"/v1/apps/{b.code}/users/bob", {"email": "x@example.com"}),
        ("DELETE", f"/v1/apps/{b.code}/users/bob", None),
        ("GET", f"/v1/apps/{b.code}/installations/{iid}", None),
        ("PUT", f"/v1/apps/{b.code}/installations/{iid}/user", {"external_user_id": "eve"}),
        ("DELETE", f"/v1/apps/{b.code}/installations/{iid}/user", None),
        ("PUT", f"/v1/apps/{b.code}/installations/{iid}/primary", {"primary": True}),
        # B's installation addressed through A's own path is not found either
        ("GET", f"/v1/apps/{a.code}/installations/{iid}", None),
        ("PUT", f"/v1/apps/{a.code}/installations/{iid}/user", {"external_user_id": "eve"}),
    ]
    for method, path, body in attempts:
        resp = await client.request(method, path, json=body, headers=a.server)
        assert (await json(resp, 404))["error"]["code"] == "not_found", (method, path)
    # nothing changed in B
    user = await b.user("bob")
    assert user["email"] == "bob@example.com"
    assert [i["installation_id"] for i in user["installations"]] == [iid]
    # and A cannot see B's user by name through its own path
    await a.user("bob", status=404)


async def test_installation_secret_opens_only_its_installation(client: Client) -> None:
    app = await App.create(client)
    one = await app.register()
    two = await app.register()
    path = f"/v1/installations/{two['installation_id']}"
    for headers in ({}, bearer(one["installation_secret"]), bearer(app.server_key)):
        for method, sub, body in (
            ("GET", "", None),
            ("PATCH", "", {"tags": ["x"]}),
            ("DELETE", "", None),
            ("PUT", "/user", {"external_user_id": "mallory"}),
            ("DELETE", "/user", None),
            ("PUT", "/primary", {"primary": True}),
            ("POST", "/events", [{"name": "push.opened"}]),
        ):
            resp = await client.request(method, path + sub, json=body, headers=headers)
            assert (await json(resp, 401))["error"]["code"] == "unauthorized", (method, sub)
    shown = await json(await client.get(path, headers=bearer(two["installation_secret"])), 200)
    assert shown["tags"] == []
    assert shown["external_user_id"] is None


async def test_registering_into_unknown_app_is_404(client: Client) -> None:
    resp = await client.post(
        "/v1/apps/app_doesnotexist/installations",
        json={"platform": "ios", "push_token": "ab" * 32},
    )
    assert (await json(resp, 404))["error"]["code"] == "not_found"

"""The table of bad inputs: each malformed field gets its 4xx naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.registry.helpers import ADMIN, App, Client, apns_token, bearer, ec_pem, web_subscription

HEX64 = "ab" * 32


def sub(**changes: Any) -> dict[str, Any]:
    s = web_subscription()
    for key, value in changes.items():
        if key in ("p256dh", "auth"):
            s["keys"][key] = value
        else:
            s[key] = value
    return s


# (body, status, field) for POST /v1/apps/{code}/installations
REGISTER_CASES = [
    ({}, 422, "platform"),
    ({"platform": "blackberry", "push_token": HEX64}, 422, "platform"),
    ({"platform": "ios"}, 422, "push_token"),
    ({"platform": "ios", "push_token": "ab" * 31}, 422, "push_token"),  # 62 chars: too short
    ({"platform": "ios", "push_token": "ab" * 101}, 422, "push_token"),  # 202 chars
    ({"platform": "ios", "push_token": "a" * 65}, 422, "push_token"),  # odd length
    ({"platform": "ios", "push_token": "zz" * 32}, 422, "push_token"),  # not hex
    ({"platform": "ios", "push_token": 42}, 422, "push_token"),
    ({"platform": "android", "push_token": "has space"}, 422, "push_token"),
    ({"platform": "android", "push_token": "x" * 4097}, 422, "push_token"),
    ({"platform": "android", "push_token": "tok\u00e9n"}, 422, "push_token"),
    ({"platform": "android", "push_token": ""}, 422, "push_token"),
    ({"platform": "web"}, 422, "web_subscription"),
    ({"platform": "web", "push_token": HEX64}, 422, "push_token"),
    ({"platform": "ios", "push_token": HEX64, "web_subscription": sub()}, 422, "web_subscription"),
    (
        {"platform": "web", "web_subscription": sub(endpoint="http://push.example.com/x")},
        422,
        "web_subscription.endpoint",
    ),
    (
        {"platform": "web", "web_subscription": sub(endpoint="ftp://push.example.com/x")},
        422,
        "web_subscription.endpoint",
    ),
    (
        {"platform": "web", "web_subscription": sub(endpoint="not a url")},
        422,
        "web_subscription.endpoint",
    ),
    (
        {"platform": "web", "web_subscription": sub(p256dh="AAAA")},
        422,
        "web_subscription.keys.p256dh",
    ),
    (
        {"platform": "web", "web_subscription": sub(p256dh="BA" + "A" * 85)},
        422,
        "web_subscription.keys.p256dh",
    ),  # 65 bytes, not on the curve
    (
        {"platform": "web", "web_subscription": sub(p256dh="!!not-base64!!")},
        422,
        "web_subscription.keys.p256dh",
    ),
    ({"platform": "web", "web_subscription": sub(auth="AAAA")}, 422, "web_subscription.keys.auth"),
    (
        {"platform": "web", "web_subscription": {"endpoint": "https://x.example/1"}},
        422,
        "web_subscription.keys",
    ),
    ({"platform": "ios", "push_token": HEX64, "tags": ["t"] * 101}, 422, "tags"),
    ({"platform": "ios", "push_token": HEX64, "tags": ["x" * 129]}, 422, "tags[0]"),
    ({"platform": "ios", "push_token": HEX64, "tags": [""]}, 422, "tags[0]"),
    ({"platform": "ios", "push_token": HEX64, "tags": "news"}, 422, "tags"),
    ({"platform": "ios", "push_token": HEX64, "device": {"k": [1, 2]}}, 422, "device[...]"),
    ({"platform": "ios", "push_token": HEX64, "device": {"k" * 65: 1}}, 422, "device"),
    ({"platform": "ios", "push_token": HEX64, "push_enabled": "yes"}, 422, "push_enabled"),
    ({"platform": "ios", "push_token": HEX64, "colour": "red"}, 422, "colour"),  # unknown field
    # a NUL (U+0000) anywhere: PostgreSQL's text and jsonb cannot hold it
    ({"platform": "ios", "push_token": HEX64, "tags": ["a\u0000b"]}, 422, "tags[0]"),
    ({"platform": "ios", "push_token": HEX64, "device": {"k": "a\u0000"}}, 422, "device[...]"),
    ({"platform": "ios", "push_token": HEX64, "device": {"k\u0000": 1}}, 422, "device"),
    ({"platform": "android", "push_token": "tok\u0000en"}, 422, "push_token"),
    (
        {"platform": "web", "web_subscription": sub(endpoint="https://fcm.googleapis.com/\u0000")},
        422,
        "web_subscription.endpoint",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), REGISTER_CASES)
async def test_register_bad_input(
    client: Client, body: dict[str, Any], status: int, field: str
) -> None:
    app = await App.create(client)
    resp = await client.post(f"/v1/apps/{app.code}/installations", json=body)
    answer = await resp.json()
    assert resp.status == status, answer
    assert answer["error"]["field"] == field, answer
    assert answer["error"]["code"] in {"invalid_field", "unknown_field"}


async def test_body_not_json_or_missing_or_too_large(client: Client) -> None:
    app = await App.create(client)
    path = f"/v1/apps/{app.code}/installations"
    as_json = {"Content-Type": "application/json"}
    resp = await client.post(path, data=b"{not json", headers=as_json)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post(path, data=b"", headers=as_json)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "body_required"
    resp = await client.post(path, data=b"[1, 2]", headers=as_json)
    assert resp.status == 422
    big = b'{"platform": "ios", "push_token": "' + b"a" * (65 * 1024) + b'"}'
    resp = await client.post(path, data=big, headers=as_json)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"


# (body, field) for PUT /v1/installations/{id}/user
PERSONALIZE_CASES = [
    ({}, "external_user_id"),
    ({"external_user_id": ""}, "external_user_id"),
    ({"external_user_id": "x" * 257}, "external_user_id"),
    ({"external_user_id": "u", "email": "not-an-email"}, "email"),
    ({"external_user_id": "u", "msisdn": "0151 1234"}, "msisdn"),
    ({"external_user_id": "u", "msisdn": "+0123456789"}, "msisdn"),
    ({"external_user_id": "u", "attributes": {"a": {"nested": 1}}}, "attributes[...]"),
    ({"external_user_id": "u", "attributes": {str(i): i for i in range(101)}}, "attributes"),
    ({"external_user_id": "u", "force_depersonalize": "true"}, "force_depersonalize"),
    ({"external_user_id": "u", "role": "admin"}, "role"),
    ({"external_user_id": "a\u0000b"}, "external_user_id"),
    ({"external_user_id": "u", "email": "a\u0000@b.c"}, "email"),
    ({"external_user_id": "u", "attributes": {"plan": "pro\u0000"}}, "attributes[...]"),
    ({"external_user_id": "u", "attributes": {"\u0000": "x"}}, "attributes"),
    ({"external_user_id": "u", "identity_token": "\u0000"}, "identity_token"),
]


@pytest.mark.parametrize(("body", "field"), PERSONALIZE_CASES)
async def test_personalize_bad_input(client: Client, body: dict[str, Any], field: str) -> None:
    app = await App.create(client)
    inst = await app.register()
    answer = await app.personalize(inst, status=422, **body)
    assert answer["error"]["field"] == field, answer


APP_CASES = [
    ({}, "name"),
    ({"name": ""}, "name"),
    (
        {
            "name": "x",
            "apns": {
                "topic": "com.x",
                "private_key": "nope",
                "team_id": "ABCDE12345",
                "key_id": "KEY1234567",
            },
        },
        "apns.private_key",
    ),
    ({"name": "x", "apns": {"topic": "com.x", "private_key": "PEM"}}, "apns.team_id"),
    (
        {
            "name": "x",
            "apns": {
                "topic": "com.x",
                "private_key": "k",
                "team_id": "short",
                "key_id": "KEY1234567",
            },
        },
        "apns.team_id",
    ),
    (
        {
            "name": "x",
            "apns": {
                "topic": "com.x",
                "private_key": "k",
                "team_id": "ABCDE12345",
                "key_id": "KEY1234567",
                "environment": "staging",
            },
        },
        "apns.environment",
    ),
    ({"name": "x", "fcm": {"service_account": "{not json"}}, "fcm.service_account"),
    ({"name": "x", "fcm": {"service_account": {"type": "service_account"}}}, "fcm.service_account"),
    (
        {"name": "x", "webpush": {"vapid_private_key": "abc", "subject": "mailto:a@b.c"}},
        "webpush.vapid_private_key",
    ),
    (
        {"name": "x", "webpush": {"vapid_private_key": ec_pem(), "subject": "ops@example.com"}},
        "webpush.subject",
    ),
    ({"name": "x", "identity_verification": "on"}, "identity_verification"),
    ({"name": "a\u0000b"}, "name"),
    (
        {"name": "x", "webpush": {"vapid_private_key": ec_pem(), "subject": "mailto:a@b.c\u0000"}},
        "webpush.subject",
    ),
]


@pytest.mark.parametrize(("body", "field"), APP_CASES)
async def test_app_bad_input(client: Client, body: dict[str, Any], field: str) -> None:
    resp = await client.post("/v1/apps", json=body, headers=ADMIN)
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == field, answer


async def test_other_bad_inputs(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register()
    auth = bearer(inst["installation_secret"])
    iid = inst["installation_id"]
    cases: list[tuple[str, str, Any, dict[str, str], int, str | None]] = [
        (
            "PATCH",
            f"/v1/installations/{iid}",
            {"push_token": apns_token(), "web_subscription": web_subscription()},
            auth,
            422,
            "push_token",
        ),
        ("PATCH", f"/v1/installations/{iid}", {"tags": [1]}, auth, 422, "tags[0]"),
        ("PUT", f"/v1/installations/{iid}/primary", {}, auth, 422, "primary"),
        ("POST", f"/v1/installations/{iid}/events", [], auth, 422, None),
        (
            "POST",
            f"/v1/installations/{iid}/events",
            [{"name": "x", "at": "yesterday"}],
            auth,
            422,
            "[0].at",
        ),
        (
            "POST",
            f"/v1/installations/{iid}/events",
            [{"name": "x", "at": "2026-01-01T00:00:00"}],
            auth,
            422,
            "[0].at",
        ),
        (
            "POST",
            f"/v1/installations/{iid}/events",
            [{"name": "x", "message_id": "nope"}],
            auth,
            422,
            "[0].message_id",
        ),
        (
            "POST",
            f"/v1/installations/{iid}/events",
            [{"name": "x\u0000"}],
            auth,
            422,
            "[0].name",
        ),
        (
            "POST",
            f"/v1/installations/{iid}/events",
            [{"name": "x"}, {"name": "y", "attributes": {"k": "\u0000"}}],
            auth,
            422,
            "[1].attributes[...]",
        ),
        # times that parse but leave PostgreSQL's range once their offset is applied, and
        # times outside the documented window
        *(
            (
                "POST",
                f"/v1/installations/{iid}/events",
                [{"name": "x", "at": at}],
                auth,
                422,
                "[0].at",
            )
            for at in (
                "0001-01-01T00:00:00+01:00",
                "9999-12-31T23:59:59-01:00",
                "1999-12-31T23:59:59Z",
                "2999-01-01T00:00:00Z",
            )
        ),
        ("PATCH", f"/v1/installations/{iid}", {"tags": ["\u0000"]}, auth, 422, "tags[0]"),
        (
            "PATCH",
            f"/v1/apps/{app.code}/users/x",
            {"tags": ["a\u0000"]},
            app.server,
            422,
            "tags[0]",
        ),
        ("GET", f"/v1/apps/{app.code}/users/a%00b", None, app.server, 404, None),
        ("PATCH", f"/v1/apps/{app.code}/users/a%00b", {"tags": []}, app.server, 404, None),
        ("DELETE", f"/v1/apps/{app.code}/users/a%00b", None, app.server, 404, None),
        ("GET", "/v1/apps/app_%00", None, ADMIN, 404, None),
        ("GET", f"/v1/apps/{app.code}/users?email=a%00@b.c", None, app.server, 422, "email"),
        ("GET", f"/v1/apps/{app.code}/users?msisdn=%2B4915%00", None, app.server, 422, "msisdn"),
        ("GET", f"/v1/apps/{app.code}/messages?limit=", None, app.server, 422, "limit"),
        ("GET", f"/v1/apps/{app.code}/messages?limit=0", None, app.server, 422, "limit"),
        ("GET", f"/v1/apps/{app.code}/messages?limit=101", None, app.server, 422, "limit"),
        ("GET", f"/v1/apps/{app.code}/messages?limit=1.5", None, app.server, 422, "limit"),
        ("GET", f"/v1/apps/{app.code}/messages?before=nope", None, app.server, 422, "before"),
        ("GET", f"/v1/apps/{app.code}/messages?before=%00", None, app.server, 422, "before"),
        (
            "GET",
            f"/v1/apps/{app.code}/users?email=a@b.c&msisdn=%2B4915112345678",
            None,
            app.server,
            400,
            "email",
        ),
        ("GET", f"/v1/apps/{app.code}/users?email=bad", None, app.server, 422, "email"),
        ("GET", f"/v1/apps/{app.code}/users?msisdn=123", None, app.server, 422, "msisdn"),
        ("GET", f"/v1/apps/{app.code}/users", None, app.server, 400, "email"),
        ("PATCH", f"/v1/apps/{app.code}/users/x", {"tags": ["a"] * 101}, app.server, 422, "tags"),
        ("GET", "/v1/installations/not-a-uuid", None, auth, 404, None),
        ("GET", "/v1/nowhere", None, {}, 404, None),
        ("PUT", "/v1/apps", None, ADMIN, 405, None),
    ]
    for method, path, body, headers, status, field in cases:
        resp = await client.request(method, path, json=body, headers=headers)
        answer = await resp.json()
        assert resp.status == status, (method, path, answer)
        assert answer["error"].get("field") == field, (method, path, answer)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "json"],
)
async def test_a_json_body_needs_its_content_type(client: Client, content_type: str | None) -> None:
    """A JSON body under another (or no) Content-Type is refused with 415, and nothing is
    stored; application/json with a charset and +json types are JSON."""
    app = await App.create(client)
    path = f"/v1/apps/{app.code}/installations"
    body = b'{"platform": "ios", "push_token": "%s"}' % apns_token().encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = await client.post(path, data=body, headers=headers, skip_auto_headers={"Content-Type"})
    answer = await resp.json()
    assert resp.status == 415, answer
    assert answer["error"]["code"] == "unsupported_media_type"
    for accepted in ("application/json; charset=utf-8", "application/merge-patch+json"):
        resp = await client.post(path, data=body, headers={"Content-Type": accepted})
        assert resp.status in (200, 201), await resp.text()
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200  # the same token again: one installation, stored once


async def test_405_says_which_methods_are_allowed(client: Client) -> None:
    app = await App.create(client)
    for method, path, allowed in [
        ("PUT", "/v1/apps", {"GET", "POST"}),
        ("GET", f"/v1/apps/{app.code}/keys/key_x", {"DELETE"}),
        ("POST", f"/v1/apps/{app.code}/users/u", {"GET", "PATCH", "DELETE"}),
    ]:
        resp = await client.request(method, path, headers=ADMIN)
        answer = await resp.json()
        assert resp.status == 405, answer
        assert answer["error"]["code"] == "method_not_allowed"
        assert set(resp.headers["Allow"].split(",")) >= allowed, resp.headers["Allow"]


@pytest.mark.parametrize("token", ["\u00e9" * 64, "zz", "", "A" * 64])
async def test_a_malformed_identity_token_is_a_403(client: Client, token: str) -> None:
    """Found by the property-based run: a non-ASCII identity_token made the constant-time
    comparison raise (500)."""
    app = await App.create(client, identity_verification=True)
    inst = await app.register()
    answer = await app.personalize(inst, status=403, external_user_id="u", identity_token=token)
    assert answer["error"]["field"] == "identity_token", answer

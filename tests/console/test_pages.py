"""The console over plain HTTP: sign-in and the session cookie, CSRF, who sees which app,
and the compose form's bad inputs shown next to their fields in the API's words."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import aiohttp
import msgspec
import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.conftest import ADMIN_TOKEN
from tests.console.conftest import Client, Seeded
from tests.console.helpers import csrf, error_at, page, post_form, sign_in
from tests.registry.helpers import ADMIN, json


async def test_sign_in_with_a_server_key_sets_a_strict_http_only_cookie(
    seeded: Seeded, api: Client
) -> None:
    login = await api.get("/console/login")
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain http here
    token = csrf(await login.text())
    resp = await api.post(
        "/console/login",
        data={"credential": seeded.server_key, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"/console/apps/{seeded.code}/"
    signed = resp.headers["Set-Cookie"]
    assert "HttpOnly" in signed
    assert "SameSite=Strict" in signed
    assert seeded.server_key not in signed
    overview = await page(api, f"/console/apps/{seeded.code}/")
    assert "Installations by platform" in overview
    assert seeded.server_key not in overview


async def test_secure_cookie_behind_https(api: Client) -> None:
    resp = await api.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_wrong_credentials_are_refused_and_not_shown_back(
    seeded: Seeded, api: Client
) -> None:
    for wrong in ("pcs_" + "x" * 43, "not a key", ADMIN_TOKEN + "x", ""):
        text = await sign_in(api, wrong, status=401)
        assert "not a valid server key or admin token" in text
        if wrong:
            assert wrong not in text
    assert (await api.get("/console/", allow_redirects=False)).status == 303


async def test_post_without_csrf_token_is_refused(seeded: Seeded, api: Client) -> None:
    await sign_in(api, seeded.server_key)
    compose = f"/console/apps/{seeded.code}/compose"
    for data in ({}, {"csrf_token": "forged"}):
        resp = await api.post(
            compose, data={"target_kind": "all", "notification.title": "x", **data}
        )
        assert resp.status == 403
        assert "did not come from the console" in await resp.text()
    resp = await api.post("/console/logout")
    assert resp.status == 403
    assert (await api.get(f"/console/apps/{seeded.code}/")).status == 200  # still signed in
    # a token of another session is no token of this one
    other = await page(api, "/console/login")
    api.session.cookie_jar.clear()
    resp = await api.post(
        "/console/login", data={"credential": ADMIN_TOKEN, "csrf_token": csrf(other)}
    )
    assert resp.status == 403


async def test_tampered_or_foreign_cookie_signs_out(seeded: Seeded, api: Client) -> None:
    forged = URLSafeTimedSerializer("another-secret-" * 3, salt="pushcore.console.session")
    cookie = forged.dumps({"c": "t", "k": "admin", "m": "x"})
    api.session.cookie_jar.update_cookies({"pushcore_console": cookie})
    resp = await api.get("/console/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login"


async def test_an_apps_key_cannot_see_another_app(seeded: Seeded, api: Client) -> None:
    other = await json(await api.post("/v1/apps", json={"name": "other"}, headers=ADMIN), 201)
    await sign_in(api, seeded.server_key)
    for path in ("/", "/audience", "/compose", "/messages", "/settings"):
        text = await page(api, f"/console/apps/{other['app_code']}{path}", status=404)
        assert "other" not in text.split("<main", 1)[1]
    # the admin page of every app is the admin's
    resp = await api.get("/console/", allow_redirects=False)
    assert resp.headers["Location"] == f"/console/apps/{seeded.code}/"


async def test_admin_sees_every_app_and_manages_keys(seeded: Seeded, api: Client) -> None:
    await sign_in(api, ADMIN_TOKEN)
    home = await page(api, "/console/")
    assert seeded.code in home
    settings_path = f"/console/apps/{seeded.code}/settings"
    created = await post_form(
        api, f"/console/apps/{seeded.code}/keys", {}, token_from=settings_path
    )
    key = re.search(r'id="new-key" type="text" readonly value="(pcs_[^"]+)"', created)
    assert key, "the new key is shown once"
    again = await page(api, settings_path)
    assert key.group(1) not in again
    key_ids = re.findall(r"<code>(key_[^<]+)</code>", again)
    assert len(key_ids) == 2
    # the new key signs in; revoked, its session ends
    api.session.cookie_jar.clear()
    await sign_in(api, key.group(1))
    assert (await api.get(f"/console/apps/{seeded.code}/", allow_redirects=False)).status == 200
    key_session = api.session.cookie_jar.filter_cookies(api.make_url("/console/"))
    api.session.cookie_jar.clear()
    await sign_in(api, ADMIN_TOKEN)
    new_id = key_ids[-1]
    await post_form(
        api, f"/console/apps/{seeded.code}/keys/{new_id}/revoke", {}, token_from=settings_path
    )
    assert "revoked" in await page(api, settings_path)
    api.session.cookie_jar.clear()
    api.session.cookie_jar.update_cookies(key_session, api.make_url("/console/"))
    resp = await api.get(f"/console/apps/{seeded.code}/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login"


async def test_server_key_cannot_manage_keys(seeded: Seeded, api: Client) -> None:
    await sign_in(api, seeded.server_key)
    settings_path = f"/console/apps/{seeded.code}/settings"
    text = await page(api, settings_path)
    assert "Server keys" not in text
    await post_form(
        api, f"/console/apps/{seeded.code}/keys", {}, token_from=settings_path, status=403
    )


async def test_settings_show_public_credentials_only(seeded: Seeded, api: Client) -> None:
    await sign_in(api, seeded.server_key)
    text = await page(api, f"/console/apps/{seeded.code}/settings")
    assert "ABCDE12345" in text
    assert "KEY1234567" in text
    assert "demo-project" in text  # FCM project
    assert "PRIVATE KEY" not in text
    vapid = re.search(r'id="vapid" type="text" readonly value="([A-Za-z0-9_-]{80,})"', text)
    assert vapid, "the VAPID public key is shown for copying"


async def test_lookup_and_user_pages(seeded: Seeded, api: Client) -> None:
    await sign_in(api, seeded.server_key)
    base = f"/console/apps/{seeded.code}"
    user = await page(api, f"{base}/audience?by=email&q=USER-1@example.com")
    assert "User <code>user-1</code>" in user
    device = seeded.users["user-1"][0]
    assert device.installation_id[:8] in user
    inst = await page(api, f"{base}/installations/{device.installation_id}")
    assert device.installation_id in inst
    assert "2.2.0" in inst
    none = await page(api, f"{base}/audience?by=msisdn&q=%2B15550000000")
    assert "No user matches." in none
    await page(api, f"{base}/users/nobody", status=404)
    await page(api, f"{base}/installations/not-a-uuid", status=404)
    tags = await page(api, f"{base}/audience")
    assert re.search(r"<code>news</code></td><td class=\"num\">12</td>", tags)


def _form(**fields: Any) -> dict[str, Any]:
    base = {"target_kind": "tags", "target_values": "news", "notification.title": "Hi"}
    return {**base, **fields}


BAD_FIELDS = [
    # (form fields, form field where the error shows, words of the API's message)
    ({"ttl_seconds": "soon"}, "ttl_seconds", "Expected `int | null`, got `str`"),
    ({"ttl_seconds": "99999999"}, "ttl_seconds", "Expected `int` <= 2419200"),
    ({"collapse_key": "has space"}, "collapse_key", "Expected `str` matching regex"),
    ({"notification.title": "x" * 5000}, "notification.title", "length <= 4096"),
    ({"notification.url": "x" * 3000}, "notification.url", "length <= 2048"),
    ({"notification.data": "no equals sign"}, "notification.data", "write key=value"),
    ({"send_at": "tomorrow"}, "send_at", "Invalid RFC3339 encoded datetime"),
    ({"priority": "urgent"}, "priority", "Invalid enum value 'urgent'"),
    ({"target_kind": "emails", "target_values": "a@b.c, nope"}, "target", "target.emails[1]"),
    ({"target_values": ""}, "target", "give at least one value for tags"),
    ({"notification.body": "é" * 3000}, "notification", "payload"),
    ({"inbox": "on", "inbox.topic": "t" * 65}, "inbox.topic", "length <= 64"),
    ({"inbox": "on", "inbox.topic": "a\u0007b"}, "inbox.topic", "Expected `str` matching regex"),
    ({"inbox": "on", "inbox.expires_at": "never"}, "inbox.expires_at", "Invalid RFC3339"),
    ({"inbox": "on", "inbox.expires_at": "2001-01-01T00:00"}, "inbox.expires_at", "later than now"),
    ({"inbox_only": "on"}, "push", "push false needs inbox"),
]


@pytest.mark.parametrize(("fields", "field", "words"), BAD_FIELDS)
async def test_bad_field_shows_the_apis_error_next_to_it(
    seeded: Seeded, api: Client, fields: dict[str, Any], field: str, words: str
) -> None:
    await sign_in(api, seeded.server_key)
    compose = f"/console/apps/{seeded.code}/compose"
    text = await post_form(
        api, compose, {**_form(**fields), "action": "review"}, token_from=compose, status=422
    )
    assert words in error_at(text, field)


async def test_confirm_then_send_stores_the_message(seeded: Seeded, api: Client) -> None:
    await sign_in(api, seeded.server_key)
    compose = f"/console/apps/{seeded.code}/compose"
    confirm = await post_form(api, compose, {**_form(), "action": "review"}, token_from=compose)
    assert 'data-total="12"' in confirm
    request_json = re.search(r'name="request_json" value="([^"]+)"', confirm)
    assert request_json
    token = csrf(confirm)
    resp = await api.post(
        f"/console/apps/{seeded.code}/send",
        data={"request_json": request_json.group(1).replace("&#34;", '"'), "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303
    message_id = resp.headers["Location"].rsplit("/", 1)[1]
    sent = await seeded.campaign.message(message_id)
    assert sent["status"] in ("queued", "sending", "done")
    # a confirmed request edited on the way is checked again
    resp = await api.post(
        f"/console/apps/{seeded.code}/send",
        data={"request_json": '{"target": {"all": true}}', "csrf_token": token},
    )
    assert resp.status == 422
    assert "notification" in await resp.text()


async def test_csv_upload_as_the_target(seeded: Seeded, api: Client) -> None:
    """A CSV's first column (its header row dropped) joins the typed values."""
    await sign_in(api, seeded.server_key)
    compose = f"/console/apps/{seeded.code}/compose"
    token = csrf(await page(api, compose))
    form = aiohttp.FormData()
    for name, value in {
        "csrf_token": token,
        "target_kind": "emails",
        "target_values": "user-2@example.com",
        "action": "estimate",
    }.items():
        form.add_field(name, value)
    csv = "email,name\nuser-0@example.com,Ann\nuser-1@example.com,Bob\n"
    form.add_field("target_file", csv.encode(), filename="people.csv", content_type="text/csv")
    resp = await api.post(compose, data=form)
    text = await resp.text()
    assert resp.status == 200, text[:2000]
    assert 'data-total="6"' in text  # three users, two installations each
    broken = aiohttp.FormData()
    broken.add_field("csrf_token", token)
    broken.add_field("target_kind", "emails")
    broken.add_field("action", "estimate")
    broken.add_field("target_file", b"\xff\xfe\x00bad", filename="x.csv")
    resp = await api.post(compose, data=broken)
    assert resp.status == 422
    assert "not UTF-8" in error_at(await resp.text(), "target")


async def test_unknown_console_paths(api: Client) -> None:
    resp = await api.get("/console/no-such-page")
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "<h1>404</h1>" in await resp.text()
    resp = await api.get("/console", allow_redirects=False)
    assert resp.status == 404  # the console lives under /console/ only
    # the console's pages carry a CSP without inline script, and are not cached
    login = await api.get("/console/login")
    assert "script-src 'self'" in login.headers["Content-Security-Policy"]
    assert login.headers["Cache-Control"] == "no-store"
    assert login.headers["X-Frame-Options"] == "DENY"


async def test_inbox_options_reach_the_send_request(seeded: Seeded, api: Client) -> None:
    """The confirm step shows the inbox options and carries them in the request it sends."""
    await sign_in(api, seeded.server_key)
    compose = f"/console/apps/{seeded.code}/compose"
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    fields = {"inbox": "on", "inbox.topic": "billing", "inbox.expires_at": later}
    confirm = await post_form(
        api,
        compose,
        {**_form(**fields, inbox_only="on"), "action": "review"},
        token_from=compose,
    )
    shown = re.search(r'id="confirm-inbox">(.*?)</dl>', confirm, re.S)
    assert shown
    assert "billing" in shown.group(1)
    assert f"{later} UTC" in shown.group(1)
    assert "no (inbox only)" in shown.group(1)
    request_json = re.search(r'name="request_json" value="([^"]+)"', confirm)
    assert request_json
    body = msgspec.json.decode(html.unescape(request_json.group(1)))
    assert body["inbox"] == {"topic": "billing", "expires_at": later + ":00Z"}
    assert body["push"] is False
    # ticked without options: inbox true, pushed as well
    plain = await post_form(
        api, compose, {**_form(inbox="on"), "action": "review"}, token_from=compose
    )
    request_json = re.search(r'name="request_json" value="([^"]+)"', plain)
    assert request_json
    body = msgspec.json.decode(html.unescape(request_json.group(1)))
    assert body["inbox"] is True
    assert "push" not in body


async def test_user_page_shows_the_inbox_as_the_api_reads_it(seeded: Seeded, api: Client) -> None:
    server = seeded.campaign.server
    base = f"/console/apps/{seeded.code}"
    body = {
        "target": {"external_user_ids": ["user-1"]},
        "notification": {"title": "Your receipt"},
        "inbox": {"topic": "billing"},
        "push": False,
    }
    sent = await json(
        await api.post(f"/v1/apps/{seeded.code}/messages", json=body, headers=server), 202
    )
    await sign_in(api, seeded.server_key)
    text = await page(api, f"{base}/users/user-1")
    inbox = f"/v1/apps/{seeded.code}/users/user-1/inbox"
    listed = await json(await api.get(inbox, headers=server), 200)
    assert (listed["count_total"], listed["count_unread"]) == (1, 1)
    assert '<span id="inbox-total">1</span>' in text
    assert '<span id="inbox-unread">1</span>' in text
    row = re.search(r'<table class="rows-as-cards" id="inbox">(.*?)</table>', text, re.S)
    assert row
    assert sent["message_id"] in row.group(1)
    assert '<code class="tag">billing</code>' in row.group(1)
    assert "Your receipt" in row.group(1)
    assert "<strong>unread</strong>" in row.group(1)
    # seen through the API: the page and the message's counts follow
    seen = await api.post(
        f"{inbox}/seen", json={"message_ids": [sent["message_id"]]}, headers=server
    )
    assert (await json(seen, 200))["count_unread"] == 0
    text = await page(api, f"{base}/users/user-1")
    assert '<span id="inbox-unread">0</span>' in text
    assert "<strong>unread</strong>" not in text
    message = await page(api, f"{base}/messages/{sent['message_id']}")
    assert '<span id="count-inboxed">1</span> / <span id="count-seen">1</span>' in message
    # another user's inbox is empty
    other = await page(api, f"{base}/users/user-2")
    assert '<span id="inbox-total">0</span>' in other
    assert 'id="inbox"' not in other


async def test_user_page_renders_templated_inbox_messages_for_the_user(
    seeded: Seeded, api: Client
) -> None:
    """A templated inbox message shows on a user's page as that user's inbox shows it
    (the API's rendering), never as its template text."""
    server = seeded.campaign.server
    body = {
        "target": {
            "recipients": [
                {"external_user_id": "user-1", "data": {"order": "A-1"}},
                {"external_user_id": "user-2", "data": {"order": "B-2"}},
            ]
        },
        "notification": {"title": "Order {{ recipient.data.order }} of {{ user.external_id }}"},
        "inbox": True,
        "push": False,
    }
    await json(await api.post(f"/v1/apps/{seeded.code}/messages", json=body, headers=server), 202)
    await sign_in(api, seeded.server_key)
    for user, title in (("user-1", "Order A-1 of user-1"), ("user-2", "Order B-2 of user-2")):
        listed = await json(
            await api.get(f"/v1/apps/{seeded.code}/users/{user}/inbox", headers=server), 200
        )
        assert [m["notification"]["title"] for m in listed["messages"]] == [title]
        text = await page(api, f"/console/apps/{seeded.code}/users/{user}")
        row = re.search(r'<table class="rows-as-cards" id="inbox">(.*?)</table>', text, re.S)
        assert row
        assert title in row.group(1)
        assert "{{" not in row.group(1)

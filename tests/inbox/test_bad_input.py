"""Bad input to the inbox, field by field: the send's ``inbox`` and ``push``, the inbox
routes' query, bodies and paths.  Each answers 4xx naming the field, never 5xx; and the
OpenAPI document describes every inbox route, field and status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pushcore.gateways.simulators import Simulators
from tests.inbox.helpers import Inboxes
from tests.registry.helpers import Client, bearer, json

_SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
_LATER = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()

SEND_TABLE: list[tuple[dict[str, Any], str]] = [
    ({"inbox": "yes"}, "inbox"),
    ({"inbox": None}, "inbox"),
    ({"inbox": {"topic": ""}}, "inbox.topic"),
    ({"inbox": {"topic": "x" * 65}}, "inbox.topic"),
    ({"inbox": {"topic": "line\nbreak"}}, "inbox.topic"),
    ({"inbox": {"topic": 7}}, "inbox.topic"),
    ({"inbox": {"expires_at": "tomorrow"}}, "inbox.expires_at"),
    ({"inbox": {"expires_at": "2030-01-01T00:00:00"}}, "inbox.expires_at"),  # no time zone
    ({"inbox": {"expires_at": "2020-01-01T00:00:00Z"}}, "inbox.expires_at"),  # passed
    ({"inbox": {"expires_at": _SOON}, "send_at": _LATER}, "inbox.expires_at"),
    ({"inbox": {"colour": "red"}}, "inbox.colour"),
    ({"push": "no", "inbox": True}, "push"),
    ({"push": None, "inbox": True}, "push"),
    ({"push": False}, "push"),  # inbox only, but no inbox
    ({"push": False, "inbox": False}, "push"),
    ({"push": False, "inbox": True, "platforms": ["ios"]}, "platforms"),
    ({"push": False, "inbox": True, "primary_only": True}, "primary_only"),
]


@pytest.fixture
async def box(api: Client, sims: Simulators) -> Inboxes:
    made = Inboxes(api, sims)
    await made.create_app()
    return made


@pytest.mark.parametrize(("fields", "field"), SEND_TABLE)
async def test_send_fields(box: Inboxes, fields: dict[str, Any], field: str) -> None:
    body = {"target": {"external_user_ids": ["u"]}, **fields}
    refused = await box.send(422, **body)
    assert refused["error"]["field"] == field, refused
    # the same through messages:batch, the field under messages[0]
    item = {"notification": {"title": "t"}, **body}
    resp = await box.client.post(
        f"/v1/apps/{box.code}/messages:batch", json={"messages": [item]}, headers=box.server
    )
    result = (await json(resp, 200))["results"][0]
    assert (result["status"], result["error"]["field"]) == (422, f"messages[0].{field}")


QUERY_TABLE: list[tuple[dict[str, str], str]] = [
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"topic": ""}, "topic"),
    ({"topic": "x" * 65}, "topic"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-01-01T00:00:00"}, "from"),  # no time zone
    ({"to": "2026-13-01T00:00:00Z"}, "to"),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
    ({"cursor": "not a cursor"}, "cursor"),
    ({"cursor": "MTIz"}, "cursor"),  # base64 of "123": no message id
    ({"cursor": "MS45MjIzMzcyMDM2ODU0Nzc1ODA4"}, "cursor"),  # "1.9223372036854775808": > bigint
    ({"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5LjE"}, "cursor"),  # a time past year 9999
    ({"language": ""}, "language"),
    ({"language": "not a tag"}, "language"),
    ({"language": "x" * 36}, "language"),  # longer than any BCP 47 tag kept
    ({"language": "en-!!"}, "language"),
    ({"language": "zz-Qqqq-999-x"}, "language"),  # a dangling private-use singleton
]


@pytest.mark.parametrize(("query", "field"), QUERY_TABLE)
async def test_inbox_query(box: Inboxes, query: dict[str, str], field: str) -> None:
    device = await box.user_device("val")
    for path, headers in (
        (f"/v1/installations/{device.installation_id}/inbox", bearer(device.secret)),
        (f"/v1/apps/{box.code}/users/val/inbox", box.server),
    ):
        refused = await json(await box.client.get(path, params=query, headers=headers), 422)
        assert refused["error"]["field"] == field, refused


SEEN_TABLE: list[tuple[Any, int, str | None]] = [
    (None, 400, None),  # no body
    ("not json", 400, None),
    ('{"message_ids": ["a\\u0000b"]}', 422, "message_ids[0]"),
    ({}, 422, "message_ids"),
    ({"message_ids": []}, 422, "message_ids"),
    ({"message_ids": ["00000000-0000-0000-0000-000000000000"] * 101}, 422, "message_ids"),
    ({"message_ids": ["nope"]}, 422, "message_ids[0]"),
    ({"message_ids": "nope"}, 422, "message_ids"),
    ({"message_ids": ["00000000-0000-0000-0000-000000000000"], "all": True}, 422, "all"),
]


@pytest.mark.parametrize(("body", "status", "field"), SEEN_TABLE)
async def test_seen_body(box: Inboxes, body: Any, status: int, field: str | None) -> None:
    device = await box.user_device("wes")
    for path, auth in (
        (f"/v1/installations/{device.installation_id}/inbox/seen", bearer(device.secret)),
        (f"/v1/apps/{box.code}/users/wes/inbox/seen", box.server),
    ):
        headers = dict(auth)
        if isinstance(body, str):  # malformed JSON, declared as JSON
            headers["Content-Type"] = "application/json"
        data = body.encode() if isinstance(body, str) else None
        payload = None if isinstance(body, str) or body is None else body
        resp = await box.client.post(path, json=payload, data=data, headers=headers)
        refused = await json(resp, status)
        assert refused["error"].get("field") == field, refused


async def test_paths(box: Inboxes) -> None:
    device = await box.user_device("xia")
    auth = bearer(device.secret)
    for method, path, headers, status in (
        ("DELETE", f"/v1/installations/{device.installation_id}/inbox/nope", auth, 404),
        ("DELETE", f"/v1/apps/{box.code}/users/xia/inbox/nope", box.server, 404),
        ("GET", "/v1/installations/not-a-uuid/inbox", auth, 404),
        ("GET", f"/v1/apps/{box.code}/users/nobody/inbox", box.server, 404),
        ("GET", f"/v1/installations/{device.installation_id}/inbox", {}, 401),
        ("GET", f"/v1/installations/{device.installation_id}/inbox", box.server, 401),
        ("GET", f"/v1/apps/{box.code}/users/xia/inbox", auth, 401),
        ("PUT", f"/v1/apps/{box.code}/users/xia/inbox", box.server, 405),
    ):
        await json(await box.client.request(method, path, headers=headers), status)


async def test_openapi_describes_the_inbox(api: Client) -> None:
    doc = await json(await api.get("/v1/openapi.json"), 200)
    paths = doc["paths"]
    device = "/v1/installations/{installation_id}/inbox"
    server = "/v1/apps/{app_code}/users/{external_user_id}/inbox"
    for base, who, anonymous in (
        (device, "installation_secret", "409"),
        (server, "server_key", "404"),
    ):
        read, seen = paths[base]["get"], paths[base + "/seen"]["post"]
        delete = paths[base + "/{message_id}"]["delete"]
        assert read["security"] == [{who: []}]
        assert {"200", "401", "404", "422", anonymous} <= set(read["responses"])
        assert {"200", "400", "413", "422", anonymous} <= set(seen["responses"])
        assert {"204", "404", anonymous} <= set(delete["responses"])
        query = {p["name"] for p in read["parameters"] if p["in"] == "query"}
        assert query == {"topic", "from", "to", "limit", "cursor", "language"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["InboxPage"]["required"]) == {
        "messages",
        "count_total",
        "count_unread",
        "count_total_filtered",
        "count_unread_filtered",
        "next_cursor",
    }
    assert schemas["InboxSeen"]["properties"]["message_ids"]["maxItems"] == 100
    assert {"inboxed", "seen"} <= set(schemas["Counts"]["required"])
    send = schemas["SendRequest"]["properties"]
    assert {"inbox", "push"} <= set(send)
    options = schemas["InboxOptions"]["properties"]
    assert options["topic"]["anyOf"][0]["maxLength"] == 64
    assert set(options) == {"topic", "expires_at"}

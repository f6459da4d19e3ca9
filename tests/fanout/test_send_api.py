"""The send API's contract without workers: bad inputs, payload limits, listing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pushcore.gateways.simulators import Simulators
from tests.fanout.harness import Campaign
from tests.registry.helpers import Client, bearer

NOTE = {"title": "Hi"}
LOCAL, ZONE, LIS = "send_at_local", "default_time_zone", "Europe/Lisbon"


def _utc_wall(**delta: float) -> str:
    """The wall-clock time in UTC at now + ``delta``, without offset."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(**delta)
    return at.replace(tzinfo=None, microsecond=0).isoformat()


# (body, status, field)
CASES: list[tuple[dict[str, Any], int, str | None]] = [
    ({"notification": NOTE}, 422, "target"),
    ({"target": {}, "notification": NOTE}, 422, "target"),
    ({"target": {"all": True, "tags": ["a"]}, "notification": NOTE}, 422, "target"),
    ({"target": {"all": False}, "notification": NOTE}, 422, "target.all"),
    ({"target": {"tags": []}, "notification": NOTE}, 422, "target.tags"),
    ({"target": {"tags": ["a"], "match": "some"}, "notification": NOTE}, 422, "target.match"),
    ({"target": {"external_user_ids": ["u"], "match": "all"}, "notification": NOTE}, 422, "target"),
    ({"target": {"emails": ["not-an-email"]}, "notification": NOTE}, 422, "target.emails[0]"),
    ({"target": {"msisdns": ["12345"]}, "notification": NOTE}, 422, "target.msisdns[0]"),
    (
        {"target": {"installation_ids": ["nope"]}, "notification": NOTE},
        422,
        "target.installation_ids[0]",
    ),
    (
        {"target": {"external_user_ids": ["u"] * 100_001}, "notification": NOTE},
        422,
        "target.external_user_ids",
    ),
    ({"target": {"all": True}}, 422, "notification"),
    ({"target": {"all": True}, "notification": {"title": 5}}, 422, "notification.title"),
    ({"target": {"all": True}, "notification": {"colour": "red"}}, 422, "notification.colour"),
    (
        {"target": {"all": True}, "notification": {"body": "x" * 4096, "title": "y" * 4000}},
        422,
        "notification",
    ),
    (
        {"target": {"all": True}, "notification": {"data": {"aps": "x"}}, "platforms": ["ios"]},
        422,
        "notification",
    ),
    ({"target": {"all": True}, "notification": NOTE, "platforms": ["pager"]}, 422, "platforms[0]"),
    ({"target": {"all": True}, "notification": NOTE, "ttl_seconds": -1}, 422, "ttl_seconds"),
    # JSON Schema calls 6907.0 an integer; the API takes integers written as such (stated
    # in the document's description), and says which field
    ({"target": {"all": True}, "notification": NOTE, "ttl_seconds": 6907.0}, 422, "ttl_seconds"),
    ({"target": {"all": True}, "notification": NOTE, "priority": "urgent"}, 422, "priority"),
    (
        {"target": {"all": True}, "notification": NOTE, "collapse_key": "x" * 65},
        422,
        "collapse_key",
    ),
    ({"target": {"all": True}, "notification": NOTE, "send_at": "tomorrow"}, 422, "send_at"),
    (
        {"target": {"all": True}, "notification": NOTE, "send_at": "2026-12-01T10:00:00"},
        422,
        "send_at",
    ),
    (
        {"target": {"all": True}, "notification": NOTE, "idempotency_key": ""},
        422,
        "idempotency_key",
    ),
    ({"target": {"all": True}, "notification": NOTE, "surprise": 1}, 422, "surprise"),
    # a NUL (U+0000) anywhere: PostgreSQL's text and jsonb cannot hold it
    ({"target": {"all": True}, "notification": {"title": "a\u0000"}}, 422, "notification.title"),
    ({"target": {"emails": ["a\u0000@b.c"]}, "notification": NOTE}, 422, "target.emails[0]"),
    (
        {"target": {"external_user_ids": ["u", "\u0000"]}, "notification": NOTE},
        422,
        "target.external_user_ids[1]",
    ),
    ({"target": {"tags": ["\u0000"]}, "notification": NOTE}, 422, "target.tags[0]"),
    (
        {"target": {"all": True}, "notification": {"data": {"k\u0000": "v"}}},
        422,
        "notification.data",
    ),
    (
        {"target": {"all": True}, "notification": NOTE, "idempotency_key": "k\u0000"},
        422,
        "idempotency_key",
    ),
    # times that parse but leave PostgreSQL's range once the offset is applied, and times
    # outside the documented window (2000-01-01 to a year ahead)
    *(
        ({"target": {"all": True}, "notification": NOTE, "send_at": at}, 422, "send_at")
        for at in (
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1999-12-31T23:59:59Z",
            "2999-01-01T00:00:00Z",
        )
    ),
    # local-time delivery: a wall-clock time without offset, with a default zone
    *(
        (
            {"target": {"all": True}, "notification": NOTE, **extra},
            422,
            field,
        )
        for extra, field in (
            ({"send_at_local": "2026-12-25T09:00:00Z", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "2026-12-25T09:00:00+02:00", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "tomorrow 9am", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "2026-12-25", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": 9, "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "1999-12-31T23:59:59", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "0001-01-01T00:00:00", "default_time_zone": LIS}, LOCAL),
            ({"send_at_local": "9999-12-31T23:59:59", "default_time_zone": LIS}, LOCAL),
            # past in every zone: 12 h 5 min ago in UTC is past even at UTC-12
            ({"send_at_local": _utc_wall(hours=-12, minutes=-5), "default_time_zone": LIS}, LOCAL),
            # 366 days ahead in UTC+14 (the earliest zone)
            ({"send_at_local": _utc_wall(days=366, hours=14), "default_time_zone": LIS}, LOCAL),
            (
                {
                    "send_at_local": "2026-12-25T09:00:00",
                    "default_time_zone": LIS,
                    "send_at": "2026-12-25T09:00:00Z",
                },
                LOCAL,
            ),
            ({"send_at_local": "2026-12-25T09:00:00"}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": None}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": "Mars/Olympus"}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": "CET+1"}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": "Asia"}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": "../etc/passwd"}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": ""}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": "x" * 65}, ZONE),
            ({"send_at_local": "2026-12-25T09:00:00", "default_time_zone": 1}, ZONE),
            ({"default_time_zone": LIS}, ZONE),  # without send_at_local
            (
                {"send_at_local": "2026-12-25T09:00:00", "default_time_zone": LIS, "inbox": True},
                "inbox",
            ),
        )
    ),
    (
        {
            "target": {"tokens": [{"platform": "android", "token": "t1"}]},
            "notification": NOTE,
            "send_at_local": "2026-12-25T09:00:00",
            "default_time_zone": LIS,
        },
        422,
        LOCAL,
    ),
]


@pytest.fixture
async def campaign(api: Client, sims: Simulators) -> Campaign:
    c = Campaign(api, sims)
    await c.create_app()
    return c


@pytest.mark.parametrize(("body", "status", "field"), CASES)
async def test_send_bad_input(
    api: Client, campaign: Campaign, body: dict[str, Any], status: int, field: str | None
) -> None:
    resp = await api.post(f"/v1/apps/{campaign.code}/messages", json=body, headers=campaign.server)
    answer = await resp.json()
    assert resp.status == status, answer
    assert answer["error"].get("field") == field, answer
    # nothing was stored
    listed = await (
        await api.get(f"/v1/apps/{campaign.code}/messages", headers=campaign.server)
    ).json()
    assert listed["messages"] == []


@pytest.mark.parametrize(("body", "status", "field"), CASES)
async def test_batch_answers_each_bad_send_like_the_single_route(
    api: Client, campaign: Campaign, body: dict[str, Any], status: int, field: str | None
) -> None:
    """Every row of the table, as the second item of a batch: the batch answers 200, that
    item carries the single route's status and field (under ``messages[1]``), the good
    first item is accepted and only it is stored."""
    good = {"target": {"external_user_ids": ["nobody"]}, "notification": NOTE}
    resp = await api.post(
        f"/v1/apps/{campaign.code}/messages:batch",
        json={"messages": [good, body]},
        headers=campaign.server,
    )
    answer = await resp.json()
    assert resp.status == 200, answer
    first, second = answer["results"]
    assert first["status"] == 202, first
    assert second["status"] == status, second
    expected = f"messages[1].{field}" if field else "messages[1]"
    assert second["error"]["field"] == expected, second
    listed = await (
        await api.get(f"/v1/apps/{campaign.code}/messages", headers=campaign.server)
    ).json()
    assert [m["message_id"] for m in listed["messages"]] == [first["message"]["message_id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "all"}, "messages"),
        ({"messages": [{}] * 1001}, "messages"),
        ({"messages": [{}], "surprise": 1}, "surprise"),
    ],
)
async def test_batch_envelope_bad_input(
    api: Client, campaign: Campaign, body: dict[str, Any], field: str
) -> None:
    resp = await api.post(
        f"/v1/apps/{campaign.code}/messages:batch", json=body, headers=campaign.server
    )
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == field, answer


async def test_platform_without_credentials_is_refused(api: Client) -> None:
    from tests.registry.helpers import App

    bare = await App.create(api)
    resp = await api.post(
        f"/v1/apps/{bare.code}/messages",
        json={"target": {"all": True}, "notification": NOTE},
        headers=bare.server,
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == "platforms"


async def test_listing_and_unknown_messages(api: Client, campaign: Campaign) -> None:
    ids = [(await campaign.send(target={"all": True}))["message_id"] for _ in range(3)]
    path = f"/v1/apps/{campaign.code}/messages"
    page = await (await api.get(f"{path}?limit=2", headers=campaign.server)).json()
    assert [m["message_id"] for m in page["messages"]] == ids[::-1][:2]
    rest = await (await api.get(f"{path}?limit=2&before={ids[1]}", headers=campaign.server)).json()
    assert [m["message_id"] for m in rest["messages"]] == [ids[0]]
    for bad in ("limit=0", "limit=101", "limit=x", "before=nope"):
        resp = await api.get(f"{path}?{bad}", headers=campaign.server)
        assert resp.status == 422, bad
    unknown = "5f0c4c1e-1f1e-4a5e-9d7c-2f1f3b1d8e11"
    for method in ("GET", "DELETE"):
        resp = await api.request(method, f"{path}/{unknown}", headers=campaign.server)
        assert resp.status == 404
    # another app's key sees none of it
    other = Campaign(api, campaign.sims)
    await other.create_app()
    resp = await api.get(f"{path}/{ids[0]}", headers=bearer(other.server_key))
    assert resp.status == 404

"""The audience estimate route through HTTP: its counts agree with what a send of the same
target is planned for, and its bad inputs are 4xx naming the field."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest

from tests.console.conftest import Client, Seeded
from tests.registry.helpers import ADMIN, bearer, json


async def estimate(seeded: Seeded, body: Any, status: int = 200, **kw: Any) -> Any:
    client = seeded.campaign.client
    headers = kw.pop("headers", seeded.campaign.server)
    resp = await client.post(
        f"/v1/apps/{seeded.code}/messages:estimate", json=body, headers=headers, **kw
    )
    return await json(resp, status)


async def test_counts_per_platform(seeded: Seeded) -> None:
    everyone = await estimate(seeded, {"target": {"all": True}})
    assert everyone == {"total": 15, "platforms": {"ios": 5, "android": 5, "web": 5}}
    news = await estimate(seeded, {"target": {"tags": ["news"]}})
    assert news == {"total": 12, "platforms": {"ios": 4, "android": 4, "web": 4}}
    both = await estimate(seeded, {"target": {"tags": ["news", "web"], "match": "all"}})
    assert both == {"total": 4, "platforms": {"ios": 0, "android": 0, "web": 4}}
    either = await estimate(seeded, {"target": {"tags": ["sports", "web"], "match": "any"}})
    assert either["total"] == 3 + 4
    only_web = await estimate(seeded, {"target": {"all": True}, "platforms": ["web"]})
    assert only_web == {"total": 5, "platforms": {"web": 5}}


async def test_list_targets_match_what_the_send_targets(seeded: Seeded) -> None:
    """The same target sent (a lane send is planned when accepted, so its 202 says whom it
    targets) reaches exactly the estimated count, primary_only included."""
    users = {"external_user_ids": ["user-0", "user-1", "user-1", "nobody"]}
    emails = {"emails": ["USER-2@example.com", "user-0@example.com"]}
    installations = {"installation_ids": [d.installation_id for d in seeded.news[5:9]]}
    for target in (users, emails, installations):
        for primary_only in (False, True):
            counted = await estimate(seeded, {"target": target, "primary_only": primary_only})
            sent = await seeded.campaign.send(target=target, primary_only=primary_only)
            assert counted["total"] == sent["counts"]["targeted"], (target, primary_only)
    assert (await estimate(seeded, {"target": users}))["total"] == 4
    # one device per user: user-0 and user-1 have no primary, so the most recent of each
    assert (await estimate(seeded, {"target": users, "primary_only": True}))["total"] == 2


async def test_recipients_and_raw_token_targets(seeded: Seeded) -> None:
    """A ``recipients`` target counts as its user list; a ``tokens`` target counts its
    distinct tokens per platform, registered or not."""
    users = await estimate(seeded, {"target": {"external_user_ids": ["user-0", "user-1"]}})
    recipients = {
        "recipients": [
            {"external_user_id": "user-0", "data": {"order": "1"}},
            {"external_user_id": "user-1"},
        ]
    }
    assert await estimate(seeded, {"target": recipients}) == users
    tokens = {
        "tokens": [
            {"platform": "ios", "token": "ab" * 32},
            {"platform": "ios", "token": "AB" * 32},  # the same, upper-cased
            {"platform": "ios", "token": "cd" * 32},
        ]
    }
    assert await estimate(seeded, {"target": tokens}) == {
        "total": 2,
        "platforms": {"ios": 2, "android": 0, "web": 0},
    }


async def test_nothing_is_sent_or_stored(seeded: Seeded) -> None:
    await estimate(seeded, {"target": {"all": True}})
    listed = await json(
        await seeded.campaign.client.get(
            f"/v1/apps/{seeded.code}/messages", headers=seeded.campaign.server
        ),
        200,
    )
    assert listed["messages"] == []


BAD = [
    # (body, status, error code, field)
    ({}, 422, "invalid_field", "target"),
    ({"target": {}}, 422, "invalid_field", "target"),
    ({"target": {"all": True, "tags": ["a"]}}, 422, "invalid_field", "target"),
    ({"target": {"all": False}}, 422, "invalid_field", "target.all"),
    ({"target": {"tags": []}}, 422, "invalid_field", "target.tags"),
    ({"target": {"emails": ["not-an-email"]}}, 422, "invalid_field", "target.emails[0]"),
    ({"target": {"msisdns": ["0123"]}}, 422, "invalid_field", "target.msisdns[0]"),
    ({"target": {"installation_ids": ["x"]}}, 422, "invalid_field", "target.installation_ids[0]"),
    ({"target": {"external_user_ids": ["a"], "match": "all"}}, 422, "invalid_field", "target"),
    ({"target": {"all": True}, "platforms": ["blackberry"]}, 422, "invalid_field", "platforms[0]"),
    ({"target": {"all": True}, "platforms": []}, 422, "invalid_field", "platforms"),
    ({"target": {"all": True}, "primary_only": "yes"}, 422, "invalid_field", "primary_only"),
    ({"target": {"all": True}, "notification": {}}, 422, "unknown_field", "notification"),
    (
        {"target": {"tokens": [{"platform": "ios", "token": "not hex"}]}},
        422,
        "invalid_field",
        "target.tokens[0].token",
    ),
    (
        {"target": {"recipients": [{"external_user_id": "u", "data": "x"}]}},
        422,
        "invalid_field",
        "target.recipients[0].data",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD)
async def test_bad_input(seeded: Seeded, body: Any, status: int, code: str, field: str) -> None:
    out = await estimate(seeded, body, status)
    assert out["error"]["code"] == code
    assert out["error"]["field"] == field


async def test_bad_requests(seeded: Seeded, api: Client) -> None:
    url = f"/v1/apps/{seeded.code}/messages:estimate"
    server = seeded.campaign.server
    typed = {**server, "Content-Type": "application/json"}
    not_json = await api.post(url, data=b"{", headers=typed)
    assert (await json(not_json, 400))["error"]["code"] == "invalid_json"
    empty = await api.post(url, headers=typed)
    assert (await json(empty, 400))["error"]["code"] == "body_required"
    assert (await json(await api.post(url, json={"target": {"all": True}}), 401))["error"]
    wrong = bearer("pcs_not-a-key")
    assert await json(await api.post(url, json={"target": {"all": True}}, headers=wrong), 401)
    huge = msgspec.json.encode({"target": {"external_user_ids": ["u" * 200] * 50_000}})
    assert len(huge) > 8 * 1024 * 1024
    assert (await json(await api.post(url, data=io.BytesIO(huge), headers=typed), 413))["error"]


async def test_platform_without_credentials(api: Client) -> None:
    created = await json(await api.post("/v1/apps", json={"name": "bare"}, headers=ADMIN), 201)
    url = f"/v1/apps/{created['app_code']}/messages:estimate"
    headers = bearer(created["server_key"])
    out = await json(await api.post(url, json={"target": {"all": True}}, headers=headers), 422)
    assert out["error"]["field"] == "platforms"
    asked = {"target": {"all": True}, "platforms": ["ios"]}
    out = await json(await api.post(url, json=asked, headers=headers), 422)
    assert out["error"] == {
        "code": "invalid_field",
        "message": "the app has no credentials for ios",
        "field": "platforms",
    }


async def test_another_apps_key_gets_404(seeded: Seeded, api: Client) -> None:
    other = await json(await api.post("/v1/apps", json={"name": "other"}, headers=ADMIN), 201)
    out = await estimate(
        seeded, {"target": {"all": True}}, 404, headers=bearer(other["server_key"])
    )
    assert out["error"]["code"] == "not_found"


async def test_in_the_openapi_document(api: Client) -> None:
    doc = await json(await api.get("/v1/openapi.json"), 200)
    op = doc["paths"]["/v1/apps/{app_code}/messages:estimate"]["post"]
    # (the document may add what every JSON route can answer, such as 415 or 503)
    assert {"200", "400", "401", "404", "413", "422"} <= set(op["responses"])
    assert op["security"] == [{"server_key": []}]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/EstimateIn")

"""Registration applies the Web Push endpoint policy the sender applies (422 naming
``web_subscription.endpoint``), under the settings the process runs with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pushcore.api.app import make_app
from pushcore.config import Settings, load_settings
from tests.conftest import ADMIN_TOKEN
from tests.registry.helpers import App, Client, bearer, json, web_subscription

Started = Callable[..., AbstractAsyncContextManager[Client]]

# what a new user found registered (201) though the sender never sent to them
INTERNAL = [
    "https://10.0.0.1/push",
    "https://169.254.169.254/latest",
    "https://[fd00:ec2::254]/latest",
    "https://0xa9.0xfe.0xa9.0xfe/latest",
    "https://[::ffff:10.0.0.1]/p",
]
LOOPBACK = [
    "https://2130706433/p",
    "http://127.0.0.2:9/p",
    "http://[::1]:9/p",
    "http://localhost:9/p",
]


@pytest.fixture
def started(database_url: str) -> Started:
    @asynccontextmanager
    async def start(**environ: str) -> AsyncIterator[Client]:
        settings: Settings = load_settings(
            environ=environ, database_url=database_url, admin_token=ADMIN_TOKEN, db_pool_max=4
        )
        async with TestClient(TestServer(make_app(settings))) as test_client:
            yield test_client

    return start


async def _register(client: Client, endpoint: str) -> tuple[int, Any]:
    app = await App.create(client)
    resp = await client.post(
        f"/v1/apps/{app.code}/installations",
        json={"platform": "web", "web_subscription": web_subscription(endpoint)},
    )
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "endpoint", [*INTERNAL, *LOOPBACK, "https://push.example.net/p", "https://8.8.8.8/p"]
)
async def test_default_policy_refuses(client: Client, endpoint: str) -> None:
    status, answer = await _register(client, endpoint)
    assert status == 422, answer
    assert answer["error"]["field"] == "web_subscription.endpoint"


async def test_loopback_setting_admits_loopback_only(started: Started) -> None:
    async with started(PUSHCORE_WEBPUSH_ALLOW_LOOPBACK="true") as client:
        for endpoint in LOOPBACK:
            status, answer = await _register(client, endpoint)
            assert status == 201, (endpoint, answer)
        for endpoint in INTERNAL:
            status, answer = await _register(client, endpoint)
            assert status == 422, (endpoint, answer)


async def test_allowed_hosts_setting(started: Started) -> None:
    async with started(PUSHCORE_WEBPUSH_ALLOWED_HOSTS="*.push.example.net") as client:
        assert (await _register(client, "https://eu.push.example.net/p"))[0] == 201
        assert (await _register(client, "https://fcm.googleapis.com/fcm/send/x"))[0] == 422
    async with started(PUSHCORE_WEBPUSH_ALLOWED_HOSTS="*") as client:
        assert (await _register(client, "https://push.example.org/p"))[0] == 201
        assert (await _register(client, "https://8.8.8.8/p"))[0] == 201
        for endpoint in INTERNAL + LOOPBACK:
            assert (await _register(client, endpoint))[0] == 422, endpoint


async def test_a_changed_subscription_meets_the_same_policy(client: Client) -> None:
    app = await App.create(client)
    inst = await app.register(platform="web")
    path = f"/v1/installations/{inst['installation_id']}"
    for endpoint in [*INTERNAL, *LOOPBACK]:
        resp = await client.patch(
            path,
            json={"web_subscription": web_subscription(endpoint)},
            headers=bearer(inst["installation_secret"]),
        )
        answer = await json(resp, 422)
        assert answer["error"]["field"] == "web_subscription.endpoint", answer

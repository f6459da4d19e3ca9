"""Small helpers for driving the registry API in tests."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.providers.credentials import b64url_encode, private_key_pem
from tests.conftest import ADMIN_TOKEN

Client = TestClient[web.Request, web.Application]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def apns_token() -> str:
    return secrets.token_hex(32)


def fcm_token() -> str:
    return "fcm:" + secrets.token_urlsafe(120)


def ec_pem() -> str:
    return private_key_pem(ec.generate_private_key(ec.SECP256R1()))


def rsa_pem() -> str:
    return private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def web_subscription(endpoint: str | None = None) -> dict[str, Any]:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {
        "endpoint": endpoint or f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(16)}",
        "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(secrets.token_bytes(16))},
    }


async def json(resp: Any, status: int) -> Any:
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    assert resp.status == status, body
    return body


class App:
    """An app created through the admin API, with helpers for its calls."""

    def __init__(self, client: Client, created: dict[str, Any]) -> None:
        self.client = client
        self.code: str = created["app_code"]
        self.server_key: str = created["server_key"]
        self.identity_secret: str = created["identity_secret"]
        self.created = created

    @classmethod
    async def create(cls, client: Client, **fields: Any) -> App:
        resp = await client.post("/v1/apps", json={"name": "test app", **fields}, headers=ADMIN)
        return cls(client, await json(resp, 201))

    @property
    def server(self) -> dict[str, str]:
        return bearer(self.server_key)

    async def register(self, status: int = 201, **body: Any) -> dict[str, Any]:
        body.setdefault("platform", "ios")
        if body["platform"] == "web":
            body.setdefault("web_subscription", web_subscription())
        elif body["platform"] == "android":
            body.setdefault("push_token", fcm_token())
        else:
            body.setdefault("push_token", apns_token())
        resp = await self.client.post(f"/v1/apps/{self.code}/installations", json=body)
        result: dict[str, Any] = await json(resp, status)
        return result

    async def personalize(
        self, inst: dict[str, Any], status: int = 200, **body: Any
    ) -> dict[str, Any]:
        resp = await self.client.put(
            f"/v1/installations/{inst['installation_id']}/user",
            json=body,
            headers=bearer(inst["installation_secret"]),
        )
        result: dict[str, Any] = await json(resp, status)
        return result

    async def user(self, external_id: str, status: int = 200) -> dict[str, Any]:
        resp = await self.client.get(
            f"/v1/apps/{self.code}/users/{external_id}", headers=self.server
        )
        result: dict[str, Any] = await json(resp, status)
        return result

"""A campaign set-up for end-to-end tests: an app with credentials for the simulators,
installations of known fates registered through the API, and waiting for a message."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pushcore.gateways import fates
from pushcore.gateways.simulators import Simulators
from tests.registry.helpers import ADMIN, Client, bearer, ec_pem, json, rsa_pem


@dataclass
class Device:
    platform: str
    token: str  # as the simulator counts it (APNs/FCM token, Web Push subscription id)
    live: bool
    installation_id: str = ""
    secret: str = ""


@dataclass
class Campaign:
    client: Client
    sims: Simulators
    code: str = ""
    server_key: str = ""
    devices: list[Device] = field(default_factory=list)

    @property
    def server(self) -> dict[str, str]:
        return bearer(self.server_key)

    async def create_app(self, *, topic: str = "com.example.app") -> None:
        body = {
            "name": "campaign",
            "apns": {
                "team_id": "ABCDE12345",
                "key_id": "KEY1234567",
                "private_key": ec_pem(),
                "topic": topic,
            },
            "fcm": {
                "service_account": {
                    "type": "service_account",
                    "project_id": "demo-project",
                    "private_key": rsa_pem(),
                    "private_key_id": "k1",
                    "client_email": "sender@demo-project.iam.gserviceaccount.com",
                    "token_uri": f"{self.sims.fcm.origin}/token",
                }
            },
            "webpush": {"vapid_private_key": ec_pem(), "subject": "mailto:ops@example.com"},
        }
        created = await json(await self.client.post("/v1/apps", json=body, headers=ADMIN), 201)
        self.code = created["app_code"]
        self.server_key = created["server_key"]

    async def register(self, platform: str, i: int, live: bool = True, **extra: Any) -> Device:
        fate = fates.Fate.LIVE if live else fates.Fate.DEAD
        body: dict[str, Any] = {"platform": platform, **extra}
        if platform == "ios":
            token = fates.apns_token(i, fate, seed=7)
            body["push_token"] = token
        elif platform == "android":
            token = fates.fcm_token(i, fate, seed=7)
            body["push_token"] = token
        else:
            sub = fates.webpush_subscription(i, fate, seed=7, origin=self.sims.webpush.origin)
            token = sub.endpoint.rsplit("/", 1)[1]
            body["web_subscription"] = {
                "endpoint": sub.endpoint,
                "keys": {"p256dh": sub.p256dh, "auth": sub.auth},
            }
        out = await json(
            await self.client.post(f"/v1/apps/{self.code}/installations", json=body), 201
        )
        device = Device(platform, token, live, out["installation_id"], out["installation_secret"])
        self.devices.append(device)
        return device

    async def personalize(self, device: Device, user: str, **extra: Any) -> None:
        await json(
            await self.client.put(
                f"/v1/apps/{self.code}/installations/{device.installation_id}/user",
                json={"external_user_id": user, **extra},
                headers=self.server,
            ),
            200,
        )

    async def send(self, status: int = 202, **body: Any) -> dict[str, Any]:
        body.setdefault("notification", {"title": "Hello", "body": "World"})
        result: dict[str, Any] = await json(
            await self.client.post(
                f"/v1/apps/{self.code}/messages", json=body, headers=self.server
            ),
            status,
        )
        return result

    async def message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await json(
            await self.client.get(
                f"/v1/apps/{self.code}/messages/{message_id}", headers=self.server
            ),
            200,
        )
        return result

    async def wait(
        self,
        message_id: str,
        timeout: float = 60.0,
        states: tuple[str, ...] = ("done", "failed", "cancelled"),
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.message(message_id)
            c = msg["counts"]
            assert c["targeted"] == (
                c["delivered"]
                + c["invalid_removed"]
                + c["invalid"]
                + c["failed"]
                + c["retrying"]
                + c["pending"]
            )
            if msg["status"] in states and (msg["status"] != "done" or c["pending"] == 0):
                return msg
            if time.monotonic() > deadline:
                raise AssertionError(f"message not finished: {msg}")
            await asyncio.sleep(0.2)

    def accepted(self, device: Device) -> int:
        sim = {"ios": self.sims.apns, "android": self.sims.fcm, "web": self.sims.webpush}
        return sim[device.platform].counters.accepted(device.token)

    def accepted_at(self, device: Device) -> float | None:
        """When the device's simulator first accepted a push to it (``time.time()``)."""
        sim = {"ios": self.sims.apns, "android": self.sims.fcm, "web": self.sims.webpush}
        return sim[device.platform].counters.accepted_at(device.token)

    def received(self, device: Device) -> int:
        sim = {"ios": self.sims.apns, "android": self.sims.fcm, "web": self.sims.webpush}
        return sim[device.platform].counters.received(device.token)

    async def exists(self, device: Device) -> bool:
        resp = await self.client.get(
            f"/v1/installations/{device.installation_id}", headers=bearer(device.secret)
        )
        return resp.status == 200

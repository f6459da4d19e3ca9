"""An app whose users' inboxes the tests read, from devices and from the server."""

from __future__ import annotations

from typing import Any

from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import bearer, json


class Inboxes(Campaign):
    """A :class:`Campaign` (app with simulator credentials, devices, sends) plus the inbox
    routes."""

    async def user_device(self, user: str, platform: str = "ios") -> Device:
        device = await self.register(platform, len(self.devices))
        await self.personalize(device, user)
        return device

    async def note(self, status: int = 202, **body: Any) -> dict[str, Any]:
        """An inbox-only send (nothing reaches the devices)."""
        body.setdefault("push", False)
        body.setdefault("inbox", True)
        return await self.send(status, **body)

    async def device_inbox(self, device: Device, status: int = 200, **query: Any) -> dict[str, Any]:
        resp = await self.client.get(
            f"/v1/installations/{device.installation_id}/inbox",
            params=_params(query),
            headers=bearer(device.secret),
        )
        result: dict[str, Any] = await json(resp, status)
        return result

    async def server_inbox(self, user: str, status: int = 200, **query: Any) -> dict[str, Any]:
        resp = await self.client.get(
            f"/v1/apps/{self.code}/users/{user}/inbox", params=_params(query), headers=self.server
        )
        result: dict[str, Any] = await json(resp, status)
        return result

    async def device_seen(
        self, device: Device, ids: list[str], status: int = 200
    ) -> dict[str, Any]:
        resp = await self.client.post(
            f"/v1/installations/{device.installation_id}/inbox/seen",
            json={"message_ids": ids},
            headers=bearer(device.secret),
        )
        result: dict[str, Any] = await json(resp, status)
        return result

    async def server_seen(self, user: str, ids: list[str], status: int = 200) -> dict[str, Any]:
        resp = await self.client.post(
            f"/v1/apps/{self.code}/users/{user}/inbox/seen",
            json={"message_ids": ids},
            headers=self.server,
        )
        result: dict[str, Any] = await json(resp, status)
        return result

    async def device_delete(self, device: Device, message_id: str, status: int = 204) -> None:
        resp = await self.client.delete(
            f"/v1/installations/{device.installation_id}/inbox/{message_id}",
            headers=bearer(device.secret),
        )
        await json(resp, status)

    async def server_delete(self, user: str, message_id: str, status: int = 204) -> None:
        resp = await self.client.delete(
            f"/v1/apps/{self.code}/users/{user}/inbox/{message_id}", headers=self.server
        )
        await json(resp, status)


def _params(query: dict[str, Any]) -> list[tuple[str, str]]:
    """Query parameters; a list value repeats its name (``topic=a&topic=b``); ``from_``
    stands for ``from``."""
    out: list[tuple[str, str]] = []
    for key, value in query.items():
        for v in value if isinstance(value, list) else [value]:
            out.append((key.rstrip("_"), str(v)))
    return out


def ids(page: dict[str, Any]) -> list[str]:
    return [m["message_id"] for m in page["messages"]]

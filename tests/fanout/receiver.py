"""A real webhook receiver for the tests: an aiohttp server on a loopback port that
records every request, answers what the test says, can hold requests, and can go down
(stop listening) and come back on the same port."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    status: int = 200
    retry_after: str | None = None
    gate: asyncio.Event | None = None  # when set up and not set, requests wait on it
    received: list[Received] = field(default_factory=list)  # answered
    arrived: list[str] = field(default_factory=list)  # webhook-ids of every request, on arrival
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.append(request.headers.get("webhook-id", ""))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.Response(status=self.status, headers=headers)
        finally:
            self.in_flight -= 1

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.received if r.event["type"] == kind]

    async def wait_for(self, check: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                kinds = [r.event["type"] for r in self.received]
                raise AssertionError(f"receiver did not get what was expected; got {kinds}")
            await asyncio.sleep(0.1)


def verify(secret: str, request: Received) -> dict[str, Any]:
    """Verified with the Standard Webhooks library, as a receiver would."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload

"""``pushcore demo --registry-only``: the registry flow, end to end, against a live local API.

It serves the real API (uvloop, the configured PostgreSQL) on a free loopback port and walks
through what an app and a company backend do: create an app, register an iPhone, an Android
phone and a browser, personalize two of them to one user, pick a primary, look the user up by
email, replace a token, report an event, check that another app's key sees nothing, and
erase the user.  Every step is an HTTP call; the output shows each answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from pushcore.config import Settings

# pushcore.api.auth.identity_token, imported with the API (only when the demo runs)
IdentityToken = Callable[[str, str], str]


def run(settings: Settings) -> int:
    import uvloop

    if settings.admin_token is None:
        settings = dataclasses.replace(settings, admin_token="demo-" + secrets.token_urlsafe(24))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_demo(settings))
    return 0


def demo_subscription() -> dict[str, Any]:
    """A browser's subscription: a fresh P-256 key pair and auth secret, as a browser makes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from pushcore.providers.credentials import b64url_encode

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {
        "endpoint": f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(16)}",
        "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(secrets.token_bytes(16))},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Step:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.n = 0

    async def __call__(  # noqa: PLR0917 (each step reads like the HTTP call it makes)
        self,
        title: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        expect: int = 200,
    ) -> Any:
        self.n += 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            answer = await resp.json() if resp.content_type == "application/json" else None
            print(f"{self.n:2d}. {title}\n    {method} {path} -> {resp.status}")
            if resp.status != expect:
                raise SystemExit(f"demo: expected {expect}, got {resp.status}: {answer}")
            return answer


async def run_demo(settings: Settings) -> None:
    from pushcore.api.app import make_app
    from pushcore.api.auth import identity_token

    port = _free_port()
    runner = web.AppRunner(make_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"pushcore API serving on http://127.0.0.1:{port} (database {settings.database_url})")
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await _flow(_Step(session, f"http://127.0.0.1:{port}"), settings, identity_token)
    finally:
        await runner.cleanup()


async def _flow(step: _Step, settings: Settings, identity_token: IdentityToken) -> None:
    admin = settings.admin_token
    app = await step(
        "Create an app (admin)",
        "POST",
        "/v1/apps",
        {"name": "Demo Shop", "identity_verification": True},
        admin,
        201,
    )
    code, key = app["app_code"], app["server_key"]
    print(f"    app_code={code}; server key and identity secret are shown once")
    phone, tablet = await _register_devices(step, code)
    await _log_in(step, (phone, tablet), app["identity_secret"], identity_token)
    await _backend_finds_the_user(step, code, key, phone)
    await _phone_changes_and_reports(step, phone)
    other = await step("A second app is created", "POST", "/v1/apps", {"name": "Other"}, admin, 201)
    await step(
        "Its key cannot see the first app's users",
        "GET",
        f"/v1/apps/{code}/users/customer-42",
        None,
        other["server_key"],
        404,
    )
    await _erase_the_user(step, code, key, phone)
    print("demo: registry flow complete")


async def _register_devices(step: _Step, code: str) -> tuple[Any, Any]:
    """An iPhone, an Android tablet and a browser register; the first two's answers."""
    phone = await step(
        "An iPhone registers (anonymous)",
        "POST",
        f"/v1/apps/{code}/installations",
        {
            "platform": "ios",
            "push_token": secrets.token_hex(32),
            "device": {"model": "iPhone16,1"},
            "tags": ["news"],
        },
        None,
        201,
    )
    tablet = await step(
        "An Android tablet registers",
        "POST",
        f"/v1/apps/{code}/installations",
        {
            "platform": "android",
            "push_token": "demo:" + secrets.token_urlsafe(100),
            "tags": ["news", "sports"],
        },
        None,
        201,
    )
    await step(
        "A browser registers its Web Push subscription",
        "POST",
        f"/v1/apps/{code}/installations",
        {"platform": "web", "web_subscription": demo_subscription()},
        None,
        201,
    )
    return phone, tablet


async def _log_in(
    step: _Step, devices: tuple[Any, ...], secret: str, identity_token: IdentityToken
) -> None:
    """The user logs in on each device with an identity token; without one it is refused."""
    for inst in devices:
        linked = await step(
            "The app logs the user in on this device (device-side, identity token)",
            "PUT",
            f"/v1/installations/{inst['installation_id']}/user",
            {
                "external_user_id": "customer-42",
                "email": "ada@example.com",
                "identity_token": identity_token(secret, "customer-42"),
            },
            inst["installation_secret"],
        )
        print(f"    installation {linked['installation_id']} -> {linked['external_user_id']}")
    phone = devices[0]
    await step(
        "Without the identity token the device is refused",
        "PUT",
        f"/v1/installations/{phone['installation_id']}/user",
        {"external_user_id": "customer-43"},
        phone["installation_secret"],
        403,
    )


async def _backend_finds_the_user(step: _Step, code: str, key: str, phone: Any) -> None:
    """The company backend makes the phone primary and finds the user by email."""
    await step(
        "The backend marks the phone as the user's primary device",
        "PUT",
        f"/v1/apps/{code}/installations/{phone['installation_id']}/primary",
        {"primary": True},
        key,
    )
    found = await step(
        "The backend maps an email to its users",
        "GET",
        f"/v1/apps/{code}/users?email=ADA@example.com",
        None,
        key,
    )
    user = found["users"][0]
    print(
        f"    {user['external_user_id']}: {len(user['installations'])} installations, "
        f"primary {user['primary_installation_id']}"
    )


async def _phone_changes_and_reports(step: _Step, phone: Any) -> None:
    """The phone gets a new token, then reports an opened push."""
    new = await step(
        "The phone's token changes (reinstall)",
        "PATCH",
        f"/v1/installations/{phone['installation_id']}",
        {"push_token": secrets.token_hex(32)},
        phone["installation_secret"],
    )
    print(f"    token …{new['token_tail']} refreshed at {new['token_updated_at']}")
    await step(
        "The phone reports that a push was opened",
        "POST",
        f"/v1/installations/{phone['installation_id']}/events",
        [{"name": "push.opened"}],
        phone["installation_secret"],
        202,
    )


async def _erase_the_user(step: _Step, code: str, key: str, phone: Any) -> None:
    """A privacy erase; the phone stays registered, anonymous."""
    await step(
        "Privacy request: erase the user",
        "DELETE",
        f"/v1/apps/{code}/users/customer-42",
        None,
        key,
        204,
    )
    after = await step(
        "The phone is anonymous again, still registered",
        "GET",
        f"/v1/installations/{phone['installation_id']}",
        None,
        phone["installation_secret"],
    )
    print(f"    external_user_id={after['external_user_id']}")

"""Guessing at the sign-in form: an address past its failed sign-ins is refused with 429
and Retry-After until the window has passed, a correct credential included; the throttle's
own rules as pure logic."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pushcore.api.app import make_app
from pushcore.config import Settings
from pushcore.console.throttle import SignInThrottle
from tests.console.conftest import Client, Seeded
from tests.console.helpers import csrf, page, sign_in


@pytest.fixture
async def strict(fanout_settings: Settings) -> AsyncIterator[Client]:
    settings = dataclasses.replace(fanout_settings, console_signin_failures=3)
    async with TestClient(TestServer(make_app(settings))) as client:
        yield client


async def test_an_address_past_its_failures_is_refused_even_with_the_right_key(
    seeded: Seeded, strict: Client
) -> None:
    for _ in range(3):
        await sign_in(strict, "pcs_" + "x" * 43, status=401)
    token = csrf(await page(strict, "/console/login"))
    for credential in ("pcs_" + "y" * 43, seeded.server_key):
        resp = await strict.post(
            "/console/login", data={"credential": credential, "csrf_token": token}
        )
        text = await resp.text()
        assert resp.status == 429, text[:500]
        assert "Too many failed sign-ins" in text
        assert 1 <= int(resp.headers["Retry-After"]) <= 300
    # no session was opened by the refused correct key
    assert (await strict.get("/console/", allow_redirects=False)).status == 303


async def test_successful_sign_ins_are_not_counted(seeded: Seeded, strict: Client) -> None:
    for _ in range(5):
        await sign_in(strict, seeded.server_key)
        await strict.post(
            "/console/logout", data={"csrf_token": csrf(await page(strict, "/console/login"))}
        )
    await sign_in(strict, seeded.server_key)


def test_failures_leave_the_window() -> None:
    throttle = SignInThrottle(failures=2, window=60)
    throttle.failed("a", 0)
    assert throttle.refused_for("a", 1) == 0
    throttle.failed("a", 10)
    assert throttle.refused_for("a", 11) == pytest.approx(49)
    assert throttle.refused_for("b", 11) == 0  # per address
    assert throttle.refused_for("a", 60) == 0  # the first left the window
    throttle.failed("a", 61)
    assert throttle.refused_for("a", 62) == pytest.approx(8)


def test_bounded_and_disabled() -> None:
    throttle = SignInThrottle(failures=1, window=60, size=2)
    for address in ("a", "b", "c"):
        throttle.failed(address, 0)
    assert throttle.refused_for("a", 1) == 0  # forgotten, the least recently failing
    assert throttle.refused_for("b", 1) > 0
    assert throttle.refused_for("c", 1) > 0
    off = SignInThrottle(failures=0, window=60)
    for _ in range(100):
        off.failed("a", 0)
    assert off.refused_for("a", 0) == 0

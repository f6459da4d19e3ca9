"""The session cookie's signing and expiry, and the console secret's setting.  Pure."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pushcore.config import load_settings, with_console_secret
from pushcore.console.session import COOKIE, Session, Sessions, csrf_ok
from pushcore.errors import ConfigError

SECRET = "s" * 40


def _request_with(cookie: str) -> web.Request:
    return make_mocked_request("GET", "/console/", headers={"Cookie": f"{COOKIE}={cookie}"})


def _cookie(sessions: Sessions, session: Session) -> str:
    response = web.Response()
    sessions.save(make_mocked_request("GET", "/console/"), response, session)
    return response.cookies[COOKIE].value


def test_round_trip_and_tampering() -> None:
    sessions = Sessions(SECRET, 3600)
    session = Session.fresh().signed_in("server", key_id="key_abc")
    cookie = _cookie(sessions, session)
    assert sessions.load(_request_with(cookie)) == session
    assert sessions.load(_request_with(cookie[:-2] + "xx")) is None
    other = Sessions("t" * 40, 3600)
    assert other.load(_request_with(cookie)) is None


def test_expired_cookie_is_refused() -> None:
    sessions = Sessions(SECRET, 1)
    cookie = _cookie(sessions, Session.fresh().signed_in("admin", mark="m"))
    time.sleep(2.1)  # itsdangerous stamps whole seconds
    assert sessions.load(_request_with(cookie)) is None


def test_sign_in_changes_the_csrf_token() -> None:
    before = Session.fresh()
    after = before.signed_in("admin", mark="m")
    assert not csrf_ok(after, before.csrf)
    assert csrf_ok(after, after.csrf)
    assert not csrf_ok(after, None)


def test_admin_mark_follows_the_token() -> None:
    sessions = Sessions(SECRET, 60)
    assert sessions.admin_mark("token-one-0123456789") != sessions.admin_mark(
        "token-two-0123456789"
    )
    assert "token" not in sessions.admin_mark("token-one-0123456789")


def test_console_secret_setting() -> None:
    with pytest.raises(ConfigError, match="PUSHCORE_CONSOLE_SECRET: must be at least 32"):
        load_settings(environ={"PUSHCORE_CONSOLE_SECRET": "short"})
    given = load_settings(environ={"PUSHCORE_CONSOLE_SECRET": SECRET})
    assert with_console_secret(given).console_secret == SECRET
    made = with_console_secret(load_settings(environ={}))
    assert made.console_secret is not None
    assert len(made.console_secret) >= 32
    assert made.describe()["PUSHCORE_CONSOLE_SECRET"] == "***"
    with pytest.raises(ConfigError, match="PUSHCORE_CONSOLE_SESSION_HOURS"):
        load_settings(environ={"PUSHCORE_CONSOLE_SESSION_HOURS": "0"})

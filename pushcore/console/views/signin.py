"""Sign in with an app's server key or the admin token, sign out, and the home page."""

from __future__ import annotations

import hmac
import math
import time

from aiohttp import web

from pushcore.api import auth
from pushcore.api.state import POOL, SETTINGS
from pushcore.console.pages import render, require, viewer
from pushcore.console.state import SESSION, SESSIONS, SIGNINS
from pushcore.db import apps as app_queries

ROUTES = web.RouteTableDef()
MAX_CREDENTIAL = 512


@ROUTES.get("/login", name="login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if await viewer(request) is not None:
        raise web.HTTPSeeOther(request.app.router["home"].url_for())
    return render("login.html", request, {"error": None})


@ROUTES.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    throttle = request.app[SIGNINS]
    address = request.remote or ""
    wait = throttle.refused_for(address, time.monotonic())
    if wait > 0:
        response = render(
            "login.html",
            request,
            {"error": "Too many failed sign-ins from your address; try again later."},
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    form = await request.post()
    raw = form.get("credential")
    credential = raw.strip() if isinstance(raw, str) else ""
    settings = request.config_dict[SETTINGS]
    session = request[SESSION]
    admin = settings.admin_token
    if admin is not None and hmac.compare_digest(credential.encode(), admin.encode()):
        request[SESSION] = session.signed_in("admin", mark=request.app[SESSIONS].admin_mark(admin))
        raise web.HTTPSeeOther(request.app.router["home"].url_for())
    if credential.startswith(auth.SERVER_KEY_PREFIX) and len(credential) <= MAX_CREDENTIAL:
        row = await app_queries.app_for_key(request.config_dict[POOL], auth.digest(credential))
        if row is not None:
            request[SESSION] = session.signed_in("server", key_id=row["key_id"])
            raise web.HTTPSeeOther(request.app.router["overview"].url_for(app_code=row["code"]))
    throttle.failed(address, time.monotonic())
    # the credential typed is never rendered back
    return render(
        "login.html",
        request,
        {"error": "That is not a valid server key or admin token."},
        status=401,
    )


@ROUTES.post("/logout", name="logout")
async def logout(request: web.Request) -> web.StreamResponse:
    request[SESSION] = request[SESSION].signed_in("anonymous")
    raise web.HTTPSeeOther(request.app.router["login"].url_for())


@ROUTES.get("/", name="home")
async def home(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    if not who.admin:
        assert who.app_code is not None
        raise web.HTTPSeeOther(request.app.router["overview"].url_for(app_code=who.app_code))
    apps = await app_queries.list_apps(request.config_dict[POOL])
    return render("apps.html", request, {"apps": apps})

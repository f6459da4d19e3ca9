"""Settings: the app's credentials status (public parts only) and, for the admin, its
server keys (create: shown once; revoke)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pushcore.api import auth
from pushcore.api.routes.apps import app_out
from pushcore.api.state import POOL, SERVER_KEYS
from pushcore.console.pages import app_row, render, require
from pushcore.console.state import KEY_APPS, Viewer
from pushcore.db import apps as app_queries
from pushcore.db.pool import Record

ROUTES = web.RouteTableDef()


async def _page(
    request: web.Request, who: Viewer, app: Record, created: str | None = None
) -> web.Response:
    keys = await app_queries.list_keys(request.config_dict[POOL], app["code"]) if who.admin else []
    shown: dict[str, Any] = app_out(app)
    context = {"app": shown, "keys": keys, "created_key": created}
    return render("settings.html", request, context)


@ROUTES.get("/apps/{app_code}/settings", name="settings")
async def settings(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    return await _page(request, who, await app_row(request, who))


def _admin_only(who: Viewer) -> None:
    if not who.admin:
        raise web.HTTPForbidden(reason="Only the admin manages server keys.")


@ROUTES.post("/apps/{app_code}/keys", name="create_key")
async def create_key(request: web.Request) -> web.StreamResponse:
    """The new key is on this one answer only (``Cache-Control: no-store``)."""
    who = await require(request)
    _admin_only(who)
    app = await app_row(request, who)
    server_key = auth.new_secret(auth.SERVER_KEY_PREFIX)
    row = await app_queries.create_key(
        request.config_dict[POOL], app["code"], auth.new_public_id("key_"), auth.digest(server_key)
    )
    if row is None:
        raise web.HTTPNotFound(reason="No such app.")
    return await _page(request, who, app, created=server_key)


@ROUTES.post("/apps/{app_code}/keys/{key_id}/revoke", name="revoke_key")
async def revoke_key(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    _admin_only(who)
    app = await app_row(request, who)
    found = await app_queries.revoke_key(
        request.config_dict[POOL], app["code"], request.match_info["key_id"]
    )
    if not found:
        raise web.HTTPNotFound(reason="No such key.")
    # as the JSON API's revoke does: this process stops trusting the key at once
    request.config_dict[SERVER_KEYS].clear()
    request.app[KEY_APPS].clear()
    raise web.HTTPSeeOther(request.app.router["settings"].url_for(app_code=app["code"]))

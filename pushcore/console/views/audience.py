"""Audience: look a user up (external id, email, phone), a user's page, an installation's
page, and the app's tags with their installation counts."""

from __future__ import annotations

import uuid

from aiohttp import web

from pushcore.api.state import POOL, PROGRAMS, SETTINGS
from pushcore.console.pages import app_row, render, require
from pushcore.console.state import AGGREGATES
from pushcore.db import console as queries
from pushcore.db import inbox as inbox_queries
from pushcore.db import installations as installation_queries
from pushcore.db import users as user_queries
from pushcore.db.installations import Scope
from pushcore.fanout.render import page_for_reader

ROUTES = web.RouteTableDef()
LOOKUPS = {"external_id": "External user id", "email": "Email", "msisdn": "Phone (E.164)"}
MAX_QUERY = 320
MAX_EXTERNAL_ID = 256  # pushcore.fields.ExternalId
INBOX_LATEST = 20  # the user's page lists the latest messages of its inbox, not all


@ROUTES.get("/apps/{app_code}/audience", name="audience")
async def audience(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    pool = request.config_dict[POOL]
    by = request.query.get("by", "email")
    q = request.query.get("q", "").strip()
    error = None
    found: list[str] = []
    if by not in LOOKUPS:
        by, error = "email", "Choose what to look up by."
    elif q and len(q) > MAX_QUERY:
        error = f"At most {MAX_QUERY} characters."
    elif q:
        if by == "external_id":
            row = None if len(q) > MAX_EXTERNAL_ID else await user_queries.get(pool, app["id"], q)
            found = [row["external_id"]] if row else []
        else:
            rows = await user_queries.find(
                pool, app["id"], **({"email": q} if by == "email" else {"msisdn": q})
            )
            found = [r["external_id"] for r in rows]
        if len(found) == 1:
            raise web.HTTPSeeOther(
                request.app.router["user"].url_for(app_code=app["code"], external_id=found[0])
            )
        if not found:
            error = "No user matches."
    cache = request.app[AGGREGATES]
    tags = cache.get(("tags", app["id"]))
    if tags is None:
        tags = [dict(r) for r in await queries.tag_counts(pool, app["id"])]
        cache.put(("tags", app["id"]), tags)
    context = {"lookups": LOOKUPS, "by": by, "q": q, "error": error, "found": found, "tags": tags}
    return render("audience.html", request, context)


@ROUTES.get("/apps/{app_code}/users/{external_id}", name="user")
async def user(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    external_id = request.match_info["external_id"]
    pool = request.config_dict[POOL]
    row = await user_queries.get(pool, app["id"], external_id)
    if row is None:
        raise web.HTTPNotFound(reason="No such user.")
    # the server inbox route's own query: the same counts and messages as
    # GET /v1/apps/{app_code}/users/{external_user_id}/inbox?limit=20
    inbox = await inbox_queries.read(
        pool,
        inbox_queries.user(app["id"], external_id),
        topics=None,
        since=None,
        until=None,
        after=None,
        limit=INBOX_LATEST,
    )
    # templated messages as the user's inbox shows them (the API's rendering)
    shown = (
        []
        if inbox is None
        else await page_for_reader(
            request.config_dict[PROGRAMS],
            inbox.rows,
            inbox.reader,
            language=None,
            unread=inbox.unread,
            render_seconds=request.config_dict[SETTINGS].template_render_seconds,
        )
    )
    context = {"user": row, "inbox": inbox, "shown": shown, "latest": INBOX_LATEST}
    return render("user.html", request, context)


@ROUTES.get("/apps/{app_code}/installations/{installation_id}", name="installation")
async def installation(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    try:
        public_id = uuid.UUID(request.match_info["installation_id"])
    except ValueError:
        raise web.HTTPNotFound(reason="No such installation.") from None
    row = await installation_queries.get(
        request.config_dict[POOL], Scope(public_id, app_id=app["id"])
    )
    if row is None:
        raise web.HTTPNotFound(reason="No such installation.")
    return render("installation.html", request, {"inst": row})

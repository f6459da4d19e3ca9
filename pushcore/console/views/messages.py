"""Messages: the list (filter by status, paged), a message's page with live progress
(htmx polling, bounded), delivered over time, the outcome breakdown and failure reasons,
and cancel."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from pushcore.api.routes.messages import message_out
from pushcore.api.state import POOL
from pushcore.console.pages import app_row, render, require
from pushcore.db import console as queries
from pushcore.db import messages as message_queries
from pushcore.db.pool import Record

ROUTES = web.RouteTableDef()
STATUSES = ("scheduled", "queued", "sending", "done", "cancelled", "failed")
FINAL = frozenset({"done", "cancelled", "failed"})
PAGE = 25
POLL_SECONDS = 2
# a page left open polls at most this often (an hour at POLL_SECONDS), then asks for a reload
MAX_POLLS = 1800


def _message_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["message_id"])
    except ValueError:
        raise web.HTTPNotFound(reason="No such message.") from None


@ROUTES.get("/apps/{app_code}/messages", name="messages")
async def listing(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        status = None
    before: uuid.UUID | None = None
    if request.query.get("before"):
        try:
            before = uuid.UUID(request.query["before"])
        except ValueError:
            before = None
    rows = await queries.messages_page(
        request.config_dict[POOL], app["id"], status=status, before=before, limit=PAGE + 1
    )
    more = len(rows) > PAGE
    shown = [_summary(r) for r in rows[:PAGE]]
    context = {"messages": shown, "status": status, "statuses": STATUSES, "more": more}
    return render("messages.html", request, context)


def _summary(row: Record) -> dict[str, Any]:
    out = message_out(row)
    return {"message": out, "final": out.status in FINAL}


async def _details(request: web.Request, app: Record) -> dict[str, Any]:
    pool = request.config_dict[POOL]
    public_id = _message_id(request)
    row = await message_queries.get(pool, app["id"], public_id)
    if row is None:
        raise web.HTTPNotFound(reason="No such message.")
    out = message_out(row)
    timeline = await queries.message_timeline(pool, app["id"], public_id)
    cumulative, total = [], 0
    for point in timeline:
        total += int(point["delivered"])
        cumulative.append(total)
    try:
        polls = max(0, int(request.query.get("n", "0")))
    except ValueError:
        polls = 0
    return {
        "m": out,
        "final": out.status in FINAL,
        "platforms": await queries.message_platforms(pool, app["id"], public_id),
        "chart": {"x": [int(p["at"].timestamp()) for p in timeline], "delivered": cumulative},
        "next_poll": polls + 1,
        "polling": out.status not in FINAL and polls < MAX_POLLS,
        "poll_seconds": POLL_SECONDS,
        "cancellable": out.status in ("scheduled", "queued", "sending"),
    }


@ROUTES.get("/apps/{app_code}/messages/{message_id}", name="message")
async def message(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    return render("message.html", request, await _details(request, app))


@ROUTES.get("/apps/{app_code}/messages/{message_id}/progress", name="progress")
async def progress(request: web.Request) -> web.StreamResponse:
    """The part of the message page that polling replaces."""
    who = await require(request)
    app = await app_row(request, who)
    return render("progress.html", request, await _details(request, app))


@ROUTES.post("/apps/{app_code}/messages/{message_id}/cancel", name="cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    public_id = _message_id(request)
    row = await message_queries.cancel(request.config_dict[POOL], app["id"], public_id)
    if row is None:
        raise web.HTTPNotFound(reason="No such message.")
    raise web.HTTPSeeOther(
        request.app.router["message"].url_for(app_code=app["code"], message_id=str(public_id))
    )

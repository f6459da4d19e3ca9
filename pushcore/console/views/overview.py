"""An app's overview: installations by platform, users, removed registrations, the last
seven days of messages (a chart and a table)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from pushcore.api.state import POOL, SETTINGS
from pushcore.console.pages import app_row, render, require
from pushcore.console.state import AGGREGATES
from pushcore.db import console as queries
from pushcore.providers import registry

ROUTES = web.RouteTableDef()
DAYS = 7


async def _cached(request: web.Request, what: str, app_id: int, load: Any) -> Any:
    cache = request.app[AGGREGATES]
    value = cache.get((what, app_id))
    if value is None:
        value = await load()
        cache.put((what, app_id), value)
    return value


@ROUTES.get("/apps/{app_code}/", name="overview")
async def overview(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    app = await app_row(request, who)
    pool = request.config_dict[POOL]
    stale_days = request.config_dict[SETTINGS].stale_token_days

    async def installations() -> list[dict[str, Any]]:
        rows = await queries.installation_counts(pool, app["id"], stale_days)
        return [dict(r) for r in rows]

    async def users() -> int:
        return await queries.user_count(pool, app["id"])

    counted = await _cached(request, "installations", app["id"], installations)
    by_platform = {r["platform"]: r for r in counted}
    platforms = [
        {
            "name": p,
            "live": by_platform.get(p, {}).get("live", 0),
            "disabled": by_platform.get(p, {}).get("disabled", 0),
            "stale_soon": by_platform.get(p, {}).get("stale_soon", 0),
            "personalized": by_platform.get(p, {}).get("personalized", 0),
        }
        for p in registry.NAMES
    ]
    total = sum(p["live"] + p["disabled"] for p in platforms)
    personalized = sum(p["personalized"] for p in platforms)
    days = await queries.daily_messages(pool, app["id"], DAYS)
    # every one of the last 7 days on the chart, the quiet ones at 0
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    axis = [today - dt.timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    by_day = {d["day"]: d for d in days}
    chart = {
        "x": [int(day.timestamp()) for day in axis],
        "series": {
            "delivered": [int(by_day[d]["delivered"]) if d in by_day else 0 for d in axis],
            "removed or failed": [
                int(by_day[d]["invalid_removed"] + by_day[d]["failed"]) if d in by_day else 0
                for d in axis
            ],
        },
    }
    context = {
        "platforms": platforms,
        "total": total,
        "users": await _cached(request, "users", app["id"], users),
        "personalized": personalized,
        "personalized_share": (personalized / total) if total else 0.0,
        "removed_day": await queries.removed_since(pool, app["id"], 24),
        "removed_week": await queries.removed_since(pool, app["id"], 24 * DAYS),
        "days": days,
        "chart": chart,
        "stale_days": stale_days,
        "now": dt.datetime.now(dt.UTC),
    }
    return render("overview.html", request, context)

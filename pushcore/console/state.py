"""Typed state of the console's sub-application and of each request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from pushcore.api.auth import TtlCache
from pushcore.console.session import Session, Sessions
from pushcore.console.throttle import SignInThrottle
from pushcore.db.pool import Record

SESSIONS = web.AppKey("console_sessions", Sessions)
SIGNINS = web.AppKey("console_signins", SignInThrottle)
# server key_id -> its app (id, code, name): a revoked key's sessions end within the API's
# PUSHCORE_AUTH_CACHE_SECONDS, as the key itself stops working on the JSON API
KEY_APPS = web.AppKey("console_key_apps", TtlCache[str, Record])
# (what, app id) -> an overview aggregate, reused for a short while (see app.AGGREGATE_SECONDS)
AggregateCache = TtlCache[tuple[str, int], Any]
AGGREGATES = web.AppKey("console_aggregates", AggregateCache)
SESSION = web.RequestKey("console_session", Session)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in: the admin (every app) or a server key (its app only)."""

    kind: Literal["admin", "server"]
    app_code: str | None = None  # the server key's app
    key_id: str | None = None

    @property
    def admin(self) -> bool:
        return self.kind == "admin"


VIEWER = web.RequestKey("console_viewer", Viewer)
PAGE_APP = web.RequestKey("console_app", Record)  # the app row of the page

"""The console's aiohttp sub-application: templates, static files, the session and CSRF
middleware, and its routes.  Mounted by :func:`pushcore.api.app.make_app` under
``/console/``; it reads the API's own resources (pool, caches) from the parent app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from pushcore.api.auth import TtlCache
from pushcore.config import Settings
from pushcore.console import pages
from pushcore.console.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions, csrf_ok
from pushcore.console.state import (
    AGGREGATES,
    KEY_APPS,
    SESSION,
    SESSIONS,
    SIGNINS,
    AggregateCache,
)
from pushcore.console.throttle import SignInThrottle
from pushcore.console.views import ROUTES

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# npm ci puts the pinned packages here; each is served from its own dist folder as it is
VENDOR = {
    "htmx": HERE / "node_modules" / "htmx.org" / "dist",
    "uplot": HERE / "node_modules" / "uplot" / "dist",
}
# The aggregates of an overview (a scan of the app's installations) are reused this long.
AGGREGATE_SECONDS = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# No inline script or style anywhere: chart data travels in <script type="application/json">
# blocks, which are not executed; htmx's own indicator style is switched off in its config.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loads the session (a new anonymous one when there is none), refuses a state-changing
    request without the session's CSRF token (403), and stores the session that the
    handler leaves in ``request[SESSION]``."""
    sessions = request.app[SESSIONS]
    loaded = sessions.load(request)
    request[SESSION] = loaded or Session.fresh()
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
        if loaded is None or not csrf_ok(loaded, presented):
            return pages.error_page(
                request,
                403,
                "This form has expired or did not come from "
                "the console. Reload the page and try again.",
            )
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            raise
        # a redirect, made a plain response so that the session can go with it
        response = web.Response(status=exc.status, headers=exc.headers)
    if loaded is None or request[SESSION] != loaded:
        sessions.save(request, response, request[SESSION])
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console errors are pages, not the API's JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return pages.error_page(request, exc.status, exc.reason)


def make_console(settings: Settings) -> web.Application:
    if settings.console_secret is None:
        raise ValueError("the console needs settings.console_secret (with_console_secret)")
    app = web.Application(middlewares=[html_errors, session_guard])
    app[SESSIONS] = Sessions(settings.console_secret, settings.console_session_hours * 3600)
    app[KEY_APPS] = TtlCache(settings.auth_cache_seconds, size=1000)
    app[SIGNINS] = SignInThrottle(
        settings.console_signin_failures, settings.console_signin_window_seconds
    )
    app[AGGREGATES] = AggregateCache(AGGREGATE_SECONDS, size=1000)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    app.router.add_static("/static/console/", HERE / "static", name="static-console")
    for name, path in VENDOR.items():
        if path.is_dir():
            app.router.add_static(f"/static/vendor/{name}/", path, name=f"static-{name}")
        else:  # pages still work as plain forms; estimates and live progress need htmx
            log.warning("console assets missing (%s): run npm ci --prefix pushcore/console", path)
    app.add_routes(ROUTES)

    def url(name: str, **parts: str) -> str:
        return str(app.router[name].url_for(**{k: str(v) for k, v in parts.items()}))

    def static(name: str, filename: str) -> str:
        resource = app.router.named_resources().get(f"static-{name}")
        if resource is None:  # not installed (logged above): the page works without it
            return f"{app.router['home'].url_for()}static/vendor/{name}/{filename}"
        return str(resource.url_for(filename=filename))

    env.globals.update(url=url, static=static)
    return app

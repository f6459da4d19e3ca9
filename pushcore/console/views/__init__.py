"""The console's pages, one module per area; :data:`ROUTES` is all of them."""

from __future__ import annotations

from aiohttp import web

from pushcore.console.views import audience, compose, messages, overview, settings, signin

ROUTES: list[web.AbstractRouteDef] = [
    *signin.ROUTES,
    *overview.ROUTES,
    *audience.ROUTES,
    *compose.ROUTES,
    *messages.ROUTES,
    *settings.ROUTES,
]

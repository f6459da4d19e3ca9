"""Route tables, one module per resource; :data:`ROUTES` is all of them in document order."""

from __future__ import annotations

from pushcore.api.routes import (
    apps,
    health,
    installations,
    messages,
    results,
    users,
    webhooks,
)
from pushcore.api.routing import Route

ROUTES: list[Route] = [
    *health.ROUTES,
    *apps.ROUTES,
    *installations.ROUTES,
    *users.ROUTES,
    *messages.ROUTES,
    *results.ROUTES,
    *webhooks.ROUTES,
]

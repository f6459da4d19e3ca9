"""Route tables, one module per resource; :data:`ROUTES` is all of them in document order."""

from __future__ import annotations

from pushcore.api.routes import (
    apps,
    estimate,
    health,
    inbox,
    installations,
    messages,
    preview,
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
    *inbox.ROUTES,
    *preview.ROUTES,  # before messages: its path would match /messages/{message_id}
    *messages.ROUTES,
    *estimate.ROUTES,
    *results.ROUTES,
    *webhooks.ROUTES,
]

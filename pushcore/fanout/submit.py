"""Accepting a send: checks that need the app (credentials, payload sizes), then the message
row.  Shared by the API route and the ``submit_message`` actor, so that a send enqueued
directly on Dramatiq is checked exactly like one posted over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from pushcore.config import Settings
from pushcore.db import messages as queries
from pushcore.db.pool import Pool, Record
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.request import SendRequestBase
from pushcore.providers import registry
from pushcore.providers.errors import CredentialsError, InvalidNotification, PayloadTooLarge

EnqueuePlan = Callable[[int], Awaitable[None]]


def check(request: SendRequestBase, app: Record, settings: Settings) -> list[str]:
    """The platforms this message goes to; :class:`InvalidSend` when it cannot be sent."""
    try:
        request.target.kind()
    except ValueError as exc:
        raise InvalidSend("target", str(exc)) from None
    stored: dict[str, Any] = app["credentials"]
    configured: list[str] = [p for p in registry.NAMES if p in stored]
    if request.platforms is not None:
        wanted: list[str] = list(dict.fromkeys(request.platforms))
        missing = [p for p in wanted if p not in configured]
        if missing:
            raise InvalidSend("platforms", f"the app has no credentials for {', '.join(missing)}")
    else:
        wanted = configured
    if not wanted:
        raise InvalidSend("platforms", "the app has no provider credentials configured")
    notification = request.effective_notification()
    for platform in wanted:
        spec = registry.spec(platform)
        try:
            spec.make_provider(stored[platform], settings).render(notification)
        except PayloadTooLarge as exc:
            raise InvalidSend("notification", str(exc)) from None
        except InvalidNotification as exc:
            raise InvalidSend("notification", str(exc)) from None
        except CredentialsError as exc:  # stored credentials no longer load
            raise InvalidSend(spec.key, str(exc)) from None
    return wanted


async def submit(
    pool: Pool, settings: Settings, app: Record, request: SendRequestBase, enqueue_plan: EnqueuePlan
) -> tuple[Record, bool]:
    """Check, store and enqueue the plan job; return (message row, created)."""
    platforms = check(request, app, settings)
    stored: dict[str, Any] = msgspec.to_builtins(request)
    row, created = await queries.create(
        pool,
        app_id=app["id"],
        request=stored,
        notification=msgspec.to_builtins(request.effective_notification()),
        platforms=platforms,
        primary_only=request.primary_only,
        send_at=request.send_at,
        ttl_seconds=request.ttl(),
        idempotency_key=request.idempotency_key,
    )
    if created and row["status"] == "queued":
        # If this enqueue is lost (Redis down), the reaper enqueues the plan job again.
        await enqueue_plan(row["id"])
    return row, created

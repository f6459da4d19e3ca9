"""Accepting a send: checks that need the app (credentials, payload sizes), then the message
row, planned at once when the target is small (the transactional lane).  Shared by the API
route and the ``submit_message`` actor, so that a send enqueued directly on Dramatiq is
checked exactly like one posted over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from pushcore.config import Settings
from pushcore.db import messages as queries
from pushcore.db.messages import LanePlan
from pushcore.db.pool import Pool, Record
from pushcore.fanout import raw_tokens
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.planning import list_values
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.request import SendRequestBase
from pushcore.fanout.targets import TargetKind
from pushcore.providers import registry
from pushcore.providers.errors import CredentialsError, InvalidNotification, PayloadTooLarge

EnqueuePlan = Callable[[int], Awaitable[None]]


def check(
    request: SendRequestBase,
    app: Record,
    settings: Settings,
    providers: ProviderCache | None = None,
) -> list[str]:
    """The platforms this message goes to; :class:`InvalidSend` when it cannot be sent.
    ``providers`` caches the providers between calls (loading keys is most of a check's
    cost); without it they are built for this call."""
    try:
        kind = request.target.kind()
    except ValueError as exc:
        raise InvalidSend("target", str(exc)) from None
    stored: dict[str, Any] = app["credentials"]
    configured: list[str] = [p for p in registry.NAMES if p in stored]
    wanted: list[str]
    if kind is TargetKind.TOKENS:
        wanted = _raw_token_platforms(request, configured)
    elif request.platforms is not None:
        wanted = list(dict.fromkeys(request.platforms))
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
            if providers is None:
                provider = spec.make_provider(stored[platform], settings)
            else:  # the app's updated_at moves with every credentials change
                provider = providers.get(app["id"], platform, app["updated_at"], stored[platform])
            provider.render(notification)
        except PayloadTooLarge as exc:
            raise InvalidSend("notification", str(exc)) from None
        except InvalidNotification as exc:
            raise InvalidSend("notification", str(exc)) from None
        except CredentialsError as exc:  # stored credentials no longer load
            raise InvalidSend(spec.key, str(exc)) from None
    return wanted


def _raw_token_platforms(request: SendRequestBase, configured: list[str]) -> list[str]:
    """The platforms of a raw-token send: those of its tokens, each checked as a
    registration, each configured for the app (and among ``platforms`` when given)."""
    if request.primary_only:
        raise InvalidSend("primary_only", "applies to registry targets, not to raw tokens")
    assert request.target.tokens is not None
    allowed = configured
    if request.platforms is not None:
        allowed = [p for p in configured if p in request.platforms]
    for index, entry in enumerate(request.target.tokens):
        if entry.platform not in allowed:
            raise InvalidSend(
                f"target.tokens[{index}].platform",
                f"the app has no credentials for {entry.platform}"
                if entry.platform not in configured
                else f"{entry.platform} is not among platforms",
            )
    found = {a.platform for a in raw_tokens.addresses(request.target.tokens)}
    return [p for p in registry.NAMES if p in found]


def lane_plan(request: SendRequestBase, settings: Settings) -> LanePlan | None:
    """The lane's plan when the send is small enough to plan at once: a list target of at
    most PUSHCORE_LANE_MAX_TARGETS values, not scheduled.  Whole-app and tag targets, big
    lists and scheduled sends go through the planner."""
    kind = request.target.kind()
    if kind in (TargetKind.ALL, TargetKind.TAGS, TargetKind.TOKENS) or request.send_at is not None:
        # raw tokens go through the planner: up to 10,000 of them are a campaign's batches
        return None
    values = list_values(kind, request.target)
    if len(values) > settings.lane_max_targets:
        return None
    return LanePlan(kind.value, values, settings.batch_size)


async def submit(
    pool: Pool,
    settings: Settings,
    app: Record,
    request: SendRequestBase,
    enqueue_plan: EnqueuePlan,
    *,
    providers: ProviderCache | None = None,
    wake_lane: Callable[[], None] | None = None,
) -> tuple[Record, bool]:
    """Check, store and plan (lane) or enqueue the plan job; return (message row,
    created)."""
    platforms = check(request, app, settings, providers)
    lane = lane_plan(request, settings)
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
        lane=lane,
    )
    if created and lane is not None and wake_lane is not None:
        wake_lane()  # committed: the lane loops may claim it now (they poll besides)
    if created and lane is None and row["status"] == "queued":
        # If this enqueue is lost (Redis down), the reaper enqueues the plan job again.
        await enqueue_plan(row["id"])
    return row, created

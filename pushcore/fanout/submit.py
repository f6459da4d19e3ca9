"""Accepting a send: checks that need the app (credentials, payload sizes), then the message
row, planned at once when the target is small (the transactional lane).  Shared by the API
route and the ``submit_message`` actor, so that a send enqueued directly on Dramatiq is
checked exactly like one posted over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from pushcore import fields
from pushcore.config import Settings
from pushcore.db import messages as queries
from pushcore.db.inbox import InboxPlan
from pushcore.db.messages import LanePlan
from pushcore.db.pool import Pool, Record
from pushcore.endpoints import EndpointPolicy
from pushcore.fanout import localtime, raw_tokens
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.planning import list_values
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.render import samples, stored_notification
from pushcore.fanout.request import SendRequestBase
from pushcore.fanout.targets import TargetKind
from pushcore.providers import registry
from pushcore.providers.errors import CredentialsError, InvalidNotification, PayloadTooLarge
from pushcore.templates import locale

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
    _check_request(request, settings.now())
    _check_inbox(request)
    kind = request.target.kind()
    if kind is TargetKind.TOKENS:
        _check_raw_token_send(request)
    if request.send_at_local is not None:
        _check_local_time(request, kind)
    # per-recipient content: its templates checked (an inbox-only message's too: the inbox
    # renders them for its readers), each variant as a recipient without properties would
    # get it (what differs per recipient is checked at send time)
    notifications = (
        samples(request, settings.template_render_seconds)
        if request.templated()
        else [request.effective_notification()]
    )
    if not request.push:
        return []  # inbox only: no provider is involved, none needs credentials
    stored: dict[str, Any] = app["credentials"]
    if kind is TargetKind.TOKENS:
        configured: list[str] = [p for p in registry.NAMES if p in stored]
        wanted = _raw_token_platforms(request, configured, settings.endpoint_policy())
    else:
        wanted = send_platforms(request.platforms, app)
    for platform in wanted:
        spec = registry.spec(platform)
        try:
            if providers is None:
                provider = spec.make_provider(stored[platform], settings)
            else:  # the app's updated_at moves with every credentials change
                provider = providers.get(app["id"], platform, app["updated_at"], stored[platform])
            for notification in notifications:
                provider.render(notification)
        except PayloadTooLarge as exc:
            raise InvalidSend("notification", str(exc)) from None
        except InvalidNotification as exc:
            raise InvalidSend("notification", str(exc)) from None
        except CredentialsError as exc:  # stored credentials no longer load
            raise InvalidSend(spec.key, str(exc)) from None
    return wanted


def _check_request(request: SendRequestBase, now: dt.datetime) -> None:
    """What the request's type cannot say: exactly one target, the send_at and send_at_local
    windows, a default_time_zone exactly with send_at_local."""
    try:
        request.target.kind()
    except ValueError as exc:
        raise InvalidSend("target", str(exc)) from None
    if request.send_at is not None:
        problem = fields.time_problem(request.send_at, now, fields.SEND_AT_AHEAD)
        if problem is not None:
            raise InvalidSend("send_at", problem)
    local = request.send_at_local
    if local is None:
        if request.default_time_zone is not None:
            raise InvalidSend("default_time_zone", "applies to send_at_local only")
        return
    if request.send_at is not None:
        raise InvalidSend("send_at_local", "give send_at or send_at_local, not both")
    problem = localtime.window_problem(local, now)
    if problem is not None:
        raise InvalidSend("send_at_local", problem)
    zone = request.default_time_zone
    if zone is None:
        raise InvalidSend(
            "default_time_zone",
            "required with send_at_local (for installations that registered no time zone)",
        )
    if not locale.valid_time_zone(zone):
        raise InvalidSend("default_time_zone", "must be an IANA time zone such as Europe/Lisbon")


def _check_local_time(request: SendRequestBase, kind: TargetKind) -> None:
    """Local-time delivery needs registered recipients (a raw token has no time zone) and is
    push only: an inbox entry would be stored when planning starts, up to 26 hours before
    the push."""
    if kind is TargetKind.TOKENS:
        raise InvalidSend("send_at_local", "raw tokens have no time zone; use send_at")
    if request.inbox_options() is not None:
        raise InvalidSend("inbox", "not with send_at_local (local-time delivery is push only)")


def _check_inbox(request: SendRequestBase) -> None:
    inbox = request.inbox_options()
    if not request.push:
        if inbox is None:
            raise InvalidSend("push", "push false needs inbox: the message would reach nobody")
        for name in ("platforms", "primary_only"):
            if getattr(request, name) not in (None, False):
                raise InvalidSend(name, "applies to the push only, and push is false")
    if inbox is None or inbox.expires_at is None:
        return
    now = dt.datetime.now(dt.UTC)
    problem = fields.time_problem(inbox.expires_at, now, fields.EXPIRES_AHEAD)
    if problem is not None:
        raise InvalidSend("inbox.expires_at", problem)
    starts = request.send_at or dt.datetime.now(dt.UTC)
    if inbox.expires_at <= starts:
        what = "send_at" if request.send_at else "now"
        raise InvalidSend("inbox.expires_at", f"must be later than {what}")


def inbox_plan(request: SendRequestBase) -> InboxPlan | None:
    inbox = request.inbox_options()
    return None if inbox is None else InboxPlan(inbox.topic, inbox.expires_at)


def recipient_data(request: SendRequestBase) -> tuple[list[str], list[Any]] | None:
    """The users of a ``recipients`` target and their data, each user once (its first
    entry); None for other targets."""
    given = request.target.recipients
    if given is None:
        return None
    first: dict[str, Any] = {}
    for r in given:
        first.setdefault(r.external_user_id, r.data)
    return list(first), list(first.values())


def send_platforms(requested: Sequence[str] | None, app: Record) -> list[str]:
    """The platforms a send goes to: those asked for (all must have credentials), or every
    platform the app has credentials for; :class:`InvalidSend` when none."""
    configured: list[str] = [p for p in registry.NAMES if p in app["credentials"]]
    if requested is not None:
        wanted: list[str] = list(dict.fromkeys(requested))
        missing = [p for p in wanted if p not in configured]
        if missing:
            raise InvalidSend("platforms", f"the app has no credentials for {', '.join(missing)}")
    else:
        wanted = configured
    if not wanted:
        raise InvalidSend("platforms", "the app has no provider credentials configured")
    return wanted


def _raw_token_platforms(
    request: SendRequestBase, configured: list[str], policy: EndpointPolicy
) -> list[str]:
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
    found = {a.platform for a in raw_tokens.addresses(request.target.tokens, policy)}
    return [p for p in registry.NAMES if p in found]


def _check_raw_token_send(request: SendRequestBase) -> None:
    """Raw tokens belong to no user and carry no device properties: no inbox for them, and
    no per-recipient content (a template would have nothing of the recipient to read)."""
    if request.inbox_options() is not None or not request.push:
        raise InvalidSend("inbox", "raw tokens belong to no user, so they have no inbox")
    if request.templated():
        raise InvalidSend("notification", "templates need registered recipients, not raw tokens")


def lane_plan(request: SendRequestBase, settings: Settings) -> LanePlan | None:
    """The lane's plan when the send is small enough to plan at once: a list target of at
    most PUSHCORE_LANE_MAX_TARGETS values, not scheduled (its inbox entries are written in
    the same statement).  Whole-app and tag targets, big lists, scheduled sends (at
    ``send_at`` or in local time) and throttled ones (``rate_per_minute``) go through the
    planner."""
    kind = request.target.kind()
    scheduled = request.send_at is not None or request.send_at_local is not None
    if kind in (TargetKind.ALL, TargetKind.TAGS, TargetKind.TOKENS) or scheduled:
        # raw tokens go through the planner: up to 10,000 of them are a campaign's batches
        return None
    if request.rate_per_minute is not None:
        # the planner's batches take permits of the message's bucket; lane claims do not
        return None
    values = list_values(kind, request.target)
    if len(values) > settings.lane_max_targets:
        return None
    return LanePlan(kind.value, values, settings.batch_size, inbox_plan(request))


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
    recipients = recipient_data(request)
    if recipients is not None:  # planned as the user list; the data goes beside the message
        request = msgspec.structs.replace(request, target=request.target.users())
    lane = lane_plan(request, settings)
    stored: dict[str, Any] = msgspec.to_builtins(request)
    send_at, local_from = request.send_at, None
    if request.send_at_local is not None:  # planned ahead of the earliest zone, held
        local_from = settings.now()
        send_at = max(localtime.plan_start(request.send_at_local), local_from)
    row, created = await queries.create(
        pool,
        app_id=app["id"],
        request=stored,
        notification=stored_notification(request),
        platforms=platforms,
        primary_only=request.primary_only,
        send_at=send_at,
        local_from=local_from,
        ttl_seconds=request.ttl(),
        idempotency_key=request.idempotency_key,
        lane=lane,
        recipients=recipients,
    )
    if created and lane is not None and wake_lane is not None:
        wake_lane()  # committed: the lane loops may claim it now (they poll besides)
    due = row["status"] == "queued" or (local_from is not None and send_at == local_from)
    if created and lane is None and due:
        # If this enqueue is lost (Redis down), the reaper enqueues the plan job again.
        await enqueue_plan(row["id"])
    return row, created

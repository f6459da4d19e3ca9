"""Webhook endpoints of an app (server key): create (the signing secret shown once), list,
change, delete, send a test event, and the recent delivery attempts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from pushcore.api.errors import conflict, invalid, not_found
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.schemas import Request
from pushcore.api.state import POOL, SETTINGS
from pushcore.db import webhooks as queries
from pushcore.db.pool import Record
from pushcore.webhooks import signing
from pushcore.webhooks.delivery import policy_of
from pushcore.webhooks.policy import url_problem

MAX_WEBHOOKS = 20  # per app: each event is written once per subscribed endpoint
MAX_DELIVERIES = 100

Event = Literal[
    "message.status",
    "message.done",
    "registrations.removed",
    "tokens.invalid",
    "interactions",
    "webhook.disabled",
]
Events = Annotated[list[Event], Meta(min_length=1, max_length=6)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
Description = Annotated[str, Meta(max_length=500)]


class WebhookCreate(Request):
    url: Url
    events: Events
    description: Description | None = None


class WebhookUpdate(Request):
    url: Url | UnsetType = UNSET
    events: Events | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class WebhookOut(Struct, kw_only=True):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None  # set when it was disabled after failing for the window
    failing_since: dt.datetime | None
    created_at: dt.datetime


class WebhookCreated(WebhookOut, kw_only=True):
    secret: str  # whsec_…: shown here only


class WebhookList(Struct, kw_only=True):
    webhooks: list[WebhookOut]


class TestQueued(Struct, kw_only=True):
    event_id: str  # the webhook-id the test event is delivered with


class Attempt(Struct, kw_only=True):
    event_id: str
    type: str
    attempt: int
    status: int | None  # the receiver's HTTP status; None when none came
    latency_ms: int
    error: str | None
    at: dt.datetime


class AttemptList(Struct, kw_only=True):
    deliveries: list[Attempt]


def _out(row: Record) -> WebhookOut:
    return WebhookOut(
        id=row["public_id"],
        url=row["url"],
        events=list(row["events"]),
        description=row["description"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
    )


def _checked_url(call: Call, url: str) -> str:
    problem = url_problem(url, policy_of(call.request.app[SETTINGS]))
    if problem is not None:
        raise invalid("url", problem)
    return url


def _events(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


def _webhook_id(call: Call) -> uuid.UUID:
    try:
        return uuid.UUID(call.param("webhook_id"))
    except ValueError:
        raise not_found("webhook") from None


async def create(call: Call) -> Reply:
    body: WebhookCreate = call.body
    url = _checked_url(call, body.url)
    app = call.server_app()
    pool = call.request.app[POOL]
    if await queries.count(pool, app.id) >= MAX_WEBHOOKS:
        raise conflict("too_many_webhooks", f"an app has at most {MAX_WEBHOOKS} webhooks")
    secret = signing.new_secret()
    row = await queries.create(
        pool,
        app.id,
        url=url,
        events=_events(list(body.events)),
        description=body.description,
        secret=secret,
    )
    out = _out(row)
    return Reply(
        201, WebhookCreated(**{f: getattr(out, f) for f in out.__struct_fields__}, secret=secret)
    )


async def listing(call: Call) -> Reply:
    rows = await queries.listing(call.request.app[POOL], call.server_app().id)
    return Reply(200, WebhookList(webhooks=[_out(r) for r in rows]))


async def update(call: Call) -> Reply:
    body: WebhookUpdate = call.body
    changes: dict[str, object] = {}
    if body.url is not UNSET:
        changes["url"] = _checked_url(call, body.url)
    if body.events is not UNSET:
        changes["events"] = _events(list(body.events))
    if body.description is not UNSET:
        changes["description"] = body.description
    if body.enabled is not UNSET:
        changes["enabled"] = body.enabled
    row = await queries.update(
        call.request.app[POOL], call.server_app().id, _webhook_id(call), **changes
    )
    if row is None:
        raise not_found("webhook")
    return Reply(200, _out(row))


async def delete(call: Call) -> Reply:
    if not await queries.delete(call.request.app[POOL], call.server_app().id, _webhook_id(call)):
        raise not_found("webhook")
    return Reply(204)


async def test(call: Call) -> Reply:
    row = await queries.enqueue_test(
        call.request.app[POOL], call.server_app().id, _webhook_id(call)
    )
    if row is None:
        raise not_found("webhook")
    if not row["enabled"]:
        raise conflict("webhook_disabled", "the webhook is disabled: enable it first")
    return Reply(202, TestQueued(event_id=signing.event_id(row["event_id"])))


async def deliveries(call: Call) -> Reply:
    raw = call.request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DELIVERIES:
        raise invalid("limit", f"limit must be an integer from 1 to {MAX_DELIVERIES}")
    rows = await queries.attempts(
        call.request.app[POOL], call.server_app().id, _webhook_id(call), int(raw)
    )
    if rows is None:
        raise not_found("webhook")
    return Reply(
        200,
        AttemptList(
            deliveries=[
                Attempt(
                    event_id=signing.event_id(r["outbox_id"]),
                    type=r["type"],
                    attempt=r["attempt"],
                    status=r["status"],
                    latency_ms=r["latency_ms"],
                    error=r["error"],
                    at=r["at"],
                )
                for r in rows
            ]
        ),
    )


WEBHOOKS = "/v1/apps/{app_code}/webhooks"
ONE = WEBHOOKS + "/{webhook_id}"
ROUTES = [
    Route(
        "POST",
        WEBHOOKS,
        create,
        "server",
        "Register a webhook endpoint {url, events, description?}: https only (http only to "
        "loopback where allowed), no private or link-local addresses; the answer shows the "
        "Standard Webhooks signing secret once",
        body=WebhookCreate,
        response=WebhookCreated,
        status=201,
        errors=(400, 401, 404, 409, 413, 422),
        tag="webhooks",
    ),
    Route(
        "GET",
        WEBHOOKS,
        listing,
        "server",
        "The app's webhook endpoints (a disabled one says why)",
        response=WebhookList,
        errors=(401, 404),
        tag="webhooks",
    ),
    Route(
        "PATCH",
        ONE,
        update,
        "server",
        "Change url, events, description or enabled (enabling again restarts its failure "
        "clock; events waiting for it are delivered)",
        body=WebhookUpdate,
        response=WebhookOut,
        errors=(400, 401, 404, 413, 422),
        tag="webhooks",
    ),
    Route(
        "DELETE",
        ONE,
        delete,
        "server",
        "Delete a webhook endpoint and its undelivered events",
        errors=(401, 404),
        status=204,
        tag="webhooks",
    ),
    Route(
        "POST",
        ONE + "/test",
        test,
        "server",
        "Queue a webhook.test event for this endpoint (202 with its webhook-id)",
        response=TestQueued,
        status=202,
        errors=(401, 404, 409),
        tag="webhooks",
    ),
    Route(
        "GET",
        ONE + "/deliveries",
        deliveries,
        "server",
        f"Recent delivery attempts, newest first (limit 1 to {MAX_DELIVERIES}, default 20): "
        "event, HTTP status, latency, error",
        response=AttemptList,
        errors=(401, 404, 422),
        tag="webhooks",
        query=("limit",),
    ),
]

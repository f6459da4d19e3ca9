"""Installation routes: device-side (secret) and server-side (server key) variants.

Device-side: register (open to whoever knows the app code), update, delete, personalize,
depersonalize, primary and events, each authenticated by the installation secret.
Server-side: the same user-link operations, scoped to the server key's app.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from pushcore import fields
from pushcore.api import auth, validation
from pushcore.api.errors import ApiError, conflict, forbidden, invalid, not_found, unauthorized
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.schemas import (
    Events,
    EventsAccepted,
    InstallationCreate,
    InstallationCreated,
    InstallationOut,
    InstallationPatch,
    Personalize,
    Primary,
)
from pushcore.api.state import POOL, SETTINGS
from pushcore.db import events as event_queries
from pushcore.db import installations as queries
from pushcore.db.installations import Scope, TokenChange
from pushcore.db.pool import Record
from pushcore.endpoints import EndpointPolicy
from pushcore.providers import registry

OUT_FIELDS = tuple(f for f in InstallationOut.__struct_fields__)


def installation_out(row: Record) -> dict[str, Any]:
    return {
        "installation_id": row["public_id"],
        "platform": row["platform"],
        "token_tail": row["token_tail"],
        "push_enabled": row["push_enabled"],
        "tags": row["tags"],
        "device": row["device"],
        "external_user_id": row["external_id"],
        "primary": row["is_primary"],
        "token_updated_at": row["token_updated_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _scope(call: Call) -> Scope:
    if call.secret_hash is not None:
        return Scope(call.installation_id(), secret_hash=call.secret_hash)
    return Scope(call.installation_id(), app_id=call.server_app().id)


def _missing(call: Call) -> ApiError:
    if call.secret_hash is not None:
        # an unknown installation and a wrong secret are indistinguishable on purpose
        return unauthorized("unknown installation or wrong installation secret")
    return not_found("installation")


async def register(call: Call) -> Reply:
    body: InstallationCreate = call.body
    policy = call.request.app[SETTINGS].endpoint_policy()
    reg = validation.registration(body.platform, body.push_token, body.web_subscription, policy)
    validation.device_properties(body.device)
    secret = auth.new_secret(auth.INSTALLATION_SECRET_PREFIX)
    row = await queries.register(
        call.request.app[POOL],
        app_code=call.param("app_code"),
        platform=body.platform,
        token=reg.token,
        p256dh=reg.p256dh,
        auth=reg.auth,
        secret_hash=auth.digest(secret),
        push_enabled=body.push_enabled,
        tags=body.tags,
        device=body.device,
    )
    if row is None:
        raise not_found("app")
    out = InstallationCreated(**installation_out(row), installation_secret=secret)
    return Reply(201 if row["created"] else 200, out)


async def get_installation(call: Call) -> Reply:
    row = await queries.get(call.request.app[POOL], _scope(call))
    if row is None:
        raise _missing(call)
    return Reply(200, InstallationOut(**installation_out(row)))


def _token_change(body: InstallationPatch, policy: EndpointPolicy) -> TokenChange | None:
    token = body.push_token
    sub = body.web_subscription
    if token is not msgspec.UNSET and sub is not msgspec.UNSET:
        raise invalid("push_token", "give push_token or web_subscription, not both")
    if sub is not msgspec.UNSET:
        reg = validation.web_registration(sub, policy)
        web = [s.name for s in registry.PLATFORMS if s.registration == "web_subscription"]
        return TokenChange({p: reg.token for p in web}, reg.p256dh, reg.auth)
    if token is not msgspec.UNSET:
        return TokenChange(validation.token_candidates(token))
    return None


async def patch_installation(call: Call) -> Reply:
    body: InstallationPatch = call.body
    change = _token_change(body, call.request.app[SETTINGS].endpoint_policy())
    if body.device is not msgspec.UNSET:
        validation.device_properties(body.device)
    pool = call.request.app[POOL]
    scope = _scope(call)
    try:
        row = await queries.patch(
            pool,
            scope,
            token=change,
            device=None if body.device is msgspec.UNSET else body.device,
            push_enabled=None if body.push_enabled is msgspec.UNSET else body.push_enabled,
            tags=None if body.tags is msgspec.UNSET else body.tags,
        )
    except asyncpg.UniqueViolationError:
        raise conflict(
            "token_taken", "another installation of this app holds this token", "push_token"
        ) from None
    if row is None:
        platform = await queries.diagnose(pool, scope)
        if platform is None:
            raise _missing(call)
        # the installation exists, so the new token did not fit its platform
        if registry.spec(platform).registration == "web_subscription":
            raise invalid(
                "web_subscription", f"{platform} installations change their web_subscription"
            )
        if change is not None and change.p256dh is not None:
            raise invalid("web_subscription", f"not accepted for platform {platform}")
        validation.push_token_for(platform, body.push_token)  # type: ignore[arg-type]
        raise invalid("push_token", f"not a valid token for platform {platform}")
    return Reply(200, InstallationOut(**installation_out(row)))


async def delete_installation(call: Call) -> Reply:
    if not await queries.delete(call.request.app[POOL], _scope(call)):
        raise _missing(call)
    return Reply(204)


async def personalize(call: Call) -> Reply:
    body: Personalize = call.body
    pool = call.request.app[POOL]
    scope = _scope(call)

    async def attach(identity_checked: bool) -> queries.Personalized:
        return await queries.personalize(
            pool,
            scope,
            external_id=body.external_user_id,
            email=body.email,
            msisdn=body.msisdn,
            attributes=body.attributes,
            force=body.force_depersonalize,
            identity_checked=identity_checked,
        )

    done = await attach(identity_checked=False)
    if done.outcome == "identity_needed":
        # a device-side call to an app that verifies identities (the server key is trusted)
        assert done.identity_secret is not None
        if not auth.identity_ok(done.identity_secret, body.external_user_id, body.identity_token):
            raise forbidden(
                "identity_required",
                "this app verifies identities: identity_token must be the HMAC-SHA256 of "
                "external_user_id keyed with the app's identity secret",
                "identity_token",
            )
        # the first call released the row lock: this one takes it again and re-reads all
        done = await attach(identity_checked=True)
    if done.outcome == "not_found":
        raise _missing(call)
    if done.outcome == "conflict":
        raise conflict(
            "attached_to_other_user",
            "the installation belongs to another user; depersonalize it first or set "
            "force_depersonalize",
            "external_user_id",
        )
    assert done.outcome == "ok", done.outcome
    assert done.row is not None
    return Reply(200, InstallationOut(**installation_out(done.row)))


async def depersonalize(call: Call) -> Reply:
    row = await queries.detach_user(call.request.app[POOL], _scope(call))
    if row is None:
        raise _missing(call)
    return Reply(200, InstallationOut(**installation_out(row)))


async def primary(call: Call) -> Reply:
    body: Primary = call.body
    found, row = await queries.set_primary(call.request.app[POOL], _scope(call), body.primary)
    if not found:
        raise _missing(call)
    if row is None:
        raise conflict("no_user", "an anonymous installation cannot be primary; personalize it")
    return Reply(200, InstallationOut(**installation_out(row)))


async def report_events(call: Call) -> Reply:
    events: list[Any] = call.body
    now = dt.datetime.now(dt.UTC)
    for index, event in enumerate(events):
        if event.at is not None:
            problem = fields.time_problem(event.at, now, fields.EVENT_AHEAD)
            if problem is not None:
                raise invalid(f"[{index}].at", problem)
    accepted = await event_queries.insert(
        call.request.app[POOL],
        public_id=call.installation_id(),
        secret_hash=call.device_secret(),
        names=[e.name for e in events],
        ats=[e.at for e in events],
        message_ids=[e.message_id for e in events],
        attributes=[e.attributes for e in events],
    )
    if accepted is None:
        raise _missing(call)
    return Reply(202, EventsAccepted(accepted=accepted))


DEVICE = "/v1/installations/{installation_id}"
SERVER = "/v1/apps/{app_code}/installations/{installation_id}"
_D = (401, 404, 413, 422)
_S = (401, 404, 413, 422)
ROUTES = [
    Route(
        "POST",
        "/v1/apps/{app_code}/installations",
        register,
        "public",
        "Register an installation (201), or refresh the one holding this token (200)",
        body=InstallationCreate,
        response=InstallationCreated,
        status=201,
        also=(200,),
        errors=(404, 413, 422),
        tag="device",
    ),
    Route(
        "GET",
        DEVICE,
        get_installation,
        "device",
        "Show this installation",
        response=InstallationOut,
        errors=_D,
        tag="device",
    ),
    Route(
        "PATCH",
        DEVICE,
        patch_installation,
        "device",
        "Update token, device properties, push_enabled or tags",
        body=InstallationPatch,
        response=InstallationOut,
        errors=(*_D, 409),
        tag="device",
    ),
    Route(
        "DELETE",
        DEVICE,
        delete_installation,
        "device",
        "Delete this installation (app uninstalled, push off for good)",
        status=204,
        errors=_D,
        tag="device",
    ),
    Route(
        "PUT",
        DEVICE + "/user",
        personalize,
        "device",
        "Personalize: attach a user (identity_token needed when the app verifies identities)",
        body=Personalize,
        response=InstallationOut,
        errors=(*_D, 403, 409),
        tag="device",
    ),
    Route(
        "DELETE",
        DEVICE + "/user",
        depersonalize,
        "device",
        "Depersonalize: make the installation anonymous",
        response=InstallationOut,
        errors=_D,
        tag="device",
    ),
    Route(
        "PUT",
        DEVICE + "/primary",
        primary,
        "device",
        "Mark or unmark as the user's primary installation",
        body=Primary,
        response=InstallationOut,
        errors=(*_D, 409),
        tag="device",
    ),
    Route(
        "POST",
        DEVICE + "/events",
        report_events,
        "device",
        "Report interactions (push.delivered, push.opened, push.dismissed, session.start, "
        "custom); at most 100",
        body=Events,
        response=EventsAccepted,
        status=202,
        errors=_D,
        tag="device",
    ),
    Route(
        "GET",
        SERVER,
        get_installation,
        "server",
        "Show an installation of the app",
        response=InstallationOut,
        errors=_S,
        tag="server",
    ),
    Route(
        "PUT",
        SERVER + "/user",
        personalize,
        "server",
        "Personalize an installation (no identity proof needed)",
        body=Personalize,
        response=InstallationOut,
        errors=(*_S, 409),
        tag="server",
    ),
    Route(
        "DELETE",
        SERVER + "/user",
        depersonalize,
        "server",
        "Depersonalize an installation",
        response=InstallationOut,
        errors=_S,
        tag="server",
    ),
    Route(
        "PUT",
        SERVER + "/primary",
        primary,
        "server",
        "Mark or unmark an installation as its user's primary",
        body=Primary,
        response=InstallationOut,
        errors=(*_S, 409),
        tag="server",
    ),
]

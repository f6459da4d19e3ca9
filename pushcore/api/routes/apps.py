"""Admin routes: apps, their provider credentials and their server keys."""

from __future__ import annotations

from typing import Any

import msgspec

from pushcore.api import auth
from pushcore.api.errors import invalid, not_found
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.schemas import (
    AppCreate,
    AppCreateBase,
    AppCreated,
    AppList,
    AppOut,
    AppPatch,
    AppPatchBase,
    KeyCreated,
    KeyList,
    KeyOut,
    Quota,
)
from pushcore.api.state import APPS, POOL, SERVER_KEYS, SETTINGS
from pushcore.config import Settings
from pushcore.db import apps as queries
from pushcore.db.pool import Record
from pushcore.fanout import throttle
from pushcore.providers import registry
from pushcore.providers.errors import CredentialsError


def _checked(key: str, value: registry.Credentials | None) -> Any:
    """Validate credentials (loading every key) and return their storable form."""
    if value is None:
        return None
    try:
        value.validate()
    except CredentialsError as exc:
        raise invalid(f"{key}.{exc.field}", exc.message) from None
    return msgspec.to_builtins(value)


def _given_credentials(body: AppCreateBase | AppPatchBase) -> dict[str, Any]:
    """{platform: storable credentials, or None to remove} for every provider block the
    body gives (absent ones are left out)."""
    given: dict[str, Any] = {}
    for spec in registry.PLATFORMS:
        value = getattr(body, spec.key)
        if value is not msgspec.UNSET:
            given[spec.name] = _checked(spec.key, value)
    return given


def _given_quotas(body: AppPatchBase, settings: Settings) -> dict[str, tuple[int, float] | None]:
    """{platform: (per_minute, spacing), or None to remove} for every provider the body's
    ``quotas`` names; ``quotas: null`` removes them all."""
    quotas: Any = body.quotas
    if quotas is msgspec.UNSET:
        return {}
    given: dict[str, tuple[int, float] | None] = {}
    for spec in registry.PLATFORMS:
        value = None if quotas is None else getattr(quotas, spec.key)
        if value is msgspec.UNSET:
            continue
        if value is None:
            given[spec.name] = None
            continue
        batch = throttle.batch_size(
            value.per_minute, batch_seconds=settings.throttle_batch_seconds, cap=settings.batch_size
        )
        spacing = throttle.spacing(value.per_minute, batch, settings.throttle_late_seconds)
        given[spec.name] = (value.per_minute, spacing)
    return given


def app_out(row: Record) -> dict[str, Any]:
    stored: dict[str, Any] = row["credentials"]
    shown = {
        spec.key: msgspec.convert(stored[spec.name], spec.credentials).public()
        if spec.name in stored
        else None
        for spec in registry.PLATFORMS
    }
    return {
        "app_code": row["code"],
        "name": row["name"],
        "identity_verification": row["identity_verification"],
        **shown,
        "quotas": {
            spec.key: Quota(per_minute=row["quotas"][spec.name])
            for spec in registry.PLATFORMS
            if spec.name in row["quotas"]
        },
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def create_app(call: Call) -> Reply:
    body: AppCreateBase = call.body
    server_key = auth.new_secret(auth.SERVER_KEY_PREFIX)
    identity_secret = auth.new_secret(auth.IDENTITY_SECRET_PREFIX)
    credentials = {p: v for p, v in _given_credentials(body).items() if v is not None}
    row = await queries.create_app(
        call.request.app[POOL],
        code=auth.new_public_id("app_"),
        name=body.name,
        identity_verification=body.identity_verification,
        identity_secret=identity_secret,
        credentials=credentials,
        key_id=auth.new_public_id("key_"),
        key_hash=auth.digest(server_key),
    )
    shown_once = {
        "key_id": row["key_id"],
        "server_key": server_key,
        "identity_secret": identity_secret,
    }
    created = AppCreated(**app_out(row), **shown_once)
    return Reply(201, created)


async def list_apps(call: Call) -> Reply:
    rows = await queries.list_apps(call.request.app[POOL])
    return Reply(200, AppList(apps=[AppOut(**app_out(r)) for r in rows]))


async def get_app(call: Call) -> Reply:
    row = await queries.get_app(call.request.app[POOL], call.param("app_code"))
    if row is None:
        raise not_found("app")
    return Reply(200, AppOut(**app_out(row)))


async def patch_app(call: Call) -> Reply:
    body: AppPatchBase = call.body
    changes: dict[str, Any] = {}
    if body.name is not msgspec.UNSET:
        changes["name"] = body.name
    if body.identity_verification is not msgspec.UNSET:
        changes["identity_verification"] = body.identity_verification
    row = await queries.patch_app(
        call.request.app[POOL],
        call.param("app_code"),
        changes,
        _given_credentials(body),
        _given_quotas(body, call.request.app[SETTINGS]),
    )
    if row is None:
        raise not_found("app")
    call.request.app[APPS].clear()  # this process sends with the new credentials at once
    return Reply(200, AppOut(**app_out(row)))


async def create_key(call: Call) -> Reply:
    server_key = auth.new_secret(auth.SERVER_KEY_PREFIX)
    row = await queries.create_key(
        call.request.app[POOL],
        call.param("app_code"),
        auth.new_public_id("key_"),
        auth.digest(server_key),
    )
    if row is None:
        raise not_found("app")
    return Reply(
        201, KeyCreated(key_id=row["key_id"], server_key=server_key, created_at=row["created_at"])
    )


async def list_keys(call: Call) -> Reply:
    pool = call.request.app[POOL]
    code = call.param("app_code")
    rows = await queries.list_keys(pool, code)
    if not rows and await queries.get_app(pool, code) is None:
        raise not_found("app")
    keys = [
        KeyOut(key_id=r["key_id"], created_at=r["created_at"], revoked_at=r["revoked_at"])
        for r in rows
    ]
    return Reply(200, KeyList(keys=keys))


async def revoke_key(call: Call) -> Reply:
    found = await queries.revoke_key(
        call.request.app[POOL], call.param("app_code"), call.param("key_id")
    )
    if not found:
        raise not_found("key")
    call.request.app[SERVER_KEYS].clear()
    return Reply(204)


APP = "/v1/apps/{app_code}"
ROUTES = [
    Route(
        "POST",
        "/v1/apps",
        create_app,
        "admin",
        "Create an app (returns its first server key and its identity secret, once)",
        body=AppCreate,
        response=AppCreated,
        status=201,
        errors=(401, 413, 422),
        tag="apps",
    ),
    Route(
        "GET",
        "/v1/apps",
        list_apps,
        "admin",
        "List apps",
        response=AppList,
        errors=(401,),
        tag="apps",
    ),
    Route(
        "GET",
        APP,
        get_app,
        "admin_or_server",
        "Show an app (credentials only by their public parts)",
        response=AppOut,
        errors=(401, 404),
        tag="apps",
    ),
    Route(
        "PATCH",
        APP,
        patch_app,
        "admin",
        "Change an app's name, credentials, quotas or identity verification",
        body=AppPatch,
        response=AppOut,
        errors=(401, 404, 413, 422),
        tag="apps",
    ),
    Route(
        "GET",
        APP + "/keys",
        list_keys,
        "admin",
        "List an app's server keys",
        response=KeyList,
        errors=(401, 404),
        tag="apps",
    ),
    Route(
        "POST",
        APP + "/keys",
        create_key,
        "admin",
        "Create a server key (shown once)",
        response=KeyCreated,
        status=201,
        errors=(401, 404),
        tag="apps",
    ),
    Route(
        "DELETE",
        APP + "/keys/{key_id}",
        revoke_key,
        "admin",
        "Revoke a server key",
        status=204,
        errors=(401, 404),
        tag="apps",
    ),
]

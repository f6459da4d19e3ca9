"""Server-side user routes: lookup with installations, mapping by email/phone, edit, erase."""

from __future__ import annotations

from typing import Any

import msgspec

from pushcore.api.errors import ApiError, not_found
from pushcore.api.routing import Call, Query, Reply, Route
from pushcore.api.schemas import InstallationOut, UserList, UserOut, UserPatch
from pushcore.api.state import POOL
from pushcore.db import users as queries
from pushcore.db.pool import Record
from pushcore.fields import Email, Msisdn


def user_out(row: Record) -> UserOut:
    return UserOut(
        external_user_id=row["external_id"],
        email=row["email"],
        msisdn=row["msisdn"],
        attributes=row["attributes"],
        tags=row["tags"],
        primary_installation_id=row["primary_public_id"],
        # built by json_agg in SQL: timestamps arrive as strings, hence strict=False
        installations=msgspec.convert(
            row["installations"], type=list[InstallationOut], strict=False
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_user(call: Call) -> Reply:
    row = await queries.get(
        call.request.app[POOL], call.server_app().id, call.param("external_user_id")
    )
    if row is None:
        raise not_found("user")
    return Reply(200, user_out(row))


async def find_users(call: Call) -> Reply:
    email: str | None = call.query["email"]
    msisdn: str | None = call.query["msisdn"]
    if (email is None) == (msisdn is None):
        raise ApiError(400, "bad_query", "give exactly one of ?email= or ?msisdn=", "email")
    rows = await queries.find(
        call.request.app[POOL], call.server_app().id, email=email, msisdn=msisdn
    )
    return Reply(200, UserList(users=[user_out(r) for r in rows]))


async def patch_user(call: Call) -> Reply:
    body: UserPatch = call.body
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("email", "msisdn", "attributes", "tags")
        if getattr(body, name) is not msgspec.UNSET
    }
    row = await queries.patch(
        call.request.app[POOL], call.server_app().id, call.param("external_user_id"), changes
    )
    if row is None:
        raise not_found("user")
    return Reply(200, user_out(row))


async def erase_user(call: Call) -> Reply:
    if not await queries.erase(
        call.request.app[POOL], call.server_app().id, call.param("external_user_id")
    ):
        raise not_found("user")
    return Reply(204)


USER = "/v1/apps/{app_code}/users/{external_user_id}"
ROUTES = [
    Route(
        "GET",
        "/v1/apps/{app_code}/users",
        find_users,
        "server",
        "Find users by email (case-insensitive) or phone number (E.164)",
        response=UserList,
        errors=(400, 401, 404, 422),
        tag="server",
        query=(
            Query("email", Email, "an email address (compared case-insensitively)"),
            Query("msisdn", Msisdn, "a phone number in E.164 form"),
        ),
        description="Give exactly one of `email` and `msisdn`: neither or both is a 400 "
        "(`bad_query`); a malformed value is a 422 naming the parameter.",
    ),
    Route(
        "GET",
        USER,
        get_user,
        "server",
        "Show a user with its installations",
        response=UserOut,
        errors=(401, 404),
        tag="server",
    ),
    Route(
        "PATCH",
        USER,
        patch_user,
        "server",
        "Change a user's email, phone, attributes or tags",
        body=UserPatch,
        response=UserOut,
        errors=(401, 404, 413, 422),
        tag="server",
    ),
    Route(
        "DELETE",
        USER,
        erase_user,
        "server",
        "Erase a user's personal data; its installations become anonymous",
        status=204,
        errors=(401, 404),
        tag="server",
    ),
]

"""Queries on users: lookup with their installations, mapping by email/phone, edit, erase."""

from __future__ import annotations

from typing import Any

from pushcore.db.pool import Pool, Record

# A user with its installations (tokens only by their last 8 characters), in one statement.
_USER = """
    SELECT u.external_id, u.email, u.msisdn, u.attributes, u.tags, u.created_at, u.updated_at,
        (SELECT p.public_id FROM installations p WHERE p.id = u.primary_installation_id)
            AS primary_public_id,
        coalesce((
            SELECT json_agg(json_build_object(
                'installation_id', i.public_id, 'platform', i.platform,
                'token_tail', right(i.token, 8), 'push_enabled', i.push_enabled,
                'tags', i.tags, 'device', i.device, 'external_user_id', u.external_id,
                'primary', i.id = u.primary_installation_id IS TRUE,
                'token_updated_at', i.token_updated_at, 'created_at', i.created_at,
                'updated_at', i.updated_at) ORDER BY i.id)
            FROM installations i WHERE i.user_id = u.id
        ), '[]') AS installations
    FROM users u
"""

MAX_MATCHES = 100


async def get(pool: Pool, app_id: int, external_id: str) -> Record | None:
    row: Record | None = await pool.fetchrow(
        _USER + "WHERE u.app_id = $1 AND u.external_id = $2", app_id, external_id
    )
    return row


async def find(
    pool: Pool, app_id: int, *, email: str | None = None, msisdn: str | None = None
) -> list[Record]:
    """Users of the app with this email (case-insensitive) or phone number."""
    value: str | None
    if email is not None:
        condition, value = "lower(u.email) = lower($2) AND u.email IS NOT NULL", email
    else:
        condition, value = "u.msisdn = $2 AND u.msisdn IS NOT NULL", msisdn
    rows: list[Record] = await pool.fetch(
        _USER + f"WHERE u.app_id = $1 AND {condition} ORDER BY u.id LIMIT {MAX_MATCHES}",
        app_id,
        value,
    )
    return rows


# Columns a PATCH may set and how; the statement is assembled from this fixed table only.
_PATCH = {
    "email": "{p}",
    "msisdn": "{p}",
    "attributes": "jsonb_strip_nulls(u.attributes || {p}::jsonb)",
    "tags": "{p}::text[]",
}


async def patch(
    pool: Pool, app_id: int, external_id: str, changes: dict[str, Any]
) -> Record | None:
    args: list[Any] = [app_id, external_id]
    exprs: dict[str, str] = {}
    for column, template in _PATCH.items():
        if column in changes:
            args.append(changes[column])
            exprs[column] = template.format(p=f"${len(args)}")
    if exprs:
        sets = ", ".join(f"{col} = {expr}" for col, expr in exprs.items())
        old = ", ".join(f"u.{col}" for col in exprs)
        new = ", ".join(exprs.values())
        found = await pool.fetchrow(
            f"""
            UPDATE users u SET {sets},
                updated_at = CASE WHEN ({old}, 0) IS DISTINCT FROM ({new}, 0)
                                  THEN now() ELSE u.updated_at END
            WHERE u.app_id = $1 AND u.external_id = $2
            RETURNING u.id
            """,
            *args,
        )
        if found is None:
            return None
    return await get(pool, app_id, external_id)


async def erase(pool: Pool, app_id: int, external_id: str) -> bool:
    """Delete the user's personal data; its installations become anonymous (the foreign key
    sets their user_id to NULL in the same statement)."""
    row = await pool.fetchrow(
        "DELETE FROM users WHERE app_id = $1 AND external_id = $2 RETURNING id",
        app_id,
        external_id,
    )
    return row is not None

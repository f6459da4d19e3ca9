"""Queries on apps and their server keys."""

from __future__ import annotations

from typing import Any

from pushcore.db.pool import Pool, Record

APP_COLUMNS = (
    "a.code, a.name, a.identity_verification, a.apns, a.fcm, a.webpush, a.created_at, a.updated_at"
)
# Columns PATCH may change; the statement is assembled from this fixed list only.
PATCHABLE = ("name", "identity_verification", "apns", "fcm", "webpush")


async def create_app(
    pool: Pool,
    *,
    code: str,
    name: str,
    identity_verification: bool,
    identity_secret: str,
    apns: Any,
    fcm: Any,
    webpush: Any,
    key_id: str,
    key_hash: bytes,
) -> Record:
    """Insert the app and its first server key in one statement."""
    row = await pool.fetchrow(
        f"""
        WITH a AS (
            INSERT INTO apps (code, name, identity_verification, identity_secret,
                              apns, fcm, webpush)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING *
        ), k AS (
            INSERT INTO api_keys (key_id, app_id, key_hash)
            SELECT $8, a.id, $9 FROM a
            RETURNING key_id
        )
        SELECT {APP_COLUMNS}, k.key_id FROM a, k
        """,
        code,
        name,
        identity_verification,
        identity_secret,
        apns,
        fcm,
        webpush,
        key_id,
        key_hash,
    )
    assert row is not None  # both inserts return exactly one row or raise
    return row


async def get_app(pool: Pool, code: str) -> Record | None:
    row: Record | None = await pool.fetchrow(
        f"SELECT a.id, {APP_COLUMNS} FROM apps a WHERE a.code = $1", code
    )
    return row


async def list_apps(pool: Pool, *, limit: int = 1000) -> list[Record]:
    rows: list[Record] = await pool.fetch(
        f"SELECT {APP_COLUMNS} FROM apps a ORDER BY a.id LIMIT $1", limit
    )
    return rows


async def patch_app(pool: Pool, code: str, changes: dict[str, Any]) -> Record | None:
    """Set the given columns (names from :data:`PATCHABLE`); bump updated_at when any value
    differs."""
    assigns = []
    args: list[Any] = [code]
    for column in PATCHABLE:
        if column in changes:
            args.append(changes[column])
            assigns.append((column, f"${len(args)}"))
    if not assigns:
        return await get_app(pool, code)
    sets = ", ".join(f"{col} = {param}" for col, param in assigns)
    old = ", ".join(f"a.{col}" for col, _ in assigns)
    new = ", ".join(param for _, param in assigns)
    row: Record | None = await pool.fetchrow(
        f"""
        UPDATE apps a SET {sets},
            updated_at = CASE WHEN ({old}, 0) IS DISTINCT FROM ({new}, 0)
                              THEN now() ELSE a.updated_at END
        WHERE a.code = $1
        RETURNING a.id, {APP_COLUMNS}
        """,
        *args,
    )
    return row


async def create_key(pool: Pool, code: str, key_id: str, key_hash: bytes) -> Record | None:
    row: Record | None = await pool.fetchrow(
        """
        INSERT INTO api_keys (key_id, app_id, key_hash)
        SELECT $2, a.id, $3 FROM apps a WHERE a.code = $1
        RETURNING key_id, created_at
        """,
        code,
        key_id,
        key_hash,
    )
    return row


async def list_keys(pool: Pool, code: str) -> list[Record]:
    rows: list[Record] = await pool.fetch(
        """
        SELECT k.key_id, k.created_at, k.revoked_at
        FROM api_keys k JOIN apps a ON a.id = k.app_id
        WHERE a.code = $1 ORDER BY k.id
        """,
        code,
    )
    return rows


async def revoke_key(pool: Pool, code: str, key_id: str) -> bool:
    """Revoke (idempotently); False when the app has no such key."""
    row = await pool.fetchrow(
        """
        UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, now())
        FROM apps a
        WHERE a.id = k.app_id AND a.code = $1 AND k.key_id = $2
        RETURNING k.id
        """,
        code,
        key_id,
    )
    return row is not None


async def app_for_key(pool: Pool, key_hash: bytes) -> Record | None:
    row: Record | None = await pool.fetchrow(
        """
        SELECT a.id, a.code FROM api_keys k JOIN apps a ON a.id = k.app_id
        WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        """,
        key_hash,
    )
    return row

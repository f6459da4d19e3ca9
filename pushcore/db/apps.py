"""Queries on apps and their server keys."""

from __future__ import annotations

from typing import Any

from pushcore.db import limits
from pushcore.db.pool import Connection, Pool, Record

# ``credentials``: {platform: stored credentials JSON} of the app's app_credentials rows
APP_COLUMNS = (
    """a.code, a.name, a.identity_verification, a.created_at, a.updated_at,
    (SELECT coalesce(jsonb_object_agg(c.platform, c.credentials), '{}')
     FROM app_credentials c WHERE c.app_id = a.id) AS credentials,
    """
    + limits.QUOTAS_COLUMN
)
# Columns of apps PATCH may change; the statement is assembled from this fixed list only.
PATCHABLE = ("name", "identity_verification")


async def create_app(
    pool: Pool,
    *,
    code: str,
    name: str,
    identity_verification: bool,
    identity_secret: str,
    credentials: dict[str, Any],
    key_id: str,
    key_hash: bytes,
) -> Record:
    """Insert the app, its credentials ({platform: JSON}) and its first server key in one
    transaction."""
    async with pool.acquire() as conn, conn.transaction():
        app_id = await conn.fetchval(
            """
            INSERT INTO apps (code, name, identity_verification, identity_secret)
            VALUES ($1, $2, $3, $4) RETURNING id
            """,
            code,
            name,
            identity_verification,
            identity_secret,
        )
        await _set_credentials(conn, app_id, credentials)
        await conn.execute(
            "INSERT INTO api_keys (key_id, app_id, key_hash) VALUES ($1, $2, $3)",
            key_id,
            app_id,
            key_hash,
        )
        row = await conn.fetchrow(
            f"SELECT a.id, {APP_COLUMNS}, $2::text AS key_id FROM apps a WHERE a.id = $1",
            app_id,
            key_id,
        )
    assert row is not None  # inserted above, in this transaction
    return row


async def _set_credentials(conn: Connection, app_id: int, changes: dict[str, Any]) -> bool:
    """Store ({platform: JSON}) or remove ({platform: None}) credentials; True when any
    stored value changed (an unchanged value keeps its version)."""
    stored = {p: v for p, v in changes.items() if v is not None}
    removed = [p for p, v in changes.items() if v is None]
    changed = 0
    if stored:
        changed += len(
            await conn.fetch(
                """
                INSERT INTO app_credentials AS c (app_id, platform, credentials)
                SELECT $1, x.key, x.value FROM jsonb_each($2::jsonb) x
                ON CONFLICT (app_id, platform) DO UPDATE
                    SET credentials = EXCLUDED.credentials, updated_at = now()
                    WHERE c.credentials IS DISTINCT FROM EXCLUDED.credentials
                RETURNING c.platform
                """,
                app_id,
                stored,
            )
        )
    if removed:
        changed += len(
            await conn.fetch(
                """
                DELETE FROM app_credentials
                WHERE app_id = $1 AND platform = ANY($2::text[]) RETURNING platform
                """,
                app_id,
                removed,
            )
        )
    return changed > 0


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


async def patch_app(
    pool: Pool,
    code: str,
    changes: dict[str, Any],
    credentials: dict[str, Any],
    quotas: dict[str, tuple[int, float] | None] | None = None,
) -> Record | None:
    """Set the given columns (names from :data:`PATCHABLE`), credentials ({platform:
    JSON, or None to remove}) and quotas ({platform: (per_minute, spacing), or None to
    remove}); bump updated_at when any value differs."""
    assigns = []
    args: list[Any] = [code]
    for column in PATCHABLE:
        if column in changes:
            args.append(changes[column])
            assigns.append((column, f"${len(args)}"))
    async with pool.acquire() as conn, conn.transaction():
        app_id = await conn.fetchval("SELECT id FROM apps WHERE code = $1 FOR UPDATE", code)
        if app_id is None:
            return None
        touched = await _set_credentials(conn, app_id, credentials) if credentials else False
        if quotas and await limits.set_quotas(conn, app_id, quotas):
            touched = True
        if assigns or touched:
            sets = "".join(f"{col} = {param}, " for col, param in assigns)
            old = "".join(f"a.{col}, " for col, _ in assigns)
            new = "".join(f"{param}, " for _, param in assigns)
            args.append(touched)
            await conn.execute(
                f"""
                UPDATE apps a SET {sets}
                    updated_at = CASE WHEN ${len(args)} OR ({old} 0) IS DISTINCT FROM ({new} 0)
                                      THEN now() ELSE a.updated_at END
                WHERE a.code = $1
                """,
                *args,
            )
        row: Record | None = await conn.fetchrow(
            f"SELECT a.id, {APP_COLUMNS} FROM apps a WHERE a.id = $1", app_id
        )
    return row


async def credentials_of(pool: Pool, platform: str) -> list[Record]:
    """(code, credentials) of every app with credentials for ``platform``."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT a.code, c.credentials FROM app_credentials c JOIN apps a ON a.id = c.app_id
        WHERE c.platform = $1 ORDER BY a.id
        """,
        platform,
    )
    return rows


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
    """The live (not revoked) server key with this digest: its key_id and its app."""
    row: Record | None = await pool.fetchrow(
        """
        SELECT k.key_id, a.id, a.code FROM api_keys k JOIN apps a ON a.id = k.app_id
        WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        """,
        key_hash,
    )
    return row

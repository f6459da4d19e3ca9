"""Queries on installations: registration, device-side updates, personalization, primary.

Device-side statements carry the installation secret's digest in their WHERE clause, so a
wrong secret and an unknown installation look the same (no row) and cost no extra query.
Server-side statements carry the app id instead: an installation of another app is simply
not found.  ``Scope`` holds whichever of the two applies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pushcore.db.maintenance import COUNT_REMOVED
from pushcore.db.pool import Pool, Record

# What the API shows of an installation; the token only by its last 8 characters.
# Used as "SELECT {COLUMNS} FROM <installations> i LEFT JOIN users u ON u.id = i.user_id".
COLUMNS = """
    i.public_id, i.platform, right(i.token, 8) AS token_tail, i.push_enabled, i.tags,
    i.device, i.token_updated_at, i.created_at, i.updated_at, u.external_id,
    (u.primary_installation_id IS NOT DISTINCT FROM i.id AND u.id IS NOT NULL) AS is_primary
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which installation a call may touch: by its secret (device) or by its app (server)."""

    public_id: uuid.UUID
    secret_hash: bytes | None = None
    app_id: int | None = None

    def where(self, first_param: int) -> tuple[str, list[Any]]:
        """SQL condition on alias ``i`` and its arguments, numbered from ``first_param``."""
        if self.secret_hash is not None:
            return (
                f"i.public_id = ${first_param} AND i.secret_hash = ${first_param + 1}",
                [self.public_id, self.secret_hash],
            )
        assert self.app_id is not None
        return (
            f"i.public_id = ${first_param} AND i.app_id = ${first_param + 1}",
            [self.public_id, self.app_id],
        )


async def register(
    pool: Pool,
    *,
    app_code: str,
    platform: str,
    token: str,
    p256dh: str | None,
    auth: str | None,
    secret_hash: bytes,
    push_enabled: bool | None,
    tags: list[str] | None,
    device: dict[str, Any] | None,
) -> Record | None:
    """Insert, or update the installation that already holds this token in this app (the
    same device registering again: it gets a fresh secret, its user link stays).  None when
    the app does not exist.  ``created`` tells which happened."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH i AS (
            INSERT INTO installations AS i
                (app_id, platform, token, p256dh, auth, secret_hash, push_enabled, tags, device)
            SELECT a.id, $2::text, $3::text, $4::text, $5::text, $6::bytea,
                   coalesce($7::boolean, true), coalesce($8::text[], '{{}}'),
                   coalesce($9::jsonb, '{{}}')
            FROM apps a WHERE a.code = $1
            ON CONFLICT (app_id, platform, token_digest) DO UPDATE SET
                p256dh = EXCLUDED.p256dh,
                auth = EXCLUDED.auth,
                secret_hash = EXCLUDED.secret_hash,
                push_enabled = coalesce($7::boolean, i.push_enabled),
                tags = coalesce($8::text[], i.tags),
                device = jsonb_strip_nulls(i.device || coalesce($9::jsonb, '{{}}')),
                token_updated_at = now(),
                updated_at = now()
            RETURNING i.*, (xmax = 0) AS created
        )
        SELECT {COLUMNS}, i.created FROM i LEFT JOIN users u ON u.id = i.user_id
        """,
        app_code,
        platform,
        token,
        p256dh,
        auth,
        secret_hash,
        push_enabled,
        tags,
        device,
    )
    return row


async def get(pool: Pool, scope: Scope) -> Record | None:
    where, args = scope.where(1)
    row: Record | None = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM installations i LEFT JOIN users u ON u.id = i.user_id "
        f"WHERE {where}",
        *args,
    )
    return row


@dataclass(frozen=True, slots=True)
class TokenChange:
    """A new push token for an installation whose platform the caller does not know yet:
    ``tokens`` maps each platform the token is valid for to its stored form (a platform
    left out: not valid there); ``p256dh`` and ``auth`` come with a Web Push
    subscription."""

    tokens: dict[str, str]
    p256dh: str | None = None
    auth: str | None = None


async def patch(
    pool: Pool,
    scope: Scope,
    *,
    token: TokenChange | None,
    device: dict[str, Any] | None,
    push_enabled: bool | None,
    tags: list[str] | None,
) -> Record | None:
    """Apply a device-side update in one statement.  A token change applies only when the
    new token is valid for the installation's platform; a new token refreshes the token's
    age.  ``updated_at`` moves only when some value actually changed.  None when nothing
    matched (unknown installation, wrong secret or a token of the wrong platform: the
    caller tells them apart with :func:`diagnose`)."""
    where, args = scope.where(1)
    args += [
        token is not None,
        list(token.tokens) if token else None,
        list(token.tokens.values()) if token else None,
        token.p256dh if token else None,
        token.auth if token else None,
        device,
        push_enabled,
        tags,
    ]
    # the candidate of the installation's own platform (NULL: the token does not fit it)
    new_token = "(SELECT t.token FROM unnest($4::text[], $5::text[]) t(platform, token) "
    new_token += "WHERE t.platform = i.platform)"
    new = {
        "token": f"CASE WHEN $3 THEN {new_token} ELSE i.token END",
        # a push token change clears nothing: those platforms have no keys
        "p256dh": "CASE WHEN $3 AND $6::text IS NOT NULL THEN $6 ELSE i.p256dh END",
        "auth": "CASE WHEN $3 AND $7::text IS NOT NULL THEN $7 ELSE i.auth END",
        "device": "CASE WHEN $8::jsonb IS NULL THEN i.device "
        "ELSE jsonb_strip_nulls(i.device || $8::jsonb) END",
        "push_enabled": "coalesce($9, i.push_enabled)",
        "tags": "coalesce($10::text[], i.tags)",
    }
    sets = ",\n".join(f"{col} = {expr}" for col, expr in new.items())
    old_row = ", ".join(f"i.{col}" for col in new)
    new_row = ", ".join(new.values())
    row: Record | None = await pool.fetchrow(
        f"""
        WITH i AS (
            UPDATE installations i SET {sets},
                token_updated_at = CASE WHEN $3 AND {new_token} IS DISTINCT FROM i.token
                                        THEN now() ELSE i.token_updated_at END,
                updated_at = CASE WHEN ({old_row}) IS DISTINCT FROM ({new_row})
                                  THEN now() ELSE i.updated_at END
            WHERE {where} AND (NOT $3 OR {new_token} IS NOT NULL)
            RETURNING i.*
        )
        SELECT {COLUMNS} FROM i LEFT JOIN users u ON u.id = i.user_id
        """,
        *args,
    )
    return row


async def diagnose(pool: Pool, scope: Scope) -> str | None:
    """The platform of the installation in scope, or None when it is not in scope.  Used only
    on error paths, to tell a wrong secret from a malformed token."""
    where, args = scope.where(1)
    platform: str | None = await pool.fetchval(
        f"SELECT i.platform FROM installations i WHERE {where}", *args
    )
    return platform


async def delete(pool: Pool, scope: Scope) -> bool:
    """Delete the installation (an uninstall: counted in registration_removals)."""
    where, args = scope.where(1)
    row = await pool.fetchrow(
        f"""
        WITH gone AS (DELETE FROM installations i WHERE {where} RETURNING i.id, i.app_id),
        counted AS ({COUNT_REMOVED.format(reason="uninstalled")})
        SELECT id FROM gone
        """,
        *args,
    )
    return row is not None


@dataclass(frozen=True, slots=True)
class Personalized:
    """What :func:`personalize` did: ``outcome`` is ``ok`` (``row`` is the installation as
    now attached), ``not_found`` (not in scope), ``conflict`` (attached to another user and
    not forced) or ``identity_needed`` (a device-side call to an app that verifies
    identities: check the token against ``identity_secret``, then call again with
    ``identity_checked``)."""

    outcome: str
    row: Record | None = None
    identity_secret: str | None = None


async def personalize(
    pool: Pool,
    scope: Scope,
    *,
    external_id: str,
    email: str | None,
    msisdn: str | None,
    attributes: dict[str, Any] | None,
    force: bool,
    identity_checked: bool,
) -> Personalized:
    """Attach the installation to the user (upserted) under its row lock, in one round trip:
    the SQL function ``personalize_installation`` (migration 0005) locks the installation,
    reads its current user with a fresh snapshot, and refuses or attaches.  Two concurrent
    calls for one installation run one after the other, and the second sees the first's
    user.  An installation moving away from a user whose primary it was leaves that user
    without a primary."""
    row = await pool.fetchrow(
        "SELECT * FROM personalize_installation($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        scope.public_id,
        scope.secret_hash,
        scope.app_id,
        external_id,
        email,
        msisdn,
        attributes,
        force,
        identity_checked,
    )
    assert row is not None  # the function always answers one row
    outcome: str = row["outcome"]
    return Personalized(outcome, row if outcome == "ok" else None, row["identity_secret"])


async def detach_user(pool: Pool, scope: Scope) -> Record | None:
    """Make the installation anonymous (idempotent); it stops being its user's primary."""
    where, args = scope.where(1)
    row: Record | None = await pool.fetchrow(
        f"""
        WITH cur AS (
            SELECT i.id, i.user_id FROM installations i WHERE {where} FOR UPDATE
        ), i AS (
            UPDATE installations i
            SET user_id = NULL,
                updated_at = CASE WHEN i.user_id IS NULL THEN i.updated_at ELSE now() END
            FROM cur WHERE i.id = cur.id
            RETURNING i.*
        ), unprimary AS (
            UPDATE users u SET primary_installation_id = NULL, updated_at = now()
            FROM cur WHERE u.id = cur.user_id AND u.primary_installation_id = cur.id
        )
        SELECT {COLUMNS} FROM i LEFT JOIN users u ON false
        """,
        *args,
    )
    return row


async def set_primary(pool: Pool, scope: Scope, primary: bool) -> tuple[bool, Record | None]:
    """Make the installation its user's primary (or stop it being one).  Returns
    (found, row); row is None when the installation has no user.  The installation row is
    locked so that a concurrent personalize cannot move it between the check and the
    update."""
    where, args = scope.where(1)
    found = await pool.fetchrow(
        f"""
        WITH cur AS (
            SELECT i.id, i.user_id FROM installations i WHERE {where} FOR UPDATE
        ), u AS (
            UPDATE users u
            SET primary_installation_id = CASE WHEN $3 THEN cur.id ELSE NULL END,
                updated_at = now()
            FROM cur
            WHERE u.id = cur.user_id AND ($3 OR u.primary_installation_id = cur.id)
        )
        SELECT cur.id, cur.user_id FROM cur
        """,
        *args,
        primary,
    )
    if found is None:
        return False, None
    if found["user_id"] is None:
        return True, None
    return True, await get(pool, scope)

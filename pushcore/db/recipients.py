"""What per-recipient content needs of each recipient, as one JSON object per installation:
``{"installation": {"platform", "device", "tags"}, "user": {"external_id", "email",
"attributes", "tags"} | null}``.  The batch claim loads it with the tokens, in the same
statement (``pushcore.db.batches``), and adds ``"recipient": {"data"} | null`` (what a
``recipients`` send gave for the installation's user); the preview route loads it for one
user or installation.  Phone numbers are not exposed to templates.
"""

from __future__ import annotations

import uuid

from pushcore.db.pool import Pool, Record

# ``i``: installations, ``u``: users LEFT JOINed on i.user_id
RECIPIENT_JSON = """jsonb_build_object(
    'installation', jsonb_build_object(
        'platform', i.platform, 'device', i.device, 'tags', to_jsonb(i.tags)),
    'user', CASE WHEN u.id IS NULL THEN NULL ELSE jsonb_build_object(
        'external_id', u.external_id, 'email', u.email, 'attributes', u.attributes,
        'tags', to_jsonb(u.tags)) END)"""


async def for_preview(
    pool: Pool,
    app_id: int,
    platforms: list[str],
    *,
    external_user_id: str | None = None,
    installation_id: uuid.UUID | None = None,
) -> list[Record]:
    """The enabled installations of one user (or the one installation) of the app on
    ``platforms``, oldest first, with their tokens and recipient JSON (``recipient``)."""
    rows: list[Record] = await pool.fetch(
        f"""
        SELECT i.id, i.public_id, i.platform, i.token, i.p256dh, i.auth,
               {RECIPIENT_JSON} AS recipient
        FROM installations i LEFT JOIN users u ON u.id = i.user_id
        WHERE i.app_id = $1 AND i.platform = ANY($2::text[]) AND i.push_enabled
          AND (($3::text IS NOT NULL AND u.external_id = $3 AND u.app_id = $1)
               OR ($4::uuid IS NOT NULL AND i.public_id = $4))
        ORDER BY i.id
        LIMIT 100
        """,
        app_id,
        platforms,
        external_user_id,
        installation_id,
    )
    return rows

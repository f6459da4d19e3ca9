"""What per-recipient content needs of each recipient, as one JSON object per installation:
``{"installation": {"platform", "device", "tags"}, "user": {"external_id", "email",
"attributes", "tags"} | null}``.  The batch claim loads it with the tokens, in the same
statement (``pushcore.db.batches``), and adds ``"recipient": {"data"} | null`` (what a
``recipients`` send gave for the installation's user) and, when a template reads it,
``"inbox": {"unread"}`` (users only); the preview route loads it for one user or
installation, the inbox read for the reader (``pushcore.db.inbox``).  Phone numbers are
not exposed to templates.
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


# ``inbox.unread`` of the templates: a user's unread count, capped (a badge shows "999"
# beyond it anyway, and the cap bounds the count's cost: at most UNREAD_CAP index entries
# read per recipient, whatever the user holds).
UNREAD_CAP = 999


def unread_json(user: str, message: str, itself: str) -> str:
    """A SQL expression: ``{"unread": n}`` for the user row aliased ``user`` (users columns
    ``id``, ``app_id``, ``created_at``), the unread messages of its inbox (the rules of
    ``_VISIBLE`` in :mod:`pushcore.db.inbox`), capped at :data:`UNREAD_CAP`.  ``message``
    is the message being rendered (a bigint expression, NULL for none) and ``itself`` (0
    or 1) what it adds: it is counted as unread once, whether or not its inbox entry is
    written yet (the planner writes the inbox after the push's batches are queued, the
    lane in the same statement: a batch may be claimed before or after), unless this user
    already saw or deleted it.  Its aliases are prefixed ``unread_``: ``message`` may name
    a column of the enclosing statement, which a shorter alias here would shadow."""
    return f"""jsonb_build_object('unread', least({UNREAD_CAP}, (
    SELECT count(*) FROM (
        SELECT 1 FROM inbox_entries unread_e
        JOIN inbox_messages unread_m ON unread_m.message_id = unread_e.message_id
        WHERE unread_e.user_id = {user}.id AND unread_e.personal
          AND NOT unread_e.deleted AND unread_e.seen_at IS NULL
          AND (unread_m.expires_at IS NULL OR unread_m.expires_at > now())
          AND unread_m.message_id IS DISTINCT FROM {message}
        UNION ALL
        SELECT 1 FROM inbox_messages unread_m
        LEFT JOIN inbox_entries unread_s
            ON unread_s.user_id = {user}.id AND unread_s.message_id = unread_m.message_id
        WHERE unread_m.app_id = {user}.app_id AND unread_m.audience = 'all'
          AND unread_m.sent_at >= {user}.created_at
          AND (unread_m.expires_at IS NULL OR unread_m.expires_at > now())
          AND unread_s.seen_at IS NULL AND unread_s.deleted IS NOT TRUE
          AND unread_m.message_id IS DISTINCT FROM {message}
        LIMIT {UNREAD_CAP}) unread_n
    ) + CASE WHEN {itself} = 1 AND NOT EXISTS (
        SELECT 1 FROM inbox_entries unread_s
        WHERE unread_s.user_id = {user}.id AND unread_s.message_id = {message}
          AND (unread_s.seen_at IS NOT NULL OR unread_s.deleted)) THEN 1 ELSE 0 END))"""


async def for_preview(
    pool: Pool,
    app_id: int,
    platforms: list[str],
    *,
    external_user_id: str | None = None,
    installation_id: uuid.UUID | None = None,
    unread: int | None = None,
) -> list[Record]:
    """The enabled installations of one user (or the one installation) of the app on
    ``platforms``, oldest first, with their tokens and recipient JSON (``recipient``);
    with the user's unread count (``inbox``) when ``unread`` is given: what the previewed
    message would add to it (0 or 1)."""
    rows: list[Record] = await pool.fetch(
        f"""
        SELECT i.id, i.public_id, i.platform, i.token, i.p256dh, i.auth,
               {RECIPIENT_JSON} || CASE WHEN $5::int IS NOT NULL AND u.id IS NOT NULL
                   THEN jsonb_build_object('inbox', {unread_json("u", "NULL::bigint", "$5")})
                   ELSE '{{}}' END AS recipient
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
        unread,
    )
    return rows

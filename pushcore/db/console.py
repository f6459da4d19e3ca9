"""What the web console reads beyond the API's own queries: an app's aggregates for its
overview, tags with counts, a page of messages by status, a message's batches over time,
and the server key behind a console session.

The aggregates scan one app's installations (tens of milliseconds at 100,000): the console
caches them per process for a short while rather than running them at every page view.
Every list is bounded by a LIMIT.
"""

from __future__ import annotations

import uuid

from pushcore.db.messages import COLUMNS as MESSAGE_COLUMNS
from pushcore.db.pool import Pool, Record

MAX_TAGS = 200
REMOVAL_REASONS = ("dead", "stale", "uninstalled")
MAX_TIMELINE_POINTS = 600


async def installation_counts(pool: Pool, app_id: int, stale_days: int) -> list[Record]:
    """Per platform: live (push enabled), push disabled, going stale within 7 days (the token
    is older than the stale limit less 7 days, so the daily prune deletes it within a week)
    and personalized installations."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT i.platform,
            count(*) FILTER (WHERE i.push_enabled) AS live,
            count(*) FILTER (WHERE NOT i.push_enabled) AS disabled,
            count(*) FILTER (
                WHERE i.token_updated_at < now() - make_interval(days => greatest($2 - 7, 0))
            ) AS stale_soon,
            count(*) FILTER (WHERE i.user_id IS NOT NULL) AS personalized
        FROM installations i WHERE i.app_id = $1
        GROUP BY i.platform ORDER BY i.platform
        """,
        app_id,
        stale_days,
    )
    return rows


async def user_count(pool: Pool, app_id: int) -> int:
    value = await pool.fetchval("SELECT count(*) FROM users WHERE app_id = $1", app_id)
    return int(value or 0)


async def daily_messages(pool: Pool, app_id: int, days: int) -> list[Record]:
    """Messages created per day over the last ``days`` days with their counters (on the
    (app_id, id) index: messages are created in id order)."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT date_trunc('day', m.created_at) AS day, count(*) AS messages,
            sum(m.targeted) AS targeted, sum(m.delivered) AS delivered,
            sum(m.invalid_removed) AS invalid_removed, sum(m.failed) AS failed,
            sum(m.opened) AS opened
        FROM messages m
        WHERE m.app_id = $1 AND m.created_at > now() - make_interval(days => $2)
        GROUP BY 1 ORDER BY 1
        """,
        app_id,
        days,
    )
    return rows


async def removed_since(pool: Pool, app_id: int, hours: int) -> dict[str, int]:
    """Registrations deleted in the last ``hours`` hours by reason: ``dead`` (a provider
    said so; counted on the messages created in that time), ``stale`` and ``uninstalled``
    (registration_removals, by the hour)."""
    rows = await pool.fetch(
        """
        SELECT 'dead' AS reason, coalesce(sum(m.invalid_removed), 0) AS removed
        FROM messages m
        WHERE m.app_id = $1 AND m.created_at > now() - make_interval(hours => $2)
        UNION ALL
        SELECT r.reason, sum(r.removed) FROM registration_removals r
        WHERE r.app_id = $1 AND r.hour > now() - make_interval(hours => $2)
        GROUP BY r.reason
        """,
        app_id,
        hours,
    )
    found = {str(r["reason"]): int(r["removed"]) for r in rows}
    return {reason: found.get(reason, 0) for reason in REMOVAL_REASONS}


async def tag_counts(pool: Pool, app_id: int, limit: int = MAX_TAGS) -> list[Record]:
    """The app's installation tags with how many installations carry each, most used first."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT t.tag, count(*) AS installations
        FROM installations i, unnest(i.tags) AS t(tag)
        WHERE i.app_id = $1
        GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT $2
        """,
        app_id,
        limit,
    )
    return rows


async def messages_page(
    pool: Pool, app_id: int, *, status: str | None, before: uuid.UUID | None, limit: int
) -> list[Record]:
    """A page of the app's messages, newest first, optionally of one status; ``before``
    is the last message of the previous page."""
    rows: list[Record] = await pool.fetch(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM messages m
        WHERE m.app_id = $1 AND ($2::text IS NULL OR m.status = $2)
          AND ($3::uuid IS NULL OR m.id < (
              SELECT b.id FROM messages b WHERE b.public_id = $3 AND b.app_id = $1))
        ORDER BY m.id DESC LIMIT $4
        """,
        app_id,
        status,
        before,
        limit,
    )
    return rows


async def message_timeline(pool: Pool, app_id: int, public_id: uuid.UUID) -> list[Record]:
    """Delivered and failed per second of the message's finished batches (batch results are
    written when a batch finishes, so this is as fine as the ledger knows it)."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT date_trunc('second', b.finished_at) AS at,
            sum(b.delivered) AS delivered, sum(b.failed) AS failed
        FROM batches b JOIN messages m ON m.id = b.message_id
        WHERE m.public_id = $1 AND m.app_id = $2 AND b.finished_at IS NOT NULL
        GROUP BY 1 ORDER BY 1 LIMIT $3
        """,
        public_id,
        app_id,
        MAX_TIMELINE_POINTS,
    )
    return rows


async def message_platforms(pool: Pool, app_id: int, public_id: uuid.UUID) -> list[Record]:
    """Per platform: registrations planned, delivered, failed (first attempts' batches hold
    each registration once; retries are counted in their own batches)."""
    rows: list[Record] = await pool.fetch(
        """
        SELECT b.platform,
            sum(cardinality(b.installation_ids)) FILTER (WHERE b.attempt = 0) AS planned,
            sum(b.delivered) AS delivered, sum(b.failed) AS failed
        FROM batches b JOIN messages m ON m.id = b.message_id
        WHERE m.public_id = $1 AND m.app_id = $2
        GROUP BY b.platform ORDER BY b.platform
        """,
        public_id,
        app_id,
    )
    return rows


async def app_of_key(pool: Pool, key_id: str) -> Record | None:
    """The app of a live (not revoked) server key, by the key's public id."""
    row: Record | None = await pool.fetchrow(
        """
        SELECT a.id, a.code, a.name FROM api_keys k JOIN apps a ON a.id = k.app_id
        WHERE k.key_id = $1 AND k.revoked_at IS NULL
        """,
        key_id,
    )
    return row

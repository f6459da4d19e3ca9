"""Upkeep: deleting registrations whose token has gone stale, and inbox messages past the
retention.

A token that the app has not refreshed for ``PUSHCORE_STALE_TOKEN_DAYS`` days most likely
belongs to an uninstalled app (APNs and FCM stop accepting them, or accept them silently).
Inbox messages older than ``PUSHCORE_INBOX_RETENTION_DAYS`` leave every inbox (their users'
entries go with them, by the cascade; the message and its report stay).  Deletion runs in
chunks so that no statement holds locks on many rows for long.
"""

from __future__ import annotations

import datetime as dt

from pushcore.db.pool import Pool

CHUNK = 5_000


async def prune_stale(pool: Pool, days: int, *, chunk: int = CHUNK) -> int:
    """Delete installations whose token is older than ``days``; return how many."""
    total = 0
    while True:
        deleted = await pool.fetchval(
            """
            WITH doomed AS (
                SELECT id FROM installations
                WHERE token_updated_at < now() - make_interval(days => $1)
                ORDER BY token_updated_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM installations i USING doomed WHERE i.id = doomed.id RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            days,
            chunk,
        )
        total += int(deleted or 0)
        if not deleted or deleted < chunk:
            return total


# Messages per statement: a personal message may carry 100,000 entries that the cascade
# deletes with it.
INBOX_CHUNK = 100


async def prune_inbox(
    pool: Pool, days: int, *, now: dt.datetime | None = None, chunk: int = INBOX_CHUNK
) -> int:
    """Delete inbox messages sent more than ``days`` before ``now`` (the database's clock
    when None); return how many."""
    total = 0
    while True:
        deleted = await pool.fetchval(
            """
            WITH doomed AS (
                SELECT message_id FROM inbox_messages
                WHERE sent_at < coalesce($3::timestamptz, now()) - make_interval(days => $1)
                ORDER BY sent_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM inbox_messages x USING doomed
                WHERE x.message_id = doomed.message_id RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            days,
            chunk,
            now,
        )
        total += int(deleted or 0)
        if not deleted or deleted < chunk:
            return total

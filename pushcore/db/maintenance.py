"""Upkeep: deleting registrations whose token has gone stale, inbox messages past the
retention, and the per-recipient data of old messages.

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
# Adds the rows of ``gone`` (a CTE returning app_id) to registration_removals under a
# reason given as ``{reason}``; the hour is UTC, whatever the session's time zone.
COUNT_REMOVED = """
    INSERT INTO registration_removals AS r (app_id, hour, reason, removed)
    SELECT gone.app_id, date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           '{reason}', count(*)
    FROM gone GROUP BY gone.app_id
    ON CONFLICT (app_id, hour, reason) DO UPDATE SET removed = r.removed + excluded.removed
"""


async def prune_stale(pool: Pool, days: int, *, chunk: int = CHUNK) -> int:
    """Delete installations whose token is older than ``days``; return how many (counted
    per app in registration_removals as ``stale``)."""
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
                DELETE FROM installations i USING doomed WHERE i.id = doomed.id
                RETURNING i.app_id
            ), counted AS ("""
            + COUNT_REMOVED.format(reason="stale")
            + """)
            SELECT count(*) FROM gone
            """,
            days,
            chunk,
        )
        total += int(deleted or 0)
        if not deleted or deleted < chunk:
            return total


# Retention deletes a due message's entries in chunks of this many rows before the message
# itself: a message sent to a list holds up to 100,000 entries, and one cascading DELETE
# of a day's worth of them could outlast PUSHCORE_DB_COMMAND_TIMEOUT and fail every day.
INBOX_ENTRY_CHUNK = 5_000
INBOX_MESSAGE_CHUNK = 100


async def prune_inbox(
    pool: Pool,
    days: int,
    *,
    now: dt.datetime | None = None,
    chunk: int = INBOX_ENTRY_CHUNK,
) -> int:
    """Delete inbox messages sent more than ``days`` before ``now`` (the database's clock
    when None), with their entries; return how many messages."""
    total = 0
    while True:
        due: list[int] = [
            r["message_id"]
            for r in await pool.fetch(
                """
                SELECT message_id FROM inbox_messages
                WHERE sent_at < coalesce($2::timestamptz, now()) - make_interval(days => $1)
                ORDER BY sent_at LIMIT $3
                """,
                days,
                now,
                INBOX_MESSAGE_CHUNK,
            )
        ]
        if not due:
            return total
        while True:
            gone = await pool.fetchval(
                """
                WITH doomed AS (
                    SELECT user_id, message_id FROM inbox_entries
                    WHERE message_id = ANY($1::bigint[]) LIMIT $2
                ), gone AS (
                    DELETE FROM inbox_entries e USING doomed
                    WHERE e.user_id = doomed.user_id AND e.message_id = doomed.message_id
                    RETURNING 1
                )
                SELECT count(*) FROM gone
                """,
                due,
                chunk,
            )
            if gone < chunk:
                break
        # entries written since (a late seen on a broadcast) go with the cascade: few
        deleted = await pool.fetchval(
            "WITH gone AS (DELETE FROM inbox_messages WHERE message_id = ANY($1::bigint[]) "
            "RETURNING 1) SELECT count(*) FROM gone",
            due,
        )
        total += int(deleted or 0)


# messages whose per-recipient data is looked at per pass of prune_recipient_data
RECIPIENT_MESSAGES = 100


async def prune_recipient_data(pool: Pool, days: int, *, chunk: int = CHUNK) -> int:
    """Delete the per-recipient data (``message_recipients``) of messages final for more
    than ``days``, unless the message is still in inboxes (the inbox renders templated
    messages with it when they are read: it goes when the inbox message does); return how
    many rows.

    The messages holding such data are found by a loose index scan of the table's primary
    key (one probe per message, not per row), so the cost follows the number of messages
    with data kept, not their recipients (up to 100,000 each)."""
    total = 0
    while True:
        due: list[int] = [
            r["message_id"]
            for r in await pool.fetch(
                """
                WITH RECURSIVE ids AS (
                    (SELECT message_id FROM message_recipients ORDER BY message_id LIMIT 1)
                    UNION ALL
                    SELECT (SELECT r.message_id FROM message_recipients r
                            WHERE r.message_id > ids.message_id
                            ORDER BY r.message_id LIMIT 1)
                    FROM ids WHERE ids.message_id IS NOT NULL
                )
                SELECT m.id AS message_id FROM ids JOIN messages m ON m.id = ids.message_id
                WHERE m.status IN ('done', 'cancelled', 'failed')
                  AND m.finished_at < now() - make_interval(days => $1)
                  AND NOT EXISTS (SELECT 1 FROM inbox_messages im WHERE im.message_id = m.id)
                LIMIT $2
                """,
                days,
                RECIPIENT_MESSAGES,
            )
        ]
        if not due:
            return total
        while True:
            gone = int(
                await pool.fetchval(
                    """
                    WITH doomed AS (
                        SELECT message_id, external_id FROM message_recipients
                        WHERE message_id = ANY($1::bigint[]) LIMIT $2
                    ), gone AS (
                        DELETE FROM message_recipients r USING doomed
                        WHERE r.message_id = doomed.message_id
                          AND r.external_id = doomed.external_id
                        RETURNING 1
                    )
                    SELECT count(*) FROM gone
                    """,
                    due,
                    chunk,
                )
                or 0
            )
            total += gone
            if gone < chunk:
                break

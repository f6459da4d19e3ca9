"""Registry upkeep: deleting registrations whose token has gone stale.

A token that the app has not refreshed for ``PUSHCORE_STALE_TOKEN_DAYS`` days most likely
belongs to an uninstalled app (APNs and FCM stop accepting them, or accept them silently).
Deletion runs in chunks so that no statement holds locks on many rows for long.
"""

from __future__ import annotations

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

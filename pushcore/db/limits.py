"""The rate limits' rows: a throttled message's bucket, an app's per-provider quotas.

The permit itself is taken by the claim statement (:func:`pushcore.db.batches.claim`,
through the ``send_permit`` function of the 0016 migration); here are the rows it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from pushcore.db.pool import Connection, Pool

# ``quotas``: {platform: per_minute} of the app's app_quotas rows (for APP_COLUMNS)
QUOTAS_COLUMN = """(SELECT coalesce(jsonb_object_agg(q.platform, q.per_minute), '{}')
     FROM app_quotas q WHERE q.app_id = a.id) AS quotas"""


async def start_message_rate(pool: Pool, message_id: int, per_minute: int, spacing: float) -> None:
    """The bucket of a throttled message, written by its planner before its first batch
    (a planner that takes over finds it there and keeps its schedule)."""
    await pool.execute(
        """
        INSERT INTO message_rates (message_id, per_minute, spacing) VALUES ($1, $2, $3)
        ON CONFLICT (message_id) DO NOTHING
        """,
        message_id,
        per_minute,
        spacing,
    )


async def quotas_of(pool: Pool, app_id: int, platforms: Sequence[str]) -> dict[str, int]:
    """{platform: per_minute} of the app's quotas on ``platforms``."""
    rows = await pool.fetch(
        "SELECT platform, per_minute FROM app_quotas WHERE app_id = $1 AND platform = ANY($2)",
        app_id,
        list(platforms),
    )
    return {r["platform"]: r["per_minute"] for r in rows}


async def set_quotas(
    conn: Connection, app_id: int, changes: dict[str, tuple[int, float] | None]
) -> bool:
    """Set ({platform: (per_minute, spacing)}) or remove ({platform: None}) quotas; True
    when any changed.  A changed quota keeps its bucket's schedule (``tat``): batches
    already given slots keep them, the next ones are spaced by the new rate."""
    changed = 0
    for platform, value in sorted(changes.items()):
        if value is None:
            status = await conn.execute(
                "DELETE FROM app_quotas WHERE app_id = $1 AND platform = $2", app_id, platform
            )
        else:
            status = await conn.execute(
                """
                INSERT INTO app_quotas AS q (app_id, platform, per_minute, spacing)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (app_id, platform) DO UPDATE
                    SET per_minute = EXCLUDED.per_minute, spacing = EXCLUDED.spacing
                    WHERE q.per_minute IS DISTINCT FROM EXCLUDED.per_minute
                """,
                app_id,
                platform,
                *value,
            )
        changed += int(status.rsplit(" ", 1)[-1])
    return changed > 0

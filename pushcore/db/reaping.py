"""The reaper's statements: what the ledger says is stuck, handed out again."""

from __future__ import annotations

from pushcore.db import webhooks
from pushcore.db.pool import Connection, Pool, Record

# pg_try_advisory_lock key: only one reaper at a time across all worker processes/hosts.
REAPER_LOCK = 0x70757368  # "push"
# A pass is due when its last run is older than this share of its period: processes wake
# at slightly different times, and "older than the whole period" would let one process's
# pass just fall short for the next and stretch the period towards twice its length.
DUE_SHARE = 0.9


async def try_lock(conn: Connection) -> bool:
    """Take the reaper lock for the rest of ``conn``'s transaction, if nobody holds it.
    Transaction-scoped: it ends with the transaction even when the pass is cancelled
    midway (pooled connections are not reset on release)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", REAPER_LOCK))


async def claim_pass(conn: Connection, name: str, every_seconds: float) -> bool:
    """Whether pass ``name`` is due cluster-wide, marking it run now if so.  Call it in the
    transaction that holds the reaper lock: the check and the mark are then atomic, so N
    worker processes make one pass per period between them, not N."""
    claimed = await conn.fetchval(
        """
        UPDATE reaper_passes SET ran_at = now()
        WHERE name = $1 AND ran_at <= now() - make_interval(secs => $2)
        RETURNING true
        """,
        name,
        every_seconds * DUE_SHARE,
    )
    return bool(claimed)


async def stuck_batches(pool: Pool, requeue_after: float, limit: int) -> list[Record]:
    """Batches to enqueue again: a lease that expired (the worker died or hung), or queued
    and due but not picked up for ``requeue_after`` seconds (its broker message was lost:
    a flushed Redis, a failed enqueue).  Marks them re-enqueued now, so each is handed out
    once per period."""
    rows: list[Record] = await pool.fetch(
        """
        WITH stuck AS (
            SELECT id FROM batches
            WHERE state = 'sending' AND lease_until < now()
            UNION
            SELECT id FROM batches
            WHERE state = 'queued'
              AND enqueued_at < now() - make_interval(secs => $1)
              AND (not_before IS NULL OR not_before < now() - make_interval(secs => $1))
            LIMIT $2
        )
        UPDATE batches b SET enqueued_at = now(),
            state = CASE WHEN b.state = 'sending' THEN 'queued' ELSE b.state END
        FROM stuck WHERE b.id = stuck.id
          -- Checked again on the row as it is when locked.  A worker may claim the batch
          -- between the scan and this update; READ COMMITTED then applies the update to the
          -- claimed row, and without this check the CASE would turn a batch in flight back
          -- into a queued one that another worker claims: its devices sent to twice.
          AND ((b.state = 'sending' AND b.lease_until < now())
               OR (b.state = 'queued'
                   AND b.enqueued_at < now() - make_interval(secs => $1)
                   AND (b.not_before IS NULL
                        OR b.not_before < now() - make_interval(secs => $1))))
        RETURNING b.id, b.platform
        """,
        requeue_after,
        limit,
    )
    return rows


async def stuck_messages(pool: Pool, requeue_after: float, limit: int) -> list[int]:
    """Messages whose planning must (re)start: scheduled ones now due, and unplanned ones
    whose plan job was lost or whose planner died (lease expired)."""
    rows = await pool.fetch(
        f"""
        WITH old AS (
            SELECT id, status FROM messages
            WHERE NOT planned AND status IN ('scheduled', 'queued', 'sending')
              AND (send_at IS NULL OR send_at <= now())
              AND (status = 'scheduled'
                   OR (plan_lease_until IS NULL
                       AND created_at < now() - make_interval(secs => $1))
                   OR plan_lease_until < now())
            LIMIT $2
        ), c AS (
            UPDATE messages m SET status = CASE WHEN m.status = 'scheduled' THEN 'queued'
                                                ELSE m.status END
            FROM old WHERE m.id = old.id
            RETURNING {webhooks.MESSAGE_COLUMNS}
        ), hooks AS ({webhooks.status_events("c u JOIN old ON old.id = u.id", "old.status")}
        )
        SELECT c.id FROM c
        """,
        requeue_after,
        limit,
    )
    return [int(r["id"]) for r in rows]

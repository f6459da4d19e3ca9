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
    a flushed Redis, a failed enqueue; due by the schedule's clock, as the claim judges it).
    Held local-time batches are not stuck: they wait for :func:`release_held`.  Marks them
    re-enqueued now, so each is handed out once per period."""
    rows: list[Record] = await pool.fetch(
        """
        WITH stuck AS (
            SELECT id FROM batches
            WHERE state = 'sending' AND lease_until < now()
            UNION
            SELECT id FROM batches
            WHERE state = 'queued' AND NOT held
              AND enqueued_at < now() - make_interval(secs => $1)
              AND (not_before IS NULL OR not_before < clock_now() - make_interval(secs => $1))
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
               OR (b.state = 'queued' AND NOT b.held
                   AND b.enqueued_at < now() - make_interval(secs => $1)
                   AND (b.not_before IS NULL
                        OR b.not_before < clock_now() - make_interval(secs => $1))))
        RETURNING b.id, b.platform
        """,
        requeue_after,
        limit,
    )
    return rows


async def stuck_messages(pool: Pool, requeue_after: float, limit: int) -> list[int]:
    """Messages whose planning must (re)start: scheduled ones now due, and unplanned ones
    whose plan job was lost or whose planner died (lease expired).  A local-time message
    stays ``scheduled`` while it is planned: its plan job is handed out like a queued
    one's."""
    rows = await pool.fetch(
        f"""
        WITH old AS (
            SELECT id, status FROM messages
            WHERE NOT planned AND status IN ('scheduled', 'queued', 'sending')
              AND (send_at IS NULL OR send_at <= clock_now())
              AND ((status = 'scheduled' AND local_from IS NULL)
                   OR (plan_lease_until IS NULL
                       AND created_at < now() - make_interval(secs => $1))
                   OR plan_lease_until < now())
            LIMIT $2
        ), c AS (
            UPDATE messages m SET status = CASE
                WHEN m.status = 'scheduled' AND m.local_from IS NULL THEN 'queued'
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


async def release_held(pool: Pool, limit: int) -> list[Record]:
    """Local-time batches now due (by the schedule's clock), up to ``limit``: no longer
    held, enqueued now (returned for the enqueue; a lost enqueue is then the reaper's
    ordinary case), their recipients no longer waiting.  A message whose last held batch
    this releases, and whose planning is complete, goes from ``scheduled`` to ``sending``.

    The messages are locked first, in id order, in a statement of their own: cancel locks
    a message and then its batches, and taking a batch before its message here could
    deadlock with it."""
    async with pool.acquire() as conn, conn.transaction():
        locked = await conn.fetch(
            """
            SELECT m.id FROM messages m
            WHERE m.id IN (SELECT b.message_id FROM batches b
                           WHERE b.held AND b.not_before <= clock_now())
            ORDER BY m.id FOR UPDATE
            """
        )
        if not locked:
            return []
        rows: list[Record] = await conn.fetch(
            f"""
            WITH old AS (
                SELECT m.id, m.status FROM messages m WHERE m.id = ANY($2::bigint[])
            ), due AS (
                SELECT id FROM batches
                WHERE held AND not_before <= clock_now() AND message_id = ANY($2::bigint[])
                ORDER BY not_before LIMIT $1
            ), rel AS (
                UPDATE batches b SET held = false, enqueued_at = now()
                FROM due WHERE b.id = due.id AND b.held
                RETURNING b.id, b.platform, b.message_id, cardinality(b.installation_ids) AS n
            ), per AS (
                SELECT message_id, sum(n) AS n FROM rel GROUP BY message_id
            ), c AS (
                UPDATE messages m SET waiting = m.waiting - per.n,
                    status = CASE WHEN m.status = 'scheduled' AND m.planned
                                       AND m.waiting - per.n = 0 THEN 'sending'
                                  ELSE m.status END
                FROM per WHERE m.id = per.message_id
                RETURNING {webhooks.MESSAGE_COLUMNS}
            ), hooks AS ({webhooks.status_events("c u JOIN old ON old.id = u.id", "old.status")}
            )
            SELECT rel.id, rel.platform FROM rel ORDER BY rel.id
            """,
            limit,
            [r["id"] for r in locked],
        )
    return rows

"""Per-recipient results of a message (``batch_results``): one page, and the retention
sweep.

A batch's row holds one byte per planned registration (``batches.installation_ids``
order) indexing its labels ``"<outcome>/<reason>"``.  A page walks a message's rows in
batch order and each row's registrations in ledger order, so ``(batch id, position)`` is
the keyset cursor.  Answers that led to a retry (``retry/…``) are skipped: the retry
batch's row has the recipient's next answer, with ``attempts`` one higher.
"""

from __future__ import annotations

import uuid

from pushcore.db.pool import Pool, Record

PRUNE_CHUNK = 1_000  # rows (batches) per statement of the retention sweep


async def message_row_id(pool: Pool, app_id: int, message_id: uuid.UUID) -> int | None:
    """The message's internal id, None when it is not this app's."""
    found: int | None = await pool.fetchval(
        "SELECT id FROM messages WHERE app_id = $1 AND public_id = $2", app_id, message_id
    )
    return found


async def page(
    pool: Pool,
    message_id: int,
    *,
    outcome: str | None,
    after: tuple[int, int],
    limit: int,
) -> list[Record]:
    """Up to ``limit`` final answers after ``after`` = (batch id, position), optionally of
    one outcome; each with the registration's public id and external user id (from the
    registry, or as kept when the registration was deleted as dead)."""
    rows: list[Record] = await pool.fetch(
        """
        WITH hits AS (
            SELECT r.batch_id, x.pos, x.iid, b.platform, r.attempt,
                   r.labels[get_byte(r.codes, (x.pos - 1)::int) + 1] AS label,
                   r.removed -> x.iid::text AS removed,
                   right(b.tokens[x.pos], 8) AS token_suffix
            FROM batch_results r
            JOIN batches b ON b.id = r.batch_id
            CROSS JOIN LATERAL unnest(b.installation_ids) WITH ORDINALITY AS x(iid, pos)
            WHERE r.message_id = $1 AND r.batch_id >= $2
              AND (r.batch_id, x.pos) > ($2, $3)
              -- rows without a label of the outcome asked for are skipped whole
              AND ($4::text IS NULL OR EXISTS (
                    SELECT 1 FROM unnest(r.labels) AS l WHERE l LIKE $4 || '/%'))
              AND r.labels[get_byte(r.codes, (x.pos - 1)::int) + 1] NOT LIKE 'retry/%'
              AND ($4::text IS NULL
                   OR r.labels[get_byte(r.codes, (x.pos - 1)::int) + 1] LIKE $4 || '/%')
            ORDER BY r.batch_id, x.pos
            LIMIT $5
        )
        SELECT h.batch_id, h.pos, h.platform, h.attempt, h.label, h.token_suffix,
               coalesce(i.public_id::text, h.removed ->> 0) AS installation_id,
               CASE WHEN i.id IS NOT NULL THEN u.external_id ELSE h.removed ->> 1 END
                   AS external_user_id,
               h.removed IS NOT NULL AS removed, h.iid < 0 AS raw
        FROM hits h
        LEFT JOIN installations i ON i.id = h.iid
        LEFT JOIN users u ON u.id = i.user_id
        ORDER BY h.batch_id, h.pos
        """,
        message_id,
        after[0],
        after[1],
        outcome,
        limit,
    )
    return rows


async def prune(pool: Pool, days: int, *, chunk: int = PRUNE_CHUNK) -> int:
    """Delete result rows older than ``days``; return how many (in chunks, so that no
    statement holds many row locks for long)."""
    total = 0
    while True:
        deleted = await pool.fetchval(
            """
            WITH doomed AS (
                SELECT batch_id FROM batch_results
                WHERE created_at < now() - make_interval(days => $1)
                ORDER BY created_at LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM batch_results r USING doomed
                WHERE r.batch_id = doomed.batch_id RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            days,
            chunk,
        )
        total += int(deleted or 0)
        if not deleted or deleted < chunk:
            return total

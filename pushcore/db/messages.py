"""Queries on messages from the API: create (idempotent), show, list, cancel."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pushcore.db import webhooks
from pushcore.db.inbox import SEEN_COLUMN, InboxPlan
from pushcore.db.lane import insert_planned
from pushcore.db.pool import Connection, Pool, Record

IDEMPOTENCY_HOURS = 24


@dataclass(frozen=True, slots=True)
class LanePlan:
    """How to plan a small message at insert: its target kind and values (as the planner
    takes them) and the batch size."""

    kind: str
    values: list[str]
    batch_size: int
    inbox: InboxPlan | None = None  # also stored in the inboxes of the users reached


COLUMNS = (
    """
    m.id, m.public_id, m.status, m.targeted, m.delivered, m.invalid_removed, m.invalid, m.failed,
    m.retrying, m.waiting, m.opened, m.failure_reasons, m.errors, m.created_at, m.started_at,
    m.finished_at, m.send_at, m.platforms, m.inboxed, """
    + SEEN_COLUMN
)


async def create(
    pool: Pool,
    *,
    app_id: int,
    request: dict[str, Any],
    notification: dict[str, Any],
    platforms: list[str],
    primary_only: bool,
    send_at: dt.datetime | None,
    ttl_seconds: int | None,
    local_from: dt.datetime | None = None,
    idempotency_key: str | None,
    lane: LanePlan | None = None,
    recipients: tuple[list[str], list[Any]] | None = None,
) -> tuple[Record, bool]:
    """Insert the message; with an idempotency key seen in the last 24 hours, return that
    message instead (``created`` False).  Keys older than 24 hours are released first.
    With ``lane``, the message is inserted planned (its lane batches written, workers
    notified at commit), in one statement when there is no idempotency key.  ``recipients``
    (user ids and their data) are stored with the message, in its transaction.  A
    local-time message (``local_from``: the clock when accepted) is ``scheduled`` from the
    start, ``send_at`` being when its planning starts; its batches carry their own expiry."""
    planned: dict[str, Any] = {}
    if lane is not None:
        planned = {
            "app_id": app_id,
            "request": request,
            "notification": notification,
            "platforms": platforms,
            "primary_only": primary_only,
            "ttl_seconds": ttl_seconds,
            "kind": lane.kind,
            "values": lane.values,
            "batch_size": lane.batch_size,
            "inbox": lane.inbox,
            "columns": COLUMNS,
        }
        if idempotency_key is None and recipients is None:
            # the common transactional send: one statement, no transaction block
            row = await insert_planned(pool, idempotency_key=None, **planned)
            assert row is not None  # no idempotency key, no conflict
            return row, True
    async with pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            await conn.execute(
                """
                UPDATE messages SET idempotency_key = NULL
                WHERE app_id = $1 AND idempotency_key = $2
                  AND created_at < now() - make_interval(hours => $3)
                """,
                app_id,
                idempotency_key,
                IDEMPOTENCY_HOURS,
            )
        if lane is not None:
            row = await insert_planned(conn, idempotency_key=idempotency_key, **planned)
        else:
            row = await conn.fetchrow(
                f"""
                INSERT INTO messages AS m (app_id, status, request, notification, platforms,
                                           primary_only, send_at, expires_at, idempotency_key,
                                           local_from)
                VALUES ($1,
                        CASE WHEN $9::timestamptz IS NOT NULL OR $6::timestamptz > clock_now()
                             THEN 'scheduled' ELSE 'queued' END,
                        $2, $3, $4, $5, $6,
                        CASE WHEN $9::timestamptz IS NULL THEN coalesce($6, now())
                             + make_interval(secs => $7::double precision) END, $8, $9)
                ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                    DO NOTHING
                RETURNING {COLUMNS}
                """,
                app_id,
                request,
                notification,
                platforms,
                primary_only,
                send_at,
                ttl_seconds,
                idempotency_key,
                local_from,
            )
        if row is not None:
            if recipients is not None:
                await _store_recipients(conn, row["id"], *recipients)
            return row, True
        existing = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM messages m WHERE m.app_id = $1 AND m.idempotency_key = $2",
            app_id,
            idempotency_key,
        )
        assert existing is not None  # the conflict says it exists; the lock keeps it
        return existing, False


async def _store_recipients(
    conn: Connection, message_id: int, users: list[str], data: list[Any]
) -> None:
    await conn.execute(
        """
        INSERT INTO message_recipients (message_id, external_id, data)
        SELECT $1, t.e, t.d FROM unnest($2::text[], $3::jsonb[]) AS t(e, d)
        """,
        message_id,
        users,
        data,
    )


async def get(pool: Pool, app_id: int, public_id: uuid.UUID) -> Record | None:
    row: Record | None = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM messages m WHERE m.app_id = $1 AND m.public_id = $2",
        app_id,
        public_id,
    )
    return row


async def recent(pool: Pool, app_id: int, *, limit: int, before: uuid.UUID | None) -> list[Record]:
    rows: list[Record] = await pool.fetch(
        f"""
        SELECT {COLUMNS} FROM messages m
        WHERE m.app_id = $1
          AND ($3::uuid IS NULL OR m.id < (SELECT b.id FROM messages b
                                          WHERE b.app_id = $1 AND b.public_id = $3))
        ORDER BY m.id DESC LIMIT $2
        """,
        app_id,
        limit,
        before,
    )
    return rows


# message.status (cancelled) and message.done, committed with the cancel
_CANCEL_EVENTS = webhooks.status_events("m u JOIN target ON target.id = u.id", "target.status")


async def cancel(pool: Pool, app_id: int, public_id: uuid.UUID) -> Record | None:
    """Cancel: batches still queued (a local-time message's held ones too: what was sent
    stays sent) are closed as failed (reason ``cancelled``, also in their per-recipient
    results) in the same statement; batches being sent finish
    normally; the planner stops at its next step; the message leaves the inboxes.
    Cancelling a finished message changes nothing.  None when there is no such message."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH target AS (
            SELECT id, status FROM messages
            WHERE app_id = $1 AND public_id = $2
              AND status IN ('scheduled', 'queued', 'sending')
            FOR UPDATE
        ), pick AS (
            -- The message is locked first and its batches after it, the reverse of a
            -- write-back (a batch, then its message): waiting for a batch here deadlocked
            -- with a batch finishing.  So batches another transaction holds are skipped,
            -- never waited for: they are being claimed (then sent, or put off by a rate
            -- limit and closed when they come back to a cancelled message) or finished.
            SELECT b.id, b.held FROM batches b, target
            WHERE b.message_id = target.id AND b.state = 'queued'
            FOR UPDATE OF b SKIP LOCKED
        ), closed AS (
            UPDATE batches b SET state = 'done', failed = cardinality(b.installation_ids),
                finished_at = now(), held = false
            FROM pick WHERE b.id = pick.id
            RETURNING b.id, b.message_id, cardinality(b.installation_ids) AS n, b.attempt,
                      pick.held AS was_held
        ), permits AS (
            -- slots they had reserved under a rate limit (the buckets stay as charged)
            DELETE FROM rate_permits p USING closed WHERE p.batch_id = closed.id
        ), results AS (
            -- their per-recipient results: every one "failed/cancelled" (code 0)
            INSERT INTO batch_results (batch_id, message_id, attempt, labels, codes)
            SELECT closed.id, closed.message_id, closed.attempt, ARRAY['failed/cancelled'],
                   decode(repeat('00', closed.n), 'hex')
            FROM closed
        ), uninboxed AS (
            -- gone from every inbox (the entries follow by the cascade)
            DELETE FROM inbox_messages x USING target WHERE x.message_id = target.id
        ), totals AS (
            SELECT coalesce(sum(n), 0) AS n,
                   coalesce(sum(n) FILTER (WHERE attempt > 0), 0) AS retrying,
                   coalesce(sum(n) FILTER (WHERE was_held), 0) AS waiting,
                   count(*) AS batches
            FROM closed
        ), m AS (
            UPDATE messages m SET
                status = 'cancelled',
                finished_at = now(),
                failed = m.failed + totals.n,
                retrying = m.retrying - totals.retrying,
                waiting = m.waiting - totals.waiting,
                open_batches = m.open_batches - totals.batches,
                failure_reasons = add_counts(m.failure_reasons,
                                             jsonb_build_object('cancelled', totals.n))
            FROM target, totals WHERE m.id = target.id
            RETURNING m.*
        ), hooks AS ({_CANCEL_EVENTS}
        )
        SELECT {COLUMNS} FROM m
        UNION ALL
        SELECT {COLUMNS} FROM messages m
        WHERE m.app_id = $1 AND m.public_id = $2 AND NOT EXISTS (SELECT 1 FROM target)
        """,
        app_id,
        public_id,
    )
    return row


async def status_counts(pool: Pool, *, days: int) -> dict[str, int]:
    """Messages created in the last ``days`` days, by status."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM messages "
        "WHERE created_at > now() - make_interval(days => $1) GROUP BY status",
        days,
    )
    return {r["status"]: int(r["n"]) for r in rows}

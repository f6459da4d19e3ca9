"""Webhooks: endpoints (CRUD), the outbox's SQL pieces that statements reporting a change
embed, and the delivery loops' claim and record statements.

An event is a row of ``webhook_outbox`` per subscribed, enabled endpoint, inserted by the
statement that makes the change it reports (the finish statement, cancel, the planner's
claim and finish), so it commits or rolls back with it.  The delivery loops claim due rows under a
lease (``FOR UPDATE SKIP LOCKED``), post them, and record each attempt in one statement
that also moves the row (delivered, retried later, given up after the retry window) and
the endpoint's failure clock (disabled after failing for the whole window, which tells the
app's other endpoints ``webhook.disabled``).
"""

from __future__ import annotations

import uuid
from typing import Any

from pushcore.db.pool import Pool, Record

NOW_RFC3339 = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
COLUMNS = """w.public_id, w.url, w.events, w.description, w.enabled, w.disabled_reason,
    w.failing_since, w.created_at, w.updated_at"""


def outbox_insert(source: str, *, app_id: str, type_: str, data: str, where: str = "true") -> str:
    """``INSERT INTO webhook_outbox ... SELECT ...`` of one event per row of ``source`` (a
    FROM clause) for each enabled endpoint of ``app_id`` subscribed to ``type_``: a
    statement to embed as a data-modifying CTE of the statement making the change."""
    return f"""
    INSERT INTO webhook_outbox (webhook_id, type, body)
    SELECT w.id, {type_}, jsonb_build_object('type', {type_}, 'timestamp', {NOW_RFC3339},
                                            'data', {data})
    FROM {source}
    JOIN webhooks w ON w.app_id = {app_id} AND w.enabled AND {type_} = ANY(w.events)
    WHERE {where}
    """


def message_data(m: str) -> str:
    """The data of ``message.status`` / ``message.done`` from a messages row alias ``m``."""
    return f"""jsonb_build_object(
        'message_id', {m}.public_id, 'status', {m}.status,
        'counts', jsonb_build_object(
            'targeted', {m}.targeted, 'delivered', {m}.delivered,
            'invalid_removed', {m}.invalid_removed, 'invalid', {m}.invalid,
            'failed', {m}.failed, 'retrying', {m}.retrying,
            'pending', {m}.targeted - {m}.delivered - {m}.invalid_removed - {m}.invalid
                       - {m}.failed - {m}.retrying,
            'opened', {m}.opened),
        'failure_reasons', {m}.failure_reasons, 'errors', {m}.errors)"""


FINAL_STATUSES = "('done', 'failed', 'cancelled')"
# the messages columns message_data reads (a RETURNING list: not the request and its tokens)
MESSAGE_COLUMNS = """m.id, m.app_id, m.public_id, m.status, m.targeted, m.delivered,
    m.invalid_removed, m.invalid, m.failed, m.retrying, m.opened, m.failure_reasons, m.errors"""


def status_events(updated: str, old_status: str) -> str:
    """The ``message.status`` (each change) and ``message.done`` (a final status) events
    of the messages rows ``u`` of the FROM clause ``updated`` whose status was
    ``old_status`` (an expression on the same rows) before the statement."""
    return outbox_insert(
        f"{updated} CROSS JOIN (VALUES ('message.status'), ('message.done')) AS t(type)",
        app_id="u.app_id",
        type_="t.type",
        data=message_data("u"),
        where=f"u.status <> {old_status} AND (t.type = 'message.status' "
        f"OR u.status IN {FINAL_STATUSES})",
    )


# --- endpoints ------------------------------------------------------------------------


async def count(pool: Pool, app_id: int) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM webhooks WHERE app_id = $1", app_id)
    return n


async def create(
    pool: Pool, app_id: int, *, url: str, events: list[str], description: str | None, secret: str
) -> Record:
    row: Record | None = await pool.fetchrow(
        f"""
        INSERT INTO webhooks AS w (app_id, url, events, description, secret)
        VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}
        """,
        app_id,
        url,
        events,
        description,
        secret,
    )
    assert row is not None
    return row


async def listing(pool: Pool, app_id: int) -> list[Record]:
    rows: list[Record] = await pool.fetch(
        f"SELECT {COLUMNS} FROM webhooks w WHERE w.app_id = $1 ORDER BY w.id", app_id
    )
    return rows


async def update(pool: Pool, app_id: int, public_id: uuid.UUID, **changes: Any) -> Record | None:
    """Change url, events, description or enabled (fields left out stay); enabling again
    restarts the endpoint's failure clock."""
    row: Record | None = await pool.fetchrow(
        f"""
        UPDATE webhooks w SET
            url = coalesce($3, w.url),
            events = coalesce($4, w.events),
            description = CASE WHEN $6 THEN $5 ELSE w.description END,
            enabled = coalesce($7, w.enabled),
            disabled_reason = CASE WHEN $7 THEN NULL ELSE w.disabled_reason END,
            failing_since = CASE WHEN $7 THEN NULL ELSE w.failing_since END,
            updated_at = now()
        WHERE w.app_id = $1 AND w.public_id = $2
        RETURNING {COLUMNS}
        """,
        app_id,
        public_id,
        changes.get("url"),
        changes.get("events"),
        changes.get("description"),
        "description" in changes,
        changes.get("enabled"),
    )
    return row


async def delete(pool: Pool, app_id: int, public_id: uuid.UUID) -> bool:
    found = await pool.fetchval(
        "DELETE FROM webhooks WHERE app_id = $1 AND public_id = $2 RETURNING 1", app_id, public_id
    )
    return bool(found)


async def enqueue_test(pool: Pool, app_id: int, public_id: uuid.UUID) -> Record | None:
    """A ``webhook.test`` event for this endpoint alone (None: no such endpoint);
    ``enabled`` False: it is disabled and nothing was queued."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH w AS (SELECT id, enabled FROM webhooks WHERE app_id = $1 AND public_id = $2),
        ins AS (
            INSERT INTO webhook_outbox (webhook_id, type, body)
            SELECT w.id, 'webhook.test', jsonb_build_object(
                'type', 'webhook.test', 'timestamp', {NOW_RFC3339},
                'data', jsonb_build_object('webhook_id', $2::uuid))
            FROM w WHERE w.enabled
            RETURNING id
        )
        SELECT w.enabled, (SELECT id FROM ins) AS event_id FROM w
        """,
        app_id,
        public_id,
    )
    return row


async def attempts(
    pool: Pool, app_id: int, public_id: uuid.UUID, limit: int
) -> list[Record] | None:
    """The endpoint's most recent delivery attempts, newest first (None: no such
    endpoint)."""
    webhook_id = await pool.fetchval(
        "SELECT id FROM webhooks WHERE app_id = $1 AND public_id = $2", app_id, public_id
    )
    if webhook_id is None:
        return None
    rows: list[Record] = await pool.fetch(
        """
        SELECT a.outbox_id, o.type, a.attempt, a.status, a.latency_ms, a.error, a.at
        FROM webhook_attempts a JOIN webhook_outbox o ON o.id = a.outbox_id
        WHERE a.webhook_id = $1 ORDER BY a.id DESC LIMIT $2
        """,
        webhook_id,
        limit,
    )
    return rows


# --- delivery -------------------------------------------------------------------------


async def claim(
    pool: Pool,
    *,
    limit: int,
    lease_seconds: float,
    per_endpoint: int,
    in_flight: dict[int, int],
) -> list[Record]:
    """Up to ``limit`` due events of enabled endpoints under a lease, at most
    ``per_endpoint`` in flight per endpoint counting ``in_flight`` (this process's)."""
    rows: list[Record] = await pool.fetch(
        """
        WITH cand AS (
            -- at most $5 due events per endpoint: an endpoint with a backlog (a receiver
            -- down for hours) cannot crowd the others out of the candidates
            SELECT e.id, e.webhook_id, e.next_attempt_at FROM webhooks w
            CROSS JOIN LATERAL (
                SELECT o.id, o.webhook_id, o.next_attempt_at FROM webhook_outbox o
                WHERE o.webhook_id = w.id AND o.state = 'pending'
                  AND o.next_attempt_at <= now()
                  AND (o.lease_until IS NULL OR o.lease_until < now())
                ORDER BY o.next_attempt_at LIMIT $5
                FOR UPDATE OF o SKIP LOCKED
            ) e
            WHERE w.enabled
        ), ranked AS (
            SELECT c.id, c.next_attempt_at,
                   row_number() OVER (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at, c.id)
                       + coalesce(f.n, 0) AS slot
            FROM cand c LEFT JOIN unnest($3::bigint[], $4::int[]) AS f(webhook_id, n)
                 ON f.webhook_id = c.webhook_id
        ), pick AS (
            SELECT id FROM ranked WHERE slot <= $5 ORDER BY next_attempt_at, id LIMIT $1
        ), upd AS (
            UPDATE webhook_outbox o SET lease_until = now() + make_interval(secs => $2)
            FROM pick WHERE o.id = pick.id
            RETURNING o.id, o.webhook_id, o.body, o.attempts, o.created_at
        )
        SELECT upd.*, w.url, w.secret FROM upd JOIN webhooks w ON w.id = upd.webhook_id
        ORDER BY upd.id
        """,
        limit,
        lease_seconds,
        list(in_flight),
        list(in_flight.values()),
        per_endpoint,
    )
    return rows


_SINCE = NOW_RFC3339.replace("now()", "coalesce(old.failing_since, now())")


async def record(
    pool: Pool,
    *,
    outbox_id: int,
    webhook_id: int,
    attempt: int,
    status: int | None,
    latency_ms: int,
    error: str | None,
    delivered: bool,
    retry_in: float,
    window_seconds: float,
) -> Record:
    """One attempt's outcome, in one statement: the attempt row; the event delivered, due
    again in ``retry_in`` seconds (never past its retry window, at whose end it is tried
    once more), or given up once the window is over; the endpoint's failure clock (a
    success stops it; failing for a whole window disables the endpoint and tells the
    app's other endpoints ``webhook.disabled``)."""
    disabled_event = outbox_insert(
        "dis d",
        app_id="d.app_id",
        type_="'webhook.disabled'",
        data="""jsonb_build_object('webhook_id', d.public_id, 'url', d.url,
                                   'reason', d.disabled_reason)""",
        where="d.just_disabled AND w.id <> d.id",
    )
    row: Record | None = await pool.fetchrow(
        f"""
        WITH att AS (
            INSERT INTO webhook_attempts (outbox_id, webhook_id, attempt, status, latency_ms,
                                          error)
            VALUES ($1, $2, $3, $4, $5, $6)
        ), ob AS (
            UPDATE webhook_outbox o SET
                attempts = o.attempts + 1, lease_until = NULL,
                state = CASE WHEN $7 THEN 'delivered'
                             WHEN o.created_at + make_interval(secs => $9) <= now()
                                 THEN 'failed'
                             ELSE 'pending' END,
                next_attempt_at = least(now() + make_interval(secs => $8),
                                        o.created_at + make_interval(secs => $9)),
                finished_at = CASE WHEN $7 OR o.created_at + make_interval(secs => $9) <= now()
                                   THEN now() END
            WHERE o.id = $1
            RETURNING o.state
        ), old AS (
            -- locked: two attempts of one endpoint recorded at once see each other's clock
            SELECT id, enabled, failing_since FROM webhooks WHERE id = $2 FOR UPDATE
        ), dis AS (
            UPDATE webhooks w SET
                failing_since = CASE WHEN $7 THEN NULL
                                     ELSE coalesce(w.failing_since, old.failing_since, now()) END,
                enabled = w.enabled AND NOT gave_up.now,
                disabled_reason = CASE WHEN w.enabled AND gave_up.now
                    THEN 'failing since ' || {_SINCE}
                    ELSE w.disabled_reason END
            FROM old CROSS JOIN LATERAL (
                -- failing for a whole window: this run of failures is that old, or it
                -- spans every attempt of an event given up now (no success in between)
                SELECT NOT $7 AND coalesce(
                    old.failing_since <= now() - make_interval(secs => $9)
                    OR ((SELECT state FROM ob) = 'failed' AND old.failing_since <= coalesce(
                        (SELECT min(a.at) FROM webhook_attempts a WHERE a.outbox_id = $1),
                        now())), false) AS now
            ) gave_up
            WHERE w.id = old.id
            RETURNING w.id, w.app_id, w.public_id, w.url, w.disabled_reason,
                      old.enabled AND NOT w.enabled AS just_disabled
        ), told AS ({disabled_event})
        SELECT (SELECT state FROM ob) AS state,
               coalesce((SELECT just_disabled FROM dis), false) AS disabled
        """,
        outbox_id,
        webhook_id,
        attempt,
        status,
        latency_ms,
        error,
        delivered,
        retry_in,
        window_seconds,
    )
    assert row is not None
    return row


async def backlog(pool: Pool, cap: int) -> tuple[int, float]:
    """(pending events of enabled endpoints, counted up to ``cap``; seconds since the
    longest-waiting due one became due, 0 when none is due), by the pending-due index."""
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM (
                    SELECT 1 FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
                    WHERE o.state = 'pending' AND w.enabled LIMIT $1) x) AS pending,
               coalesce(extract(epoch FROM now() - (
                    SELECT o.next_attempt_at FROM webhook_outbox o
                    JOIN webhooks w ON w.id = o.webhook_id
                    WHERE o.state = 'pending' AND o.next_attempt_at <= now() AND w.enabled
                    ORDER BY o.next_attempt_at LIMIT 1)), 0)::float8 AS oldest_due
        """,
        cap,
    )
    assert row is not None
    return int(row["pending"]), float(row["oldest_due"])


async def prune(pool: Pool, days: int) -> int:
    """Delete finished events (and their attempts) older than ``days``."""
    deleted: int = await pool.fetchval(
        """
        WITH gone AS (
            DELETE FROM webhook_outbox
            WHERE state <> 'pending' AND finished_at < now() - make_interval(days => $1)
            RETURNING 1
        ) SELECT count(*) FROM gone
        """,
        days,
    )
    return deleted

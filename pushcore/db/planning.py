"""The planner's statements: claim a message for planning, write batches page by page.

Each page is one statement that reads up to ``batch_size * batches_per_statement``
installation ids, writes them as batches, adds to the message's counters and advances its
cursor, guarded by the planner's claim number: a planner whose lease expired (and whose
message another planner took over) writes nothing.  So planning never holds the audience in
memory and resumes where it stopped after a crash.
"""

from __future__ import annotations

from typing import Any

from pushcore.db import webhooks
from pushcore.db.pool import Pool, Record

# Installations a primary_only send reaches: anonymous ones, and for each user the primary
# installation, or the most recently registered one when the user has chosen none.
PRIMARY_FILTER = """
    (NOT $7 OR i.user_id IS NULL OR i.id = coalesce(
        (SELECT u.primary_installation_id FROM users u WHERE u.id = i.user_id),
        (SELECT max(j.id) FROM installations j WHERE j.user_id = i.user_id AND j.push_enabled)))
"""

# Writes the page as batches (one platform per batch) and moves the message forward.
# $1 message, $2 claim, $3 batch size, $4 app, $6 the cursor (for keyset pages the page's
# last id is added in SQL); ``page`` is the CTE that selects (id, platform).
_WRITE_TEMPLATE = """
, guard AS (
    SELECT id FROM messages WHERE id = $1 AND plan_claims = $2
      AND status IN ('queued', 'sending') FOR UPDATE
), numbered AS (
    SELECT id, platform,
           (row_number() OVER (PARTITION BY platform ORDER BY id) - 1) / $3 AS n
    FROM page WHERE EXISTS (SELECT 1 FROM guard)
), ins AS (
    INSERT INTO batches (message_id, app_id, platform, installation_ids)
    SELECT $1, $4, platform, array_agg(id ORDER BY id) FROM numbered GROUP BY platform, n
    RETURNING id, platform, cardinality(installation_ids) AS size
), upd AS (
    UPDATE messages m SET
        targeted = m.targeted + (SELECT coalesce(sum(size), 0) FROM ins),
        open_batches = m.open_batches + (SELECT count(*) FROM ins),
        plan_cursor = {cursor}
    FROM guard WHERE m.id = guard.id
    RETURNING m.id
)
SELECT (SELECT count(*) FROM page) AS seen, (SELECT max(id) FROM page) AS last_id,
       EXISTS (SELECT 1 FROM upd) AS owned,
       coalesce((SELECT array_agg(id ORDER BY id) FROM ins), '{}') AS batch_ids,
       coalesce((SELECT array_agg(platform ORDER BY id) FROM ins), '{}') AS platforms
"""


_KEYSET_WRITE = _WRITE_TEMPLATE.replace(
    "{cursor}", "$6::jsonb || jsonb_build_object('after', coalesce((SELECT max(id) FROM page), $5))"
)
_LIST_WRITE = _WRITE_TEMPLATE.replace("{cursor}", "$6::jsonb")


async def claim(pool: Pool, message_id: int, lease_seconds: float) -> Record | None:
    """Take the message for planning (it is due, not planned, and nobody else's lease
    holds); it becomes ``sending`` (a ``message.status`` webhook event when it was
    ``queued``)."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH old AS (SELECT id, status FROM messages WHERE id = $1), c AS (
            UPDATE messages m SET plan_claims = m.plan_claims + 1,
                plan_lease_until = now() + make_interval(secs => $2),
                status = 'sending', started_at = coalesce(m.started_at, now())
            WHERE m.id = $1 AND NOT m.planned AND m.status IN ('queued', 'sending')
              AND (m.send_at IS NULL OR m.send_at <= now())
              AND (m.plan_lease_until IS NULL OR m.plan_lease_until < now())
            RETURNING m.*
        ), hooks AS ({webhooks.status_events("c u JOIN old ON old.id = u.id", "old.status")}
        )
        SELECT c.id, c.app_id, c.plan_claims, c.plan_cursor, c.request, c.platforms,
               c.primary_only
        FROM c
        """,
        message_id,
        lease_seconds,
    )
    return row


async def keyset_page(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    platform: str,
    after: int,
    limit: int,
    batch_size: int,
    tags: list[str] | None,
    match_all: bool,
    primary_only: bool,
    cursor: dict[str, Any],
) -> Record:
    """One page of an ``all`` or ``tags`` target: the app's installations of one platform
    after id ``after``, in id order, on the (app_id, platform, id) index."""
    op = "@>" if match_all else "&&"
    tag_filter = f"AND ($8::text[] IS NULL OR i.tags {op} $8::text[])"
    row = await pool.fetchrow(
        f"""
        WITH page AS (
            SELECT i.id, i.platform FROM installations i
            WHERE i.app_id = $4 AND i.platform = $9 AND i.push_enabled AND i.id > $5
              {tag_filter} AND {PRIMARY_FILTER}
            ORDER BY i.id LIMIT $10
        ) {_KEYSET_WRITE}
        """,
        message_id,
        claim,
        batch_size,
        app_id,
        after,
        cursor,
        primary_only,
        tags,
        platform,
        limit,
    )
    assert row is not None
    return row


LIST_SOURCES = {
    # target kind -> (FROM ..., match condition on the chunk $5)
    "external_user_ids": (
        "users u JOIN installations i ON i.user_id = u.id",
        "u.app_id = $4 AND u.external_id = ANY($5::text[])",
    ),
    "emails": (
        "users u JOIN installations i ON i.user_id = u.id",
        "u.app_id = $4 AND lower(u.email) = ANY($5::text[]) AND u.email IS NOT NULL",
    ),
    "msisdns": (
        "users u JOIN installations i ON i.user_id = u.id",
        "u.app_id = $4 AND u.msisdn = ANY($5::text[]) AND u.msisdn IS NOT NULL",
    ),
    "installation_ids": (
        "installations i",
        "i.app_id = $4 AND i.public_id = ANY($5::text[]::uuid[])",
    ),
}


async def list_page(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    kind: str,
    chunk: list[str],
    platforms: list[str],
    batch_size: int,
    primary_only: bool,
    cursor: dict[str, Any],
) -> Record:
    """One chunk of a list target (users, emails, phones or installations), resolved with
    ``= ANY`` in one statement whatever the chunk's length."""
    source, condition = LIST_SOURCES[kind]
    row = await pool.fetchrow(
        f"""
        WITH page AS (
            SELECT DISTINCT i.id, i.platform FROM {source}
            WHERE {condition} AND i.push_enabled AND i.platform = ANY($8::text[])
              AND {PRIMARY_FILTER}
        ) {_LIST_WRITE}
        """,
        message_id,
        claim,
        batch_size,
        app_id,
        chunk,
        cursor,
        primary_only,
        platforms,
    )
    assert row is not None
    return row


async def tokens_page(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    batch_size: int,
    platforms: list[str],
    tokens: list[str],
    p256dh: list[str | None],
    auth: list[str | None],
) -> Record:
    """A raw-token target's batches, all in one statement.  The addresses are numbered
    -1, -2, ... in the batches' ``installation_ids`` (no installation has a negative id) and
    travel in the batch rows' ``tokens``, ``p256dh`` and ``auth``, aligned with them."""
    row = await pool.fetchrow(
        """
        WITH page AS (
            SELECT -t.k AS id, t.platform, t.token, t.p256dh, t.auth
            FROM unnest($5::text[], $6::text[], $7::text[], $8::text[])
                 WITH ORDINALITY AS t(platform, token, p256dh, auth, k)
        ), guard AS (
            SELECT id FROM messages WHERE id = $1 AND plan_claims = $2
              AND status IN ('queued', 'sending') FOR UPDATE
        ), numbered AS (
            SELECT page.*, (row_number() OVER (PARTITION BY platform ORDER BY id) - 1) / $3 AS n
            FROM page WHERE EXISTS (SELECT 1 FROM guard)
        ), ins AS (
            INSERT INTO batches (message_id, app_id, platform, installation_ids, tokens,
                                 p256dh, auth)
            SELECT $1, $4, platform, array_agg(id ORDER BY id), array_agg(token ORDER BY id),
                   array_agg(p256dh ORDER BY id), array_agg(auth ORDER BY id)
            FROM numbered GROUP BY platform, n
            RETURNING id, platform, cardinality(installation_ids) AS size
        ), upd AS (
            UPDATE messages m SET
                targeted = m.targeted + (SELECT coalesce(sum(size), 0) FROM ins),
                open_batches = m.open_batches + (SELECT count(*) FROM ins),
                -- written: a planner taking over after a crash writes them not again
                plan_cursor = '{"tokens": "written"}'
            FROM guard WHERE m.id = guard.id
            RETURNING m.id
        )
        SELECT EXISTS (SELECT 1 FROM upd) AS owned,
               coalesce((SELECT array_agg(id ORDER BY id) FROM ins), '{}') AS batch_ids,
               coalesce((SELECT array_agg(platform ORDER BY id) FROM ins), '{}') AS platforms
        """,
        message_id,
        claim,
        batch_size,
        app_id,
        platforms,
        tokens,
        p256dh,
        auth,
    )
    assert row is not None
    return row


async def finish(pool: Pool, message_id: int, claim: int) -> Record | None:
    """Mark planning complete; a message with no batches left open is done at once (an
    empty audience, an inbox-only send, or every batch already finished: the send workers
    may finish the last batch before the planner gets here, and then this statement, not
    the batch's, is the one that makes the message done, so it writes the
    ``message.status`` and ``message.done`` webhook events)."""
    row: Record | None = await pool.fetchrow(
        f"""
        -- locked first (the update reads it): a batch's write-back committing meanwhile
        -- is waited for, so the status compared is the one this update changes (no event
        -- missed, none written twice)
        WITH old AS (SELECT id, status FROM messages WHERE id = $1 FOR UPDATE), c AS (
            UPDATE messages m SET planned = true, plan_lease_until = NULL,
                status = CASE WHEN m.open_batches = 0 AND m.status = 'sending' THEN 'done'
                              ELSE m.status END,
                finished_at = CASE WHEN m.open_batches = 0 AND m.status = 'sending' THEN now()
                                   ELSE m.finished_at END
            FROM old WHERE m.id = old.id AND m.plan_claims = $2
            RETURNING m.*
        ), hooks AS ({webhooks.status_events("c u JOIN old ON old.id = u.id", "old.status")}
        )
        SELECT c.status FROM c
        """,
        message_id,
        claim,
    )
    return row


async def extend(pool: Pool, message_id: int, claim: int, lease_seconds: float) -> bool:
    row = await pool.fetchrow(
        """
        UPDATE messages SET plan_lease_until = now() + make_interval(secs => $3)
        WHERE id = $1 AND plan_claims = $2 AND status IN ('queued', 'sending')
        RETURNING id
        """,
        message_id,
        claim,
        lease_seconds,
    )
    return row is not None

"""The planner's statements: claim a message for planning, write batches page by page.

Each page is one statement that reads up to ``batch_size * batches_per_statement``
installation ids, writes them as batches, adds to the message's counters and advances its
cursor, guarded by the planner's claim number: a planner whose lease expired (and whose
message another planner took over) writes nothing.  So planning never holds the audience in
memory and resumes where it stopped after a crash.  A local-time message's pages are
grouped by due time in the same statement, and the batches not yet due are written held.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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

# Writes the page as batches (one platform and due time per batch) and moves the message
# forward.  $1 message, $2 claim, $3 batch size, $4 app, $6 the cursor (for keyset pages the
# page's last id is added in SQL); ``page`` is the CTE that selects (id, platform, tz).
# Local-time delivery ({zones}/{dues}: every zone and the message's instant in it,
# {default_due}: the default zone's, {ttl}: seconds or NULL) groups the page by due time:
# a batch due later is written held (not enqueued: the reaper releases it) and counted
# waiting.  For any other message {default_due} is NULL and every due time is NULL.
_WRITE_TEMPLATE = """
, guard AS (
    SELECT id FROM messages WHERE id = $1 AND plan_claims = $2
      AND status IN ('scheduled', 'queued', 'sending') FOR UPDATE
), zoned AS (
    SELECT p.id, p.platform,
           CASE WHEN {default_due}::timestamptz IS NOT NULL
                THEN coalesce(z.due, {default_due}::timestamptz) END AS due
    FROM page p
    LEFT JOIN unnest({zones}::text[], {dues}::timestamptz[]) AS z(zone, due) ON z.zone = p.tz
), numbered AS (
    SELECT id, platform, due,
           (row_number() OVER (PARTITION BY platform, due ORDER BY id) - 1) / $3 AS n
    FROM zoned WHERE EXISTS (SELECT 1 FROM guard)
), ins AS (
    INSERT INTO batches (message_id, app_id, platform, installation_ids, not_before, due_at,
                         expires_at, held)
    SELECT $1, $4, platform, array_agg(id ORDER BY id), due, due,
           due + make_interval(secs => {ttl}::double precision),
           coalesce(due > clock_now(), false)
    FROM numbered GROUP BY platform, due, n
    RETURNING id, platform, held, cardinality(installation_ids) AS size
), upd AS (
    UPDATE messages m SET
        targeted = m.targeted + (SELECT coalesce(sum(size), 0) FROM ins),
        open_batches = m.open_batches + (SELECT count(*) FROM ins),
        waiting = m.waiting + (SELECT coalesce(sum(size), 0) FROM ins WHERE held),
        plan_cursor = {cursor}
    FROM guard WHERE m.id = guard.id
    RETURNING m.id
)
SELECT (SELECT count(*) FROM page) AS seen, {last_key} AS last_id, {last_zone} AS last_zone,
       EXISTS (SELECT 1 FROM upd) AS owned,
       coalesce((SELECT array_agg(id ORDER BY id) FROM ins WHERE NOT held), '{}') AS batch_ids,
       coalesce((SELECT array_agg(platform ORDER BY id) FROM ins WHERE NOT held), '{}')
           AS platforms
"""
# a page's time zone column: read only for a local-time message ({default_due} given)
_TZ = "CASE WHEN {default_due}::timestamptz IS NULL THEN NULL ELSE i.device ->> 'time_zone' END"


def _local(sql: str, first: int) -> str:
    """``sql`` with the local-time parameters numbered from ``$first``."""
    names = ("zones", "dues", "default_due", "ttl")
    for k, name in enumerate(names):
        sql = sql.replace("{" + name + "}", f"${first + k}")
    return sql


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A local-time message's due times: every zone with its instant, the default zone's
    instant, and the TTL each batch's expiry counts from its own instant."""

    zones: list[str]
    dues: list[dt.datetime]
    default_due: dt.datetime
    ttl_seconds: int | None

    def args(self) -> tuple[Any, ...]:
        return self.zones, self.dues, self.default_due, self.ttl_seconds


NO_LOCAL_TIME: tuple[Any, ...] = ([], [], None, None)


def _id_ordered(sql: str) -> str:
    """``sql`` for a page in id order: its last key is its greatest id."""
    return sql.replace("{last_key}", "(SELECT max(id) FROM page)").replace(
        "{last_zone}", "NULL::text"
    )


_KEYSET_WRITE = _id_ordered(
    _WRITE_TEMPLATE.replace(
        "{cursor}",
        "$6::jsonb || jsonb_build_object('after', coalesce((SELECT max(id) FROM page), $5))",
    )
)
# A local-time keyset page is read in (zone, id) order on installations_zone_keyset, so
# that a page holds few zones and its batches stay full (in id order, a page of 10,000
# spread over 300 zones would make batches of ~33); its cursor is the last (zone, id).
_ZONE_KEY = "coalesce(i.device ->> 'time_zone', '')"
# (the page's last key is sorted out once, in ``last``, a CTE the page query adds)
_ZONED_KEYSET_WRITE = (
    _WRITE_TEMPLATE.replace(
        "{cursor}",
        "$6::jsonb || coalesce((SELECT jsonb_build_object('zone', tz, 'after', id) FROM last), "
        "jsonb_build_object('zone', $15::text, 'after', $5))",
    )
    .replace("{last_key}", "(SELECT id FROM last)")
    .replace("{last_zone}", "(SELECT tz FROM last)")
)
_LIST_WRITE = _id_ordered(_WRITE_TEMPLATE.replace("{cursor}", "$6::jsonb"))


async def claim(pool: Pool, message_id: int, lease_seconds: float) -> Record | None:
    """Take the message for planning (it is due, not planned, and nobody else's lease
    holds); it becomes ``sending`` (a ``message.status`` webhook event when it was
    ``queued``), except a local-time message, which stays ``scheduled`` until its last
    zone is due."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH old AS (SELECT id, status FROM messages WHERE id = $1), c AS (
            UPDATE messages m SET plan_claims = m.plan_claims + 1,
                plan_lease_until = now() + make_interval(secs => $2),
                status = CASE WHEN m.local_from IS NULL THEN 'sending' ELSE m.status END,
                started_at = coalesce(m.started_at, now())
            WHERE m.id = $1 AND NOT m.planned
              AND (m.status IN ('queued', 'sending')
                   OR (m.status = 'scheduled' AND m.local_from IS NOT NULL))
              AND (m.send_at IS NULL OR m.send_at <= clock_now())
              AND (m.plan_lease_until IS NULL OR m.plan_lease_until < now())
            RETURNING m.*
        ), hooks AS ({webhooks.status_events("c u JOIN old ON old.id = u.id", "old.status")}
        )
        SELECT c.id, c.app_id, c.plan_claims, c.plan_cursor, c.request, c.platforms,
               c.primary_only, c.local_from
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
    local: LocalTime | None = None,
    zone_after: str = "",
) -> Record:
    """One page of an ``all`` or ``tags`` target: the app's installations of one platform
    after id ``after``, in id order, on the (app_id, platform, id) index; for a local-time
    message after (``zone_after``, ``after``) in (zone, id) order, on the
    (app_id, platform, zone, id) index, and grouped by due time in the same statement."""
    op = "@>" if match_all else "&&"
    tag_filter = f"AND ($8::text[] IS NULL OR i.tags {op} $8::text[])"
    if local is None:
        sql = f"""
            WITH page AS (
                SELECT i.id, i.platform, NULL::text AS tz FROM installations i
                WHERE i.app_id = $4 AND i.platform = $9 AND i.push_enabled AND i.id > $5
                  {tag_filter} AND {PRIMARY_FILTER}
                ORDER BY i.id LIMIT $10
            ) {_KEYSET_WRITE}
            """
        extra: tuple[Any, ...] = NO_LOCAL_TIME
    else:
        sql = f"""
            WITH page AS (
                SELECT i.id, i.platform, {_ZONE_KEY} AS tz FROM installations i
                WHERE i.app_id = $4 AND i.platform = $9 AND i.push_enabled
                  AND ({_ZONE_KEY}, i.id) > ($15::text, $5)
                  {tag_filter} AND {PRIMARY_FILTER}
                ORDER BY {_ZONE_KEY}, i.id LIMIT $10
            ), last AS (
                SELECT tz, id FROM page ORDER BY tz DESC, id DESC LIMIT 1
            ) {_ZONED_KEYSET_WRITE}
            """
        extra = (*local.args(), zone_after)
    row = await pool.fetchrow(
        _local(sql, 11),
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
        *extra,
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
    local: LocalTime | None = None,
) -> Record:
    """One chunk of a list target (users, emails, phones or installations), resolved with
    ``= ANY`` in one statement whatever the chunk's length (grouped by due time for a
    local-time message)."""
    source, condition = LIST_SOURCES[kind]
    sql = f"""
        WITH page AS (
            SELECT DISTINCT i.id, i.platform, {_TZ} AS tz FROM {source}
            WHERE {condition} AND i.push_enabled AND i.platform = ANY($8::text[])
              AND {PRIMARY_FILTER}
        ) {_LIST_WRITE}
        """
    row = await pool.fetchrow(
        _local(sql, 9),
        message_id,
        claim,
        batch_size,
        app_id,
        chunk,
        cursor,
        primary_only,
        platforms,
        *(local.args() if local else NO_LOCAL_TIME),
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
              AND status IN ('scheduled', 'queued', 'sending') FOR UPDATE
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
    ``message.status`` and ``message.done`` webhook events); a local-time message none of
    whose batches is held any more becomes ``sending`` (its last zones were due while it
    was planned)."""
    row: Record | None = await pool.fetchrow(
        f"""
        -- locked first (the update reads it): a batch's write-back committing meanwhile
        -- is waited for, so the status compared is the one this update changes (no event
        -- missed, none written twice)
        WITH old AS (SELECT id, status FROM messages WHERE id = $1 FOR UPDATE), d AS (
            UPDATE messages m SET planned = true, plan_lease_until = NULL,
                status = CASE
                    WHEN m.open_batches = 0 AND m.status IN ('scheduled', 'sending') THEN 'done'
                    WHEN m.status = 'scheduled' AND m.waiting = 0 THEN 'sending'
                    ELSE m.status END,
                finished_at = CASE
                    WHEN m.open_batches = 0 AND m.status IN ('scheduled', 'sending') THEN now()
                    ELSE m.finished_at END
            FROM old WHERE m.id = old.id AND m.plan_claims = $2
            RETURNING {webhooks.MESSAGE_COLUMNS}
        ), hooks AS ({webhooks.status_events("d u JOIN old ON old.id = u.id", "old.status")}
        )
        SELECT d.status FROM d
        """,
        message_id,
        claim,
    )
    return row


async def extend(pool: Pool, message_id: int, claim: int, lease_seconds: float) -> bool:
    row = await pool.fetchrow(
        """
        UPDATE messages SET plan_lease_until = now() + make_interval(secs => $3)
        WHERE id = $1 AND plan_claims = $2 AND status IN ('scheduled', 'queued', 'sending')
        RETURNING id
        """,
        message_id,
        claim,
        lease_seconds,
    )
    return row is not None

"""The inbox's statements: storing a message for its users, reading a user's inbox, seen and
delete, and the message's ``seen`` count.

Storage (``migrations/0008_inbox.sql``): a whole-app send is one ``inbox_messages`` row
(audience ``all``) that every user of the app created before it was sent sees; every other
target is resolved to users when it is planned and written as one ``inbox_entries`` row per
user (``personal``).  A user's seen/deleted state on a broadcast is an entry row written when
the user acts.  Reading merges the user's entries with the app's broadcasts since the user
was created, so its cost follows what the user holds, not what the app has sent.

Writing statements of the planner are guarded by its claim number and the message's status
(as the batch pages are): a planner that lost its lease, or a cancelled message, writes
nothing.  Entries are inserted ``ON CONFLICT DO NOTHING`` and ``inboxed`` grows by what was
inserted, so a page replayed after a crash neither duplicates entries nor counts twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pushcore.db.pool import Connection, Pool, Record

# The users a list target reaches, by target kind: ``{app}`` and ``{values}`` are parameter
# placeholders.  Emails and phones reach known users only; installation ids reach the users
# the installations belong to.
USER_SOURCES = {
    "external_user_ids": "SELECT u.id FROM users u WHERE u.app_id = {app} "
    "AND u.external_id = ANY({values}::text[])",
    "emails": "SELECT u.id FROM users u WHERE u.app_id = {app} AND u.email IS NOT NULL "
    "AND lower(u.email) = ANY({values}::text[])",
    "msisdns": "SELECT u.id FROM users u WHERE u.app_id = {app} AND u.msisdn IS NOT NULL "
    "AND u.msisdn = ANY({values}::text[])",
    "installation_ids": "SELECT DISTINCT i.user_id AS id FROM installations i "
    "WHERE i.app_id = {app} AND i.user_id IS NOT NULL "
    "AND i.public_id = ANY({values}::text[]::uuid[])",
}

# An external_user_ids target naming users the app has never seen creates them, so that
# their inbox waits for their first login.
_NEW_USERS = (
    "INSERT INTO users (app_id, external_id) SELECT {app}, v FROM unnest({values}::text[]) v "
    "ON CONFLICT (app_id, external_id) DO NOTHING RETURNING id"
)


def audience_ctes(kind: str, *, app: str, values: str) -> str:
    """CTEs ``inbox_new`` (users created) and ``inbox_users`` (ids of every user reached)
    for a list target, to be put into a ``WITH``; parameters by placeholder text."""
    known = USER_SOURCES[kind].format(app=app, values=values)
    if kind == "external_user_ids":
        new = _NEW_USERS.format(app=app, values=values)
    else:
        new = "SELECT NULL::bigint AS id WHERE false"
    return f"inbox_new AS ({new}), inbox_users AS ({known} UNION SELECT id FROM inbox_new)"


@dataclass(frozen=True, slots=True)
class InboxPlan:
    """How a message enters the inboxes: its topic and expiry (None: never)."""

    topic: str | None
    expires_at: dt.datetime | None


# -- planning ---------------------------------------------------------------------------------

_GUARD = """
    guard AS (
        SELECT id FROM messages WHERE id = $1 AND plan_claims = $2
          AND status IN ('queued', 'sending') FOR UPDATE
    )
"""


async def start(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    audience: str,
    plan: InboxPlan,
) -> Record | None:
    """The message's inbox row, created at the first call (a broadcast is then complete:
    ``inboxed`` is the number of the app's users); its ``planned`` and ``cursor``.  None
    when the planner no longer owns the message."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH {_GUARD}, ins AS (
            INSERT INTO inbox_messages (message_id, app_id, audience, topic, expires_at, planned)
            SELECT $1, $3, $4, $5, $6, $4 = 'all' FROM guard
            ON CONFLICT (message_id) DO NOTHING
            RETURNING planned, cursor, sent_at
        ), counted AS (
            UPDATE messages m SET inboxed = (
                SELECT count(*) FROM users u WHERE u.app_id = $3 AND u.created_at <= ins.sent_at)
            FROM ins WHERE m.id = $1 AND $4 = 'all'
        )
        SELECT planned, cursor FROM ins
        UNION ALL
        SELECT x.planned, x.cursor FROM inbox_messages x, guard
        WHERE x.message_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)
        """,
        message_id,
        claim,
        app_id,
        audience,
        plan.topic,
        plan.expires_at,
    )
    return row


async def _store_users(
    pool: Pool, ctes: str, args: list[Any], cursor: dict[str, Any], done: bool
) -> bool:
    """Write entries for ``inbox_users`` (defined by ``ctes`` with parameters from $5),
    count them, move the cursor; whether the planner still owned the message."""
    owned = await pool.fetchval(
        f"""
        WITH {_GUARD}, {ctes}, ins AS (
            INSERT INTO inbox_entries (user_id, message_id, personal)
            SELECT u.id, $1, true FROM inbox_users u WHERE EXISTS (SELECT 1 FROM guard)
            ON CONFLICT (user_id, message_id) DO NOTHING
            RETURNING 1
        ), counted AS (
            UPDATE messages m SET inboxed = m.inboxed + (SELECT count(*) FROM ins)
            FROM guard WHERE m.id = guard.id
        ), moved AS (
            UPDATE inbox_messages x SET cursor = $3::jsonb, planned = $4
            FROM guard WHERE x.message_id = guard.id
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM moved)
        """,
        *args[:2],
        cursor,
        done,
        *args[2:],
    )
    return bool(owned)


async def store_list_chunk(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    kind: str,
    chunk: list[str],
    cursor: dict[str, Any],
    done: bool,
) -> bool:
    """One chunk of a list target into the inboxes (users created for unknown external
    ids); whether the planner still owned the message."""
    ctes = audience_ctes(kind, app="$5", values="$6")
    return await _store_users(pool, ctes, [message_id, claim, app_id, chunk], cursor, done)


async def store_tag_page(
    pool: Pool,
    *,
    message_id: int,
    claim: int,
    app_id: int,
    tags: list[str],
    match_all: bool,
    after: int,
    limit: int,
) -> tuple[bool, int | None]:
    """The next ``limit`` users (by id, after ``after``) with an installation carrying the
    tags, into the inboxes: (owned, the page's last user id, or None when none was left).
    The same match as the push planner's (the installations' own tags), evaluated now: the
    audience as it is at send time."""
    op = "@>" if match_all else "&&"
    page = await pool.fetchrow(
        f"""
        SELECT max(u.id) AS last, count(*) AS n FROM (
            SELECT u.id FROM users u
            WHERE u.app_id = $1 AND u.id > $2 AND EXISTS (
                SELECT 1 FROM installations i WHERE i.user_id = u.id AND i.tags {op} $3::text[])
            ORDER BY u.id LIMIT $4
        ) u
        """,
        app_id,
        after,
        tags,
        limit,
    )
    assert page is not None
    last: int | None = page["last"]
    done = page["n"] < limit
    # the page's users again, by their id range, in the writing statement (a user whose
    # tags changed in between is taken as it is then: the audience at send time)
    ctes = (
        "inbox_users AS (SELECT u.id FROM users u WHERE u.app_id = $5 AND u.id > $6 "
        "AND u.id <= $7 AND EXISTS (SELECT 1 FROM installations i WHERE i.user_id = u.id "
        f"AND i.tags {op} $8::text[]))"
    )
    upto = last if last is not None else after
    owned = await _store_users(
        pool, ctes, [message_id, claim, app_id, after, upto, tags], {"after": upto}, done
    )
    return owned, None if done else last


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose inbox a call reads: the user's id, app and creation time (broadcasts sent
    before the user existed are not the user's)."""

    user_id: int
    app_id: int
    since: dt.datetime


async def device_owner(
    pool: Pool, public_id: uuid.UUID, secret_hash: bytes
) -> tuple[bool, Owner | None]:
    """(installation found, its user's inbox or None when it is anonymous)."""
    row = await pool.fetchrow(
        """
        SELECT u.id, u.app_id, u.created_at FROM installations i
        LEFT JOIN users u ON u.id = i.user_id
        WHERE i.public_id = $1 AND i.secret_hash = $2
        """,
        public_id,
        secret_hash,
    )
    if row is None:
        return False, None
    if row["id"] is None:
        return True, None
    return True, Owner(row["id"], row["app_id"], row["created_at"])


async def server_owner(pool: Pool, app_id: int, external_id: str) -> Owner | None:
    row = await pool.fetchrow(
        "SELECT id, app_id, created_at FROM users WHERE app_id = $1 AND external_id = $2",
        app_id,
        external_id,
    )
    return None if row is None else Owner(row["id"], row["app_id"], row["created_at"])


# What a user's inbox holds now: its own entries and the app's broadcasts since the user
# exists, minus what it deleted and what expired.  $1 user, $2 app, $3 user created at.
_VISIBLE = """
    visible AS (
        SELECT b.message_id, b.sent_at, b.topic, e.seen_at
        FROM inbox_entries e JOIN inbox_messages b ON b.message_id = e.message_id
        WHERE e.user_id = $1 AND e.personal AND NOT e.deleted
          AND (b.expires_at IS NULL OR b.expires_at > now())
        UNION ALL
        SELECT b.message_id, b.sent_at, b.topic, s.seen_at
        FROM inbox_messages b
        LEFT JOIN inbox_entries s ON s.user_id = $1 AND s.message_id = b.message_id
        WHERE b.app_id = $2 AND b.audience = 'all' AND b.sent_at >= $3
          AND (b.expires_at IS NULL OR b.expires_at > now())
          AND s.deleted IS NOT TRUE
    )
"""


@dataclass(frozen=True, slots=True)
class Page:
    """A page of an inbox, newest first, with the inbox's counts."""

    rows: list[Record]
    total: int
    unread: int
    total_filtered: int
    unread_filtered: int


async def read(
    pool: Pool,
    owner: Owner,
    *,
    topics: list[str] | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Page:
    """Up to ``limit`` messages (filtered by topics and ``since <= sent_at < until``,
    strictly older than the keyset position ``after``), with the counts, in one statement.
    Each row: message_id (internal, for the cursor), public_id, sent_at, topic, seen_at,
    notification."""
    rows = await pool.fetch(
        f"""
        WITH {_VISIBLE}, filtered AS (
            SELECT * FROM visible
            WHERE ($4::text[] IS NULL OR topic = ANY($4::text[]))
              AND ($5::timestamptz IS NULL OR sent_at >= $5)
              AND ($6::timestamptz IS NULL OR sent_at < $6)
        ), counts AS (
            SELECT (SELECT count(*) FROM visible) AS total,
                   (SELECT count(*) FROM visible WHERE seen_at IS NULL) AS unread,
                   (SELECT count(*) FROM filtered) AS total_filtered,
                   (SELECT count(*) FROM filtered WHERE seen_at IS NULL) AS unread_filtered
        ), page AS (
            SELECT f.message_id, f.sent_at, f.topic, f.seen_at FROM filtered f
            WHERE $7::timestamptz IS NULL OR (f.sent_at, f.message_id) < ($7, $8)
            ORDER BY f.sent_at DESC, f.message_id DESC LIMIT $9
        )
        SELECT c.total, c.unread, c.total_filtered, c.unread_filtered,
               p.message_id, p.sent_at, p.topic, p.seen_at, m.public_id, m.notification
        FROM counts c
        LEFT JOIN page p ON true
        LEFT JOIN messages m ON m.id = p.message_id
        ORDER BY p.sent_at DESC, p.message_id DESC
        """,
        owner.user_id,
        owner.app_id,
        owner.since,
        topics,
        since,
        until,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    first = rows[0]
    return Page(
        rows=[r for r in rows if r["message_id"] is not None],
        total=first["total"],
        unread=first["unread"],
        total_filtered=first["total_filtered"],
        unread_filtered=first["unread_filtered"],
    )


async def unread(conn: Pool | Connection, owner: Owner) -> int:
    count: int = await conn.fetchval(
        f"WITH {_VISIBLE} SELECT count(*) FROM visible WHERE seen_at IS NULL",
        owner.user_id,
        owner.app_id,
        owner.since,
    )
    return count


# The messages of the app named by public id ($4) that are in the user's inbox now: its own
# entries (personal) and broadcasts (state rows written on demand).
_WANTED = """
    wanted AS (
        SELECT b.message_id, b.audience FROM messages m
        JOIN inbox_messages b ON b.message_id = m.id
        WHERE m.app_id = $2 AND m.public_id = ANY($4::uuid[])
          AND (b.expires_at IS NULL OR b.expires_at > now())
          AND (b.audience = 'users' OR b.sent_at >= $3)
    )
"""


async def mark_seen(pool: Pool, owner: Owner, message_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Mark messages seen (the first ``seen_at`` stays); return (unread count afterwards,
    ids ignored: not in this user's inbox).  Both statements in one transaction, so the
    count includes this call's marks."""
    wanted = list(dict.fromkeys(message_ids))
    async with pool.acquire() as conn, conn.transaction():
        matched: int = await conn.fetchval(
            f"""
            WITH {_WANTED}, own AS (
                UPDATE inbox_entries e SET seen_at = coalesce(e.seen_at, now())
                FROM wanted w
                WHERE e.user_id = $1 AND e.message_id = w.message_id AND w.audience = 'users'
                  AND e.personal AND NOT e.deleted
                RETURNING 1
            ), broadcast AS (
                INSERT INTO inbox_entries AS e (user_id, message_id, personal, seen_at)
                SELECT $1, w.message_id, false, now() FROM wanted w WHERE w.audience = 'all'
                ON CONFLICT (user_id, message_id) DO UPDATE
                    SET seen_at = coalesce(e.seen_at, excluded.seen_at)
                    WHERE NOT e.deleted
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM own) + (SELECT count(*) FROM broadcast)
            """,
            owner.user_id,
            owner.app_id,
            owner.since,
            wanted,
        )
        left = await unread(conn, owner)
    return left, len(wanted) - matched


async def delete(pool: Pool, owner: Owner, message_id: uuid.UUID) -> bool:
    """Remove a message from the user's inbox (on every device); False if it was not
    there.  The entry stays, marked deleted, so that the message's ``seen`` count keeps
    the user."""
    removed = await pool.fetchval(
        f"""
        WITH {_WANTED}, own AS (
            UPDATE inbox_entries e SET deleted = true
            FROM wanted w
            WHERE e.user_id = $1 AND e.message_id = w.message_id AND w.audience = 'users'
              AND e.personal AND NOT e.deleted
            RETURNING 1
        ), broadcast AS (
            INSERT INTO inbox_entries AS e (user_id, message_id, personal, deleted)
            SELECT $1, w.message_id, false, true FROM wanted w WHERE w.audience = 'all'
            ON CONFLICT (user_id, message_id) DO UPDATE SET deleted = true WHERE NOT e.deleted
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM own) OR EXISTS (SELECT 1 FROM broadcast)
        """,
        owner.user_id,
        owner.app_id,
        owner.since,
        [message_id],
    )
    return bool(removed)


# A message's ``seen`` count as a column expression on alias ``m`` (messages).
SEEN_COLUMN = (
    "(SELECT count(*) FROM inbox_entries s WHERE s.message_id = m.id "
    "AND s.seen_at IS NOT NULL) AS seen"
)

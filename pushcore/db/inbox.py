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

from pushcore.db.pool import Pool, Record
from pushcore.db.recipients import RECIPIENT_JSON

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


# Rows of a message's seen counter (by user id): concurrent marks of one broadcast by many
# users spread over this many row locks.
SEEN_SHARDS = 16


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
#
# Every call is one statement (one round trip): the ``owner`` CTE finds whose inbox it is
# from the credentials, ``visible`` is what that inbox holds now.  A call whose owner is not
# found answers ``found = 0``, and the caller says why (:func:`installation_anonymous`).


@dataclass(frozen=True, slots=True)
class Who:
    """Whose inbox a call reads: the user of an installation (by its secret) or a user of
    an app (by external id); ``sql`` selects the user's id, app and creation time from $1
    and $2."""

    sql: str
    first: Any
    second: Any


# The owner's columns: its id, app and creation time, its external id and what templated
# messages are rendered with for it (``recipient``: recipient JSON of the reading
# installation, see :func:`device` and :func:`user`).
_OWNER = f"u.id, u.app_id, u.created_at, u.external_id, {RECIPIENT_JSON} AS recipient"


def device(public_id: uuid.UUID, secret_hash: bytes) -> Who:
    """The user of an installation; it is the reading installation."""
    return Who(
        f"SELECT {_OWNER} FROM installations i JOIN users u "
        "ON u.id = i.user_id WHERE i.public_id = $1 AND i.secret_hash = $2",
        public_id,
        secret_hash,
    )


def user(app_id: int, external_id: str) -> Who:
    """A user of an app; the reading installation is its most recently updated one (none:
    its ``installation`` is all nulls)."""
    return Who(
        f"SELECT {_OWNER} FROM users u LEFT JOIN LATERAL (SELECT * FROM installations i "
        "WHERE i.user_id = u.id ORDER BY i.updated_at DESC, i.id DESC LIMIT 1) i ON true "
        "WHERE u.app_id = $1 AND u.external_id = $2",
        app_id,
        external_id,
    )


async def installation_anonymous(
    pool: Pool, public_id: uuid.UUID, secret_hash: bytes
) -> bool | None:
    """Why a device call found no inbox: True when the installation is anonymous, None
    when there is no such installation with this secret."""
    anonymous: bool | None = await pool.fetchval(
        "SELECT user_id IS NULL FROM installations WHERE public_id = $1 AND secret_hash = $2",
        public_id,
        secret_hash,
    )
    return anonymous


# What the owner's inbox holds now: its own entries and the app's broadcasts since the user
# exists, minus what it deleted and what expired.  ``kind``: 'users' (an entry of its own)
# or 'all' (a broadcast).  Broadcasts older than the user are not the user's: it was not
# among the app's users when they were sent.
_VISIBLE = """
    owner AS ({who}),
    visible AS (
        SELECT b.message_id, b.sent_at, b.topic, e.seen_at, b.audience AS kind
        FROM owner o JOIN inbox_entries e ON e.user_id = o.id
        JOIN inbox_messages b ON b.message_id = e.message_id
        WHERE e.personal AND NOT e.deleted AND (b.expires_at IS NULL OR b.expires_at > now())
        UNION ALL
        SELECT b.message_id, b.sent_at, b.topic, s.seen_at, b.audience
        FROM owner o JOIN inbox_messages b
            ON b.app_id = o.app_id AND b.audience = 'all' AND b.sent_at >= o.created_at
        LEFT JOIN inbox_entries s ON s.user_id = o.id AND s.message_id = b.message_id
        WHERE (b.expires_at IS NULL OR b.expires_at > now()) AND s.deleted IS NOT TRUE
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
    reader: dict[str, Any]  # recipient JSON of the reading installation and its user


async def read(
    pool: Pool,
    who: Who,
    *,
    topics: list[str] | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Page | None:
    """Up to ``limit`` messages (filtered by topics and ``since <= sent_at < until``,
    strictly older than the keyset position ``after``), with the counts; None when the
    owner is not found.  Each row: message_id (internal, for the cursor), public_id,
    sent_at, topic, seen_at, notification, and for a templated message the data a
    ``recipients`` send gave this user (``recipient_data``, else null)."""
    rows = await pool.fetch(
        f"""
        WITH {_VISIBLE.format(who=who.sql)}, filtered AS (
            SELECT *, ($3::text[] IS NULL OR topic = ANY($3::text[]))
                      AND ($4::timestamptz IS NULL OR sent_at >= $4)
                      AND ($5::timestamptz IS NULL OR sent_at < $5) AS kept
            FROM visible
        ), counts AS (
            SELECT (SELECT count(*) FROM owner) AS found, count(*) AS total,
                   count(*) FILTER (WHERE seen_at IS NULL) AS unread,
                   count(*) FILTER (WHERE kept) AS total_filtered,
                   count(*) FILTER (WHERE kept AND seen_at IS NULL) AS unread_filtered
            FROM filtered
        ), page AS (
            SELECT f.message_id, f.sent_at, f.topic, f.seen_at FROM filtered f
            WHERE f.kept AND ($6::timestamptz IS NULL OR (f.sent_at, f.message_id) < ($6, $7))
            ORDER BY f.sent_at DESC, f.message_id DESC LIMIT $8
        )
        SELECT c.found, c.total, c.unread, c.total_filtered, c.unread_filtered,
               (SELECT o.recipient FROM owner o) AS reader,
               p.message_id, p.sent_at, p.topic, p.seen_at, m.public_id, m.notification,
               mr.data AS recipient_data
        FROM counts c
        LEFT JOIN page p ON true
        LEFT JOIN messages m ON m.id = p.message_id
        LEFT JOIN message_recipients mr ON m.notification ? 'templated'
            AND mr.message_id = p.message_id
            AND mr.external_id = (SELECT o.external_id FROM owner o)
        ORDER BY p.sent_at DESC, p.message_id DESC
        """,
        who.first,
        who.second,
        topics,
        since,
        until,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    first = rows[0]
    if not first["found"]:
        return None
    return Page(
        rows=[r for r in rows if r["message_id"] is not None],
        total=first["total"],
        unread=first["unread"],
        total_filtered=first["total_filtered"],
        unread_filtered=first["unread_filtered"],
        reader=first["reader"],
    )


# The messages named by public id ($3) that are in the owner's inbox now.
_WANTED = """
    wanted AS (
        SELECT v.message_id, v.kind, v.seen_at FROM visible v
        WHERE v.message_id IN (
            SELECT m.id FROM messages m JOIN owner o ON m.app_id = o.app_id
            WHERE m.public_id = ANY($3::uuid[]))
    )
"""


async def mark_seen(pool: Pool, who: Who, message_ids: list[uuid.UUID]) -> tuple[int, int] | None:
    """Mark messages seen (the first ``seen_at`` stays); return (unread count afterwards,
    ids ignored: not in this user's inbox), or None when the owner is not found.  One
    statement: the count is the inbox as the statement saw it, less what it marked (a mark
    from another device committing meanwhile shows in the next call)."""
    wanted = list(dict.fromkeys(message_ids))
    row = await pool.fetchrow(
        f"""
        WITH {_VISIBLE.format(who=who.sql)}, {_WANTED}, own AS (
            UPDATE inbox_entries e SET seen_at = now()
            FROM wanted w, owner o
            WHERE e.user_id = o.id AND e.message_id = w.message_id AND w.kind = 'users'
              AND e.seen_at IS NULL
            RETURNING e.message_id
        ), broadcast AS (
            INSERT INTO inbox_entries AS e (user_id, message_id, personal, seen_at)
            SELECT o.id, w.message_id, false, now() FROM wanted w, owner o
            WHERE w.kind = 'all'
            ON CONFLICT (user_id, message_id) DO UPDATE SET seen_at = excluded.seen_at
                WHERE NOT e.deleted AND e.seen_at IS NULL
            RETURNING e.message_id
        ), counted AS (
            -- only what this statement marked: a concurrent mark of the same message by
            -- another device finds seen_at set once this one commits, and counts nothing.
            -- In message order: two users of one shard marking the same messages lock
            -- the counter rows in the same order, so they wait for each other instead of
            -- deadlocking.
            INSERT INTO inbox_seen AS c (message_id, shard, n)
            SELECT x.message_id, (SELECT o.id % {SEEN_SHARDS} FROM owner o), 1
            FROM (SELECT message_id FROM own UNION ALL SELECT message_id FROM broadcast) x
            ORDER BY x.message_id
            ON CONFLICT (message_id, shard) DO UPDATE SET n = c.n + 1
        )
        SELECT (SELECT count(*) FROM owner) AS found,
               (SELECT count(*) FROM visible WHERE seen_at IS NULL)
             - (SELECT count(*) FROM wanted WHERE seen_at IS NULL) AS unread,
               (SELECT count(*) FROM wanted) AS matched
        """,
        who.first,
        who.second,
        wanted,
    )
    assert row is not None
    if not row["found"]:
        return None
    return row["unread"], len(wanted) - row["matched"]


async def delete(pool: Pool, who: Who, message_id: uuid.UUID) -> bool | None:
    """Remove a message from the user's inbox (on every device); False if it was not
    there, None when the owner is not found.  The entry stays, marked deleted, so that the
    message's ``seen`` count keeps the user."""
    row = await pool.fetchrow(
        f"""
        WITH {_VISIBLE.format(who=who.sql)}, {_WANTED}, own AS (
            UPDATE inbox_entries e SET deleted = true
            FROM wanted w, owner o
            WHERE e.user_id = o.id AND e.message_id = w.message_id AND w.kind = 'users'
        ), broadcast AS (
            INSERT INTO inbox_entries AS e (user_id, message_id, personal, deleted)
            SELECT o.id, w.message_id, false, true FROM wanted w, owner o
            WHERE w.kind = 'all'
            ON CONFLICT (user_id, message_id) DO UPDATE SET deleted = true
        )
        SELECT (SELECT count(*) FROM owner) AS found, EXISTS (SELECT 1 FROM wanted) AS removed
        """,
        who.first,
        who.second,
        [message_id],
    )
    assert row is not None
    if not row["found"]:
        return None
    return bool(row["removed"])


# A message's ``seen`` count as a column expression on alias ``m`` (messages): the sum of
# its counter's shards (``inbox_seen``).
SEEN_COLUMN = (
    "(SELECT coalesce(sum(s.n), 0)::bigint FROM inbox_seen s WHERE s.message_id = m.id) AS seen"
)

"""The transactional lane's statements: insert a small message already planned, and the
notification that wakes the workers.

:func:`insert_planned` is one statement (one round trip, one commit): it resolves the
target (the planner's own list sources and primary rule, :mod:`pushcore.db.planning`),
inserts the message with its counters set and writes one lane batch per platform.  The
workers are woken by :data:`CHANNEL` notifications sent after it commits by a
:class:`Waker`, at most one in flight per process: ``NOTIFY`` takes a cluster-wide lock
that is held through its transaction's commit flush, so a notification inside every insert
made concurrent sends commit one at a time (seen in ``pg_stat_activity`` as commits
waiting on ``Lock/object``).  A notification lost (the waker's statement failed) costs at
most PUSHCORE_LANE_POLL_SECONDS: the workers poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from pushcore.config import Settings
from pushcore.db.errors import DatabaseUnavailable
from pushcore.db.inbox import InboxPlan, audience_ctes
from pushcore.db.planning import LIST_SOURCES, PRIMARY_FILTER
from pushcore.db.pool import Connection, Pool, Record

CHANNEL = "pushcore_lane"


async def insert_planned(
    conn: Pool | Connection,
    *,
    app_id: int,
    request: dict[str, Any],
    notification: dict[str, Any],
    platforms: list[str],
    primary_only: bool,
    ttl_seconds: int | None,
    idempotency_key: str | None,
    kind: str,
    values: list[str],
    batch_size: int,
    columns: str,
    inbox: InboxPlan | None = None,
) -> Record | None:
    """Insert a message already planned, in one statement: its audience resolved (the
    planner's list sources and primary rule), its lane batches written, its counters set,
    ``sending`` (``done`` when nobody is reached).  None when the idempotency key is held
    by another message (nothing written).  Wake the workers afterwards (:class:`Waker`).
    With ``inbox``, the users reached are resolved in the same statement (unknown external
    ids created) and the message stored in their inboxes; without it the statement is the
    lane's usual one."""
    source, condition = LIST_SOURCES[kind]
    args: list[Any] = [True, batch_size, platforms, app_id, values, request, primary_only]
    args += [notification, ttl_seconds, idempotency_key]
    inbox_ctes, inboxed, inbox_writes = "", "0", ""
    if inbox is not None:
        args += [inbox.topic, inbox.expires_at]
        inbox_ctes = ", " + audience_ctes(kind, app="$4", values="$5")
        inboxed = "(SELECT count(*) FROM inbox_users)"
        inbox_writes = """
        , im AS (
            INSERT INTO inbox_messages (message_id, app_id, audience, topic, expires_at, planned)
            SELECT m.id, $4, 'users', $11, $12, true FROM m
        ), ie AS (
            INSERT INTO inbox_entries (user_id, message_id, personal)
            SELECT u.id, m.id, true FROM m, inbox_users u
        )"""
    row: Record | None = await conn.fetchrow(
        f"""
        WITH page AS (
            SELECT DISTINCT i.id, i.platform FROM {source}
            WHERE {condition} AND i.push_enabled AND i.platform = ANY($3::text[])
              AND {PRIMARY_FILTER}
        ), groups AS (
            SELECT platform, array_agg(id ORDER BY id) AS ids
            FROM (SELECT id, platform,
                         (row_number() OVER (PARTITION BY platform ORDER BY id) - 1) / $2 AS n
                  FROM page) numbered
            GROUP BY platform, n
        ){inbox_ctes}, m AS (
            INSERT INTO messages AS m (app_id, status, request, notification, platforms,
                primary_only, expires_at, idempotency_key, targeted, open_batches, planned,
                started_at, finished_at, inboxed)
            SELECT $4, CASE WHEN EXISTS (SELECT 1 FROM groups) THEN 'sending' ELSE 'done' END,
                $6, $8, $3, $7, now() + make_interval(secs => $9::double precision), $10,
                (SELECT count(*) FROM page), (SELECT count(*) FROM groups), true, now(),
                CASE WHEN EXISTS (SELECT 1 FROM groups) THEN NULL ELSE now() END, {inboxed}
            ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                DO NOTHING
            RETURNING {columns}
        ), ins AS (
            INSERT INTO batches (message_id, app_id, platform, installation_ids, lane)
            SELECT m.id, $4, g.platform, g.ids, $1::boolean FROM m, groups g
        ){inbox_writes}
        SELECT m.* FROM m
        """,
        *args,
    )
    return row


async def listen(settings: Settings, on_notify: Callable[[], None]) -> asyncpg.Connection[Any]:
    """A connection of its own (LISTEN is session state, pooled connections are shared)
    that calls ``on_notify`` at each lane notification; close it to stop."""
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            settings.database_url, timeout=10, command_timeout=settings.db_command_timeout
        )
        await conn.add_listener(CHANNEL, lambda *_: on_notify())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot listen for lane notifications: {exc}") from exc
    return conn


log = logging.getLogger(__name__)


class Waker:
    """Wakes the lane loops after lane messages were committed: :meth:`poke` after each;
    bursts coalesce into one ``NOTIFY`` at a time per process.  Call :meth:`aclose` at
    shutdown."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # one more notification after the one in flight
            return
        self._task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while True:
            self._again = False
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", CHANNEL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("lane notification not sent (%s); workers will poll", exc)
                return
            if not self._again:
                return

    async def aclose(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

"""The transactional lane's statements: plan a small message as it is inserted, and the
notification that wakes the workers.

:func:`plan_now` runs in the transaction that inserts the message
(:func:`pushcore.db.messages.create`): it resolves the target (the planner's own list
sources and primary rule, :mod:`pushcore.db.planning`), writes one lane batch per platform,
marks the message planned and ``sending`` (``done`` when nobody is reached) and notifies
:data:`CHANNEL`; the notification is delivered at commit, so a worker never wakes for a
message it cannot see yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from pushcore.config import Settings
from pushcore.db.errors import DatabaseUnavailable
from pushcore.db.planning import LIST_SOURCES, PRIMARY_FILTER
from pushcore.db.pool import Connection, Record

CHANNEL = "pushcore_lane"


async def plan_now(
    conn: Connection,
    *,
    message_id: int,
    app_id: int,
    kind: str,
    values: list[str],
    platforms: list[str],
    primary_only: bool,
    batch_size: int,
    columns: str,
) -> Record:
    """Plan the just-inserted message ``message_id`` onto lane batches; returns the
    message's ``columns`` as they are afterwards."""
    source, condition = LIST_SOURCES[kind]
    row: Record | None = await conn.fetchrow(
        f"""
        WITH page AS (
            SELECT DISTINCT i.id, i.platform FROM {source}
            WHERE {condition} AND i.push_enabled AND i.platform = ANY($6::text[])
              AND {PRIMARY_FILTER}
        ), numbered AS (
            SELECT id, platform,
                   (row_number() OVER (PARTITION BY platform ORDER BY id) - 1) / $3 AS n
            FROM page
        ), ins AS (
            INSERT INTO batches (message_id, app_id, platform, installation_ids, lane)
            SELECT $1, $4, platform, array_agg(id ORDER BY id), $2::boolean
            FROM numbered GROUP BY platform, n
            RETURNING cardinality(installation_ids) AS size
        ), upd AS (
            UPDATE messages m SET
                targeted = (SELECT coalesce(sum(size), 0) FROM ins),
                open_batches = (SELECT count(*) FROM ins),
                planned = true, started_at = now(),
                status = CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'sending' ELSE 'done' END,
                finished_at = CASE WHEN EXISTS (SELECT 1 FROM ins) THEN NULL ELSE now() END
            WHERE m.id = $1
            RETURNING {columns}
        )
        SELECT upd.*, pg_notify('{CHANNEL}', '') IS NULL AS notified FROM upd
        """,
        message_id,
        True,
        batch_size,
        app_id,
        values,
        platforms,
        primary_only,
    )
    assert row is not None  # the message was inserted in this transaction
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

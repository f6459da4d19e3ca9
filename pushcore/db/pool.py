"""The process-wide asyncpg pool.

Created once per process on the event loop that uses it (the API's, or Dramatiq's loop in a
worker) with the bounds from the settings.  jsonb columns are decoded and encoded with msgspec
so that rows come back as plain Python values.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from pushcore.config import Settings
from pushcore.db.errors import DatabaseUnavailable

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Record: TypeAlias = asyncpg.Record
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _encode_json(value: Any) -> str:
    return _encode(value).decode()


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=_decode, format="text"
        )


async def _no_reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """asyncpg resets a connection on every release (UNLISTEN, advisory unlocks, RESET ALL):
    a round trip and a transaction per statement.  pushcore keeps no session state on pooled
    connections (no LISTEN, no session advisory locks, no SET), so there is nothing to
    reset; an open transaction is still rolled back by asyncpg itself."""


# pushcore's statements are prepared once per connection (asyncpg's statement cache) and
# run with parameters only; PostgreSQL's default (``auto``) keeps planning the ones with
# several CTEs anew for every execution (their generic plan looks dearer to it), which was
# half of a lane insert's cost (1.09 -> 0.56 ms measured) and most of a small claim's.  Every
# statement here is an index-driven OLTP statement whose plan does not depend on the values,
# so the generic plan is always the right one.
SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


async def create_pool(settings: Settings, *, max_size: int | None = None) -> Pool:
    """Open the pool; raise :class:`DatabaseUnavailable` when PostgreSQL does not answer."""
    size = max_size or settings.db_pool_max
    try:
        pool: Pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=min(settings.db_pool_min, size),
            max_size=size,
            command_timeout=settings.db_command_timeout,
            timeout=10,
            init=_init_connection,
            reset=_no_reset,
            server_settings={
                **SERVER_SETTINGS,
                # read by the SQL clock_now() (migration 0015), the schedule's clock
                "pushcore.clock_offset": repr(settings.clock_offset_seconds),
            },
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    return pool


async def ping(pool: Pool) -> None:
    """One round trip to the database (readiness checks); raises what asyncpg raises."""
    await pool.fetchval("SELECT 1")

"""How the SQL statements of a run are counted: the source (``pg_stat_statements`` when
usable, else committed transactions), the counting query, the steady-state figure, and the
other databases' transactions on the same server."""

from __future__ import annotations

import asyncpg

from pushcore.db.pool import Pool

# PostgreSQL's CPU is the whole cluster's: this says how much of it other databases caused
OTHER_XACTS_SQL = (
    "SELECT coalesce(sum(xact_commit), 0)::bigint FROM pg_stat_database "
    "WHERE datname IS DISTINCT FROM current_database()"
)


async def source(pool: Pool) -> str:
    """pg_stat_statements when usable here, else the database's committed transactions."""
    try:
        await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await pool.fetchval("SELECT count(*) FROM pg_stat_statements")
    except asyncpg.PostgresError:
        return "xact_commit"
    return "pg_stat_statements"


def count_sql(source: str) -> str:
    if source == "pg_stat_statements":
        return (
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    return "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"


def measure_text(source: str) -> str:
    """What the count of ``source`` is, in words (the JSON says it beside the figures)."""
    if source == "pg_stat_statements":
        return "pg_stat_statements calls in the database"
    return "pg_stat_database.xact_commit delta (autocommit: one per statement)"


def steady_state_per_1000(timeline: list[list[float]], targeted: int) -> float | None:
    """Statements per 1,000 notifications between the samples at 10% and 90% of the send,
    minus the sampler's own one statement per sample."""
    inside = [p for p in timeline if 0.1 * targeted <= p[1] <= 0.9 * targeted]
    if len(inside) < 2 or inside[-1][1] == inside[0][1]:
        return None
    first, last = inside[0], inside[-1]
    own = len(inside) - 1
    return round((last[2] - first[2] - own) * 1000 / (last[1] - first[1]), 2)

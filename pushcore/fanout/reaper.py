"""The reaper: the ledger's safety net, run in every worker process, active in one.

Every PUSHCORE_REAPER_INTERVAL_SECONDS one process (the holder of a PostgreSQL advisory
lock) enqueues again the batches whose lease expired or whose broker message was lost, and
starts planning of due scheduled messages and of messages whose plan job was lost.  This is
what makes a SIGKILLed worker or a flushed Redis harmless; Dramatiq's own Redis recovery
(0.1% maintenance chance, 60 s heartbeat) is not relied upon.  Once a day it also deletes
stale registrations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import RedisError

from pushcore.config import Settings
from pushcore.db import reaping
from pushcore.db.maintenance import prune_stale
from pushcore.db.pool import Pool
from pushcore.fanout import metrics
from pushcore.fanout.queue import BatchJob, Enqueuer

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000
PRUNE_EVERY = 24 * 3600.0


async def reap_once(pool: Pool, settings: Settings, enqueuer: Enqueuer) -> tuple[int, int]:
    """One pass (no lock): returns (batches, messages) handed out again."""
    batches = await reaping.stuck_batches(pool, settings.requeue_after_seconds, SCAN_LIMIT)
    if batches:
        await enqueuer.batches([BatchJob(r["id"], r["platform"]) for r in batches])
    messages = await reaping.stuck_messages(pool, settings.requeue_after_seconds, SCAN_LIMIT)
    for message_id in messages:
        await enqueuer.plan(message_id)
    if batches or messages:
        log.info("reaper: %d batches and %d messages handed out again", len(batches), len(messages))
    return len(batches), len(messages)


async def run(
    pool: Pool,
    settings: Settings,
    enqueuer: Enqueuer,
    depths: Callable[[], Awaitable[dict[str, int]]] | None = None,
) -> None:
    """Reap forever (until cancelled); only the holder of the advisory lock works (and
    samples the gauges: queue depths, messages by status, certificate expiries)."""
    last_prune = 0.0
    while True:
        try:
            # A transaction-scoped lock: it ends with the transaction even if this task is
            # cancelled mid-pass (pooled connections are not reset on release).
            async with pool.acquire() as conn, conn.transaction():
                locked = await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock($1)", reaping.REAPER_LOCK
                )
                if locked:
                    await reap_once(pool, settings, enqueuer)
                    await metrics.sample(pool, depths)
                    if time.monotonic() - last_prune > PRUNE_EVERY or last_prune == 0.0:
                        deleted = await prune_stale(pool, settings.stale_token_days)
                        last_prune = time.monotonic()
                        if deleted:
                            log.info("pruned %d stale registrations", deleted)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
            RedisError,
        ) as exc:
            log.warning("reaper pass failed: %s", exc)
        await asyncio.sleep(settings.reaper_interval_seconds)

"""The reaper: the ledger's safety net, run in every worker process, active in one.

Every PUSHCORE_REAPER_INTERVAL_SECONDS one process (the holder of a PostgreSQL advisory
lock, which finds the pass due in ``reaper_passes``: one pass per interval however many
processes run the loop) releases the local-time batches now due (``send_at_local``: held in
the ledger until then, never waiting on a broker delay), enqueues again the batches whose
lease expired or whose broker message was lost, and starts planning of due scheduled
messages and of messages whose plan job was lost.  This is what makes a SIGKILLed worker
or a flushed Redis harmless; Dramatiq's own Redis recovery (0.1% maintenance chance, 60 s
heartbeat) is not relied upon.
Once a day (cluster-wide, by the same clock) it also deletes stale registrations and inbox
messages past their retention, and once an hour per-recipient results, delivered or
given-up webhook events, and the ``recipients`` data of messages finished (and out of the
inboxes) older than PUSHCORE_RESULTS_RETENTION_DAYS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pushcore.config import Settings
from pushcore.db import reaping
from pushcore.db import results as result_queries
from pushcore.db import webhooks as webhook_queries
from pushcore.db.maintenance import prune_inbox, prune_recipient_data, prune_stale
from pushcore.db.pool import Connection, Pool
from pushcore.fanout import metrics
from pushcore.fanout.errors import TRANSIENT
from pushcore.fanout.queue import BatchJob, Enqueuer

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000
PRUNE_EVERY = 24 * 3600.0
PRUNE_RESULTS_EVERY = 3600.0


async def reap_once(pool: Pool, settings: Settings, enqueuer: Enqueuer) -> tuple[int, int]:
    """One pass (no lock): returns (batches, messages) handed out again.  Local-time
    batches that fell due are released first (so at most one interval late)."""
    released = await reaping.release_held(pool, SCAN_LIMIT)
    if released:
        await enqueuer.batches([BatchJob(r["id"], r["platform"]) for r in released])
        log.info("reaper: %d local-time batches due and released", len(released))
    batches = await reaping.stuck_batches(pool, settings.requeue_after_seconds, SCAN_LIMIT)
    if batches:
        await enqueuer.batches([BatchJob(r["id"], r["platform"]) for r in batches])
    messages = await reaping.stuck_messages(pool, settings.requeue_after_seconds, SCAN_LIMIT)
    for message_id in messages:
        await enqueuer.plan(message_id)
    if batches or messages:
        log.info("reaper: %d batches and %d messages handed out again", len(batches), len(messages))
    return len(batches), len(messages)


async def _due_passes(
    conn: Connection,
    pool: Pool,
    settings: Settings,
    enqueuer: Enqueuer,
    depths: Callable[[], Awaitable[dict[str, int]]] | None,
) -> None:
    """The passes due cluster-wide, run by the holder of the reaper lock (``conn``)."""
    if await reaping.claim_pass(conn, "reap", settings.reaper_interval_seconds):
        await reap_once(pool, settings, enqueuer)
        # the gauges are sampled by the process that reaps: in the worker exposition they
        # come from one process per pass
        await metrics.sample(pool, depths)
    if await reaping.claim_pass(conn, "prune", PRUNE_EVERY):
        deleted = await prune_stale(pool, settings.stale_token_days)
        if deleted:
            log.info("pruned %d stale registrations", deleted)
        expired = await prune_inbox(pool, settings.inbox_retention_days)
        if expired:
            log.info("pruned %d inbox messages past the retention", expired)
    if await reaping.claim_pass(conn, "prune_results", PRUNE_RESULTS_EVERY):
        deleted = await result_queries.prune(pool, settings.results_retention_days)
        events = await webhook_queries.prune(pool, settings.results_retention_days)
        data = await prune_recipient_data(pool, settings.results_retention_days)
        if data:
            log.info("pruned the per-recipient data of %d recipients of old messages", data)
        if deleted or events:
            log.info("pruned the results of %d batches, %d webhook events", deleted, events)


async def run(
    pool: Pool,
    settings: Settings,
    enqueuer: Enqueuer,
    depths: Callable[[], Awaitable[dict[str, int]]] | None = None,
) -> None:
    """Reap forever (until cancelled); only the holder of the advisory lock works (and
    samples the gauges: queue depths, messages by status, certificate expiries)."""
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                if await reaping.try_lock(conn):
                    await _due_passes(conn, pool, settings, enqueuer, depths)
        except TRANSIENT as exc:
            log.warning("reaper pass failed: %s", exc)
        await asyncio.sleep(settings.reaper_interval_seconds)

"""Writing a batch's results back, through a PostgreSQL outage: the results are kept and
written again with back-off while the lease can still be held, instead of dropped (which
would send the whole batch again after the lease)."""

from __future__ import annotations

import asyncio
import logging
import time

from pushcore.config import Settings
from pushcore.db import batches as queries
from pushcore.db.pool import Pool, Record
from pushcore.fanout import metrics
from pushcore.fanout.errors import DB_UNREACHABLE

log = logging.getLogger(__name__)

WRITE_BACK_FIRST_DELAY = 0.2  # seconds; doubles per failed write-back, up to the cap
WRITE_BACK_MAX_DELAY = 5.0


async def write_back(
    pool: Pool, settings: Settings, rows: list[Record], results: list[queries.BatchResult]
) -> queries.Finished:
    """:func:`~pushcore.db.batches.finish`, tried again while PostgreSQL is unreachable.

    The lease bounds it: a worker holding results it cannot write keeps trying until its
    lease would have run out (with the pool's own connect and command timeouts per try),
    extending the lease each time PostgreSQL answers, then gives up (the batches are handed
    out again after the lease: sent twice, at least once).  Past the lease another worker
    may have claimed the batch, and the claim number would drop this write anyway.

    A try whose commit went through but whose answer was lost is harmless to repeat: the
    batches are ``done`` by then, so the repeat writes nothing and reports them not owned
    (a warning); the retry batches it wrote are enqueued by the reaper's scan for batches
    without a broker message (``PUSHCORE_REQUEUE_AFTER_SECONDS``)."""
    deadline = time.monotonic() + settings.lease_seconds
    pause = WRITE_BACK_FIRST_DELAY
    while True:
        try:
            return await queries.finish(pool, results)
        except DB_UNREACHABLE as exc:
            left = deadline - time.monotonic()
            if left <= pause:
                metrics.WRITE_BACKS.labels("dropped").inc()
                log.exception("batches %s: results not written, giving up", _ids(rows))
                raise
            metrics.WRITE_BACKS.labels("retried").inc()
            log.warning("batches %s: cannot write results (%s); retrying", _ids(rows), exc)
        await asyncio.sleep(pause)
        pause = min(pause * 2, WRITE_BACK_MAX_DELAY)
        try:
            held = await queries.extend_leases(
                pool,
                [r.batch_id for r in results],
                [r.claim for r in results],
                settings.lease_seconds,
            )
        except DB_UNREACHABLE:
            continue  # still unreachable: the deadline stands
        if held:
            deadline = time.monotonic() + settings.lease_seconds


def _ids(rows: list[Record]) -> str:
    ids = [str(row["id"]) for row in rows[:5]]
    return ",".join(ids) + (",..." if len(rows) > 5 else "")

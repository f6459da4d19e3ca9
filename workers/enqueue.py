"""The Dramatiq implementation of :class:`pushcore.fanout.queue.Enqueuer`.

Dramatiq's ``send`` is synchronous network I/O; it runs in a worker thread so that it never
blocks the event loop.  Many batch messages go in one thread hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pushcore.fanout.queue import BatchJob

log = logging.getLogger(__name__)


class DramatiqEnqueuer:
    async def plan(self, message_id: int) -> None:
        from workers import actors

        try:
            await asyncio.to_thread(actors.plan_message.send, message_id)
        except Exception as exc:  # noqa: BLE001 (the reaper enqueues it again)
            log.warning(
                "plan job for message %d not enqueued (%s); the reaper will",
                message_id,
                type(exc).__name__,
            )

    async def batches(self, jobs: Sequence[BatchJob]) -> None:
        if not jobs:
            return
        try:
            await asyncio.to_thread(_send_all, jobs)
        except Exception as exc:  # noqa: BLE001 (the reaper enqueues them again)
            log.warning(
                "%d batch jobs not enqueued (%s); the reaper will", len(jobs), type(exc).__name__
            )

    async def aclose(self) -> None:
        """Drop this process's broker connections (the API at shutdown)."""
        from workers import actors

        await asyncio.to_thread(_close, actors.broker)


def _close(broker: object) -> None:
    client = getattr(broker, "client", None)  # RedisBroker keeps a redis client
    if client is not None:
        client.connection_pool.disconnect()
    close = getattr(broker, "close", None)
    if close is not None:
        close()


def _send_all(jobs: Sequence[BatchJob]) -> None:
    from workers import actors

    for job in jobs:
        actor = actors.SEND_ACTORS[job.platform]
        delay = int(job.delay * 1000) if job.delay > 0 else None
        actor.send_with_options(args=(job.batch_id,), delay=delay)

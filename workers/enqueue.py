"""The Dramatiq implementation of :class:`pushcore.fanout.queue.Enqueuer`, by actor name.

Messages are built from the actor and queue names of the platform registry and put on the
broker handed in, so the API (which declares no actors) and the workers enqueue the same
way, and nothing here imports the actors.  Dramatiq's ``enqueue`` is synchronous network
I/O; it runs in a worker thread so that it never blocks the event loop, many batch
messages in one thread hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import dramatiq

from pushcore.fanout.queue import BatchJob
from pushcore.providers import registry
from workers.broker import PLAN_QUEUE, close_broker

log = logging.getLogger(__name__)

# actor names (declared in workers.actors)
PLAN_ACTOR = "plan_message"
SUBMIT_ACTOR = "submit_message"


def _message(queue: str, actor: str, *args: Any) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})


def submit_message(broker: dramatiq.Broker, app_code: str, request: dict[str, Any]) -> None:
    """Enqueue a send request for the ``submit_message`` actor (blocking): for upstream
    systems that produce sends on Dramatiq instead of POSTing them.  The workers check it
    exactly as the HTTP route would; a refused one is logged and dropped."""
    broker.enqueue(_message(PLAN_QUEUE, SUBMIT_ACTOR, app_code, request))


class DramatiqEnqueuer:
    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    async def plan(self, message_id: int) -> None:
        try:
            await asyncio.to_thread(
                self.broker.enqueue, _message(PLAN_QUEUE, PLAN_ACTOR, message_id)
            )
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
            await asyncio.to_thread(self._send_all, jobs)
        except Exception as exc:  # noqa: BLE001 (the reaper enqueues them again)
            log.warning(
                "%d batch jobs not enqueued (%s); the reaper will", len(jobs), type(exc).__name__
            )

    def _send_all(self, jobs: Sequence[BatchJob]) -> None:
        for job in jobs:
            spec = registry.spec(job.platform)
            delay = int(job.delay * 1000) if job.delay > 0 else None
            self.broker.enqueue(_message(spec.queue, spec.actor, job.batch_id), delay=delay)

    async def aclose(self) -> None:
        """Drop this process's broker connections (the API at shutdown)."""
        await asyncio.to_thread(close_broker, self.broker)

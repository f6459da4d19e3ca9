"""The actors, declared on a broker handed in (importing this module declares nothing).

- ``plan_message(message_id)`` on ``pushcore.plan``: audience → batches.
- one send actor per platform of the registry (``send_apns``, ``send_fcm``,
  ``send_webpush``; ``batch_id``) on that provider's queue.
- ``submit_message(app_code, request)`` on ``pushcore.plan``: the send API's checks and
  message row, for upstream systems that enqueue on Dramatiq directly instead of POSTing
  (:func:`workers.enqueue.submit_message` sends one by name).

Each actor reaches the process's resources (pool, transports, providers) through the
:class:`~workers.resources.WorkerResources` middleware it is declared with.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import msgspec

from pushcore.db import apps as app_queries
from pushcore.fanout import planning, sending
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.request import SendRequest
from pushcore.fanout.submit import submit
from pushcore.providers import registry
from workers.broker import ACTOR_OPTIONS, PLAN_QUEUE
from workers.enqueue import PLAN_ACTOR, SUBMIT_ACTOR
from workers.resources import WorkerResources

log = logging.getLogger(__name__)


def declare(
    broker: dramatiq.Broker, resources: WorkerResources
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on ``broker``; returns them by actor name."""

    async def plan_message(message_id: int) -> None:
        ctx = resources.context()
        await planning.plan(ctx.pool, ctx.settings, ctx.enqueuer, message_id)

    async def submit_message(app_code: str, request: dict[str, Any]) -> None:
        """Accept a send enqueued directly; a request that the API would refuse is logged
        and dropped (there is nobody to answer)."""
        ctx = resources.context()
        app = await app_queries.get_app(ctx.pool, app_code)
        if app is None:
            log.error("submit_message: no app %s", app_code)
            return
        try:
            decoded = msgspec.convert(request, SendRequest)
            await submit(
                ctx.pool,
                ctx.settings,
                app,
                decoded,
                ctx.enqueuer.plan,
                providers=ctx.providers,
                wake_lane=ctx.waker.poke if ctx.waker is not None else None,
            )
        except (msgspec.ValidationError, InvalidSend) as exc:
            log.warning("submit_message for %s refused: %s", app_code, exc)

    async def send_batch(batch_id: int) -> None:
        await sending.send_batch(resources.context(), batch_id)

    def make(fn: Any, name: str, queue: str) -> dramatiq.Actor[Any, Any]:
        decorate = dramatiq.actor(broker=broker, actor_name=name, queue_name=queue, **ACTOR_OPTIONS)
        actor: dramatiq.Actor[Any, Any] = decorate(fn)
        return actor

    actors = [
        make(plan_message, PLAN_ACTOR, PLAN_QUEUE),
        make(submit_message, SUBMIT_ACTOR, PLAN_QUEUE),
        *(make(send_batch, spec.actor, spec.queue) for spec in registry.PLATFORMS),
    ]
    return {actor.actor_name: actor for actor in actors}

"""The actors.  Importing this module configures the broker from the PUSHCORE_* settings.

- ``plan_message(message_id)`` on ``pushcore.plan``: audience → batches.
- ``send_apns`` / ``send_fcm`` / ``send_webpush(batch_id)`` on their provider's queue.
- ``submit_message(app_code, request)`` on ``pushcore.plan``: the send API's checks and
  message row, for upstream systems that enqueue on Dramatiq directly instead of POSTing.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import msgspec

from pushcore.config import load_settings
from pushcore.db import apps as app_queries
from pushcore.fanout import planning, sending
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.request import SendRequest
from pushcore.fanout.submit import submit
from workers.broker import ACTOR_OPTIONS, make_broker
from workers.resources import WorkerResources, context

log = logging.getLogger(__name__)

settings = load_settings()
broker = make_broker(settings)
broker.add_middleware(WorkerResources(settings))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="pushcore.plan", **ACTOR_OPTIONS)
async def plan_message(message_id: int) -> None:
    ctx = context()
    await planning.plan(ctx.pool, ctx.settings, ctx.enqueuer, message_id)


@dramatiq.actor(queue_name="pushcore.plan", **ACTOR_OPTIONS)
async def submit_message(app_code: str, request: dict[str, Any]) -> None:
    """Accept a send enqueued directly; a request that the API would refuse is logged and
    dropped (there is nobody to answer)."""
    ctx = context()
    app = await app_queries.get_app(ctx.pool, app_code)
    if app is None:
        log.error("submit_message: no app %s", app_code)
        return
    try:
        decoded = msgspec.convert(request, SendRequest)
        await submit(ctx.pool, ctx.settings, app, decoded, ctx.enqueuer.plan)
    except (msgspec.ValidationError, InvalidSend) as exc:
        log.warning("submit_message for %s refused: %s", app_code, exc)


async def _send(batch_id: int) -> None:
    await sending.send_batch(context(), batch_id)


send_apns = dramatiq.actor(actor_name="send_apns", queue_name="pushcore.apns", **ACTOR_OPTIONS)(
    _send
)
send_fcm = dramatiq.actor(actor_name="send_fcm", queue_name="pushcore.fcm", **ACTOR_OPTIONS)(_send)
send_webpush = dramatiq.actor(
    actor_name="send_webpush", queue_name="pushcore.webpush", **ACTOR_OPTIONS
)(_send)

SEND_ACTORS: dict[str, dramatiq.Actor[Any, Any]] = {
    "ios": send_apns,
    "android": send_fcm,
    "web": send_webpush,
}

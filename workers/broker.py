"""The Dramatiq broker, chosen by configuration: Redis (default) or RabbitMQ.

Redis and RabbitMQ are transport only.  A message carries an id (a message's or a batch's),
never tokens; PostgreSQL's ledger says what is left to do, and the reaper enqueues again
whatever a lost broker message left behind, so neither Dramatiq's own Redis recovery nor
RabbitMQ's redelivery is relied upon.

:func:`make_broker` builds a broker from the :class:`~pushcore.config.Settings` it is given
and declares nothing: the worker process adds its resources and actors
(:mod:`workers.boot`); the API only enqueues by actor name (:mod:`workers.enqueue`).

uvloop: the AsyncIO middleware creates its event loop with ``asyncio.new_event_loop()``,
which follows the event loop policy; setting uvloop's policy before the middleware starts
makes every async actor run on uvloop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import dramatiq
import uvloop
from dramatiq.middleware import AsyncIO

from pushcore.config import Settings
from pushcore.providers import registry

PLAN_QUEUE = "pushcore.plan"
# served by the plan pool (deploy/): no actor today, kept for maintenance jobs
MAINTENANCE_QUEUE = "pushcore.maintenance"
QUEUES: tuple[str, ...] = (PLAN_QUEUE, *registry.SEND_QUEUES, MAINTENANCE_QUEUE)

# Dramatiq's own retries are off: the ledger and the reaper decide what is sent again.
ACTOR_OPTIONS: dict[str, Any] = {"max_retries": 0, "time_limit": 15 * 60 * 1000}


def make_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``settings``, without actors: enough to enqueue by actor name."""
    broker: dramatiq.Broker
    if settings.broker == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.rabbitmq_url, confirm_delivery=True)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    return broker


def make_worker_broker(settings: Settings) -> dramatiq.Broker:
    """The broker of a worker process: async actors run on the AsyncIO middleware's loop
    (uvloop), and under ``pushcore worker`` Dramatiq's Prometheus middleware exports."""
    broker = make_broker(settings)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    broker.add_middleware(AsyncIO())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # set by `pushcore worker`: Dramatiq's exposition server aggregates all processes
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    return broker


def close_broker(broker: dramatiq.Broker) -> None:
    """Drop the broker's connections (blocking: call it from a thread)."""
    client = getattr(broker, "client", None)  # RedisBroker keeps a redis client
    if client is not None:
        client.connection_pool.disconnect()
    broker.close()

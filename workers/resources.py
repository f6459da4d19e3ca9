"""Process-wide resources of a worker, created on Dramatiq's event loop.

The AsyncIO middleware runs one event loop thread per worker process; the asyncpg pool and
the HTTP/2 transports must live on that loop, so they are created in this middleware's
``after_worker_boot`` (the AsyncIO middleware starts the loop in ``before_worker_boot``).
The reaper and the webhook delivery loop (:mod:`pushcore.webhooks.delivery`) run as tasks
on the same loop.

Shutdown order matters.  On SIGTERM Dramatiq's ``Worker.stop`` emits
``before_worker_shutdown``, then waits (up to its worker shutdown timeout) for the worker
threads, each finishing the batch it is on, then stops the consumers and emits
``after_worker_shutdown`` to the middleware in reverse order: ours before the AsyncIO
middleware's, which stops the loop.  So the reaper stops first (it would only hand out new
work), and the pool and transports close last, after the batches in flight have written
their results back; closing them earlier would cut those batches off (the lease would hand
them out again, and their devices would be sent to twice).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from functools import partial
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from pushcore.config import Settings
from pushcore.db.lane import Waker
from pushcore.db.pool import create_pool
from pushcore.fanout import metrics, reaper
from pushcore.fanout.lane import Lane
from pushcore.fanout.priority import LanePriority
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.sending import SendContext
from pushcore.providers import registry
from pushcore.providers.base import Provider
from pushcore.transport.base import Transport
from pushcore.transport.curl import CurlTransport
from pushcore.webhooks.delivery import Deliverer
from workers.broker import QUEUES
from workers.enqueue import DramatiqEnqueuer

log = logging.getLogger(__name__)


class ProcessTransports:
    """One shared transport for the providers that authenticate per request (JWT, OAuth,
    VAPID); a provider that authenticates on the connection (APNs certificate auth:
    ``Provider.client_identity``) gets a transport of its own per app, and so does APNs
    with PUSHCORE_APNS_BACKEND=aioapns.  ``max_in_flight`` bounds each transport: the lane
    has its own set, so a broadcast cannot fill the lane's slots."""

    def __init__(self, settings: Settings, *, max_in_flight: int) -> None:
        self._settings = settings
        self._max_in_flight = max_in_flight
        self._shared = self._curl()
        self._per_app: dict[tuple[int, int], Transport] = {}

    def _curl(self, identity: tuple[str, str] | None = None) -> CurlTransport:
        s = self._settings
        return CurlTransport(
            max_in_flight=self._max_in_flight,
            max_connections_per_origin=s.connections_per_origin,
            ca_file=s.ca_file,
            client_cert_pem=identity[0].encode() if identity else None,
            client_key_pem=identity[1].encode() if identity else None,
        )

    def for_batch(self, platform: str, app_id: int, provider: Provider[Any]) -> Transport:
        identity = provider.client_identity
        # aioapns has no certificate auth: such apps always go through libcurl
        aioapns = (
            registry.spec(platform).key == "apns"
            and self._settings.apns_backend == "aioapns"
            and identity is None
        )
        if identity is None and not aioapns:
            return self._shared
        # one transport per app and credentials (a new certificate makes a new transport)
        key = (app_id, hash(getattr(provider, "credentials", None)))
        transport = self._per_app.get(key)
        if transport is None:
            transport = self._aioapns(provider) if aioapns else self._curl(identity)
            self._per_app[key] = transport
        return transport

    def _aioapns(self, provider: Any) -> Transport:
        from pushcore.transport.aioapns_backend import AioapnsTransport

        transport: Transport = AioapnsTransport(
            topic=provider.credentials.topic,
            signer=provider.signer,  # one JWT per process, not one per connection
            origin=provider.origin,
            ca_file=self._settings.ca_file,
            connections=self._settings.connections_per_origin,
            max_in_flight=self._max_in_flight,
        )
        return transport

    async def aclose(self) -> None:
        for transport in (self._shared, *self._per_app.values()):
            await transport.aclose()


class WorkerResources(dramatiq.Middleware):
    """The process's :class:`SendContext` (one per worker process), made when the worker
    boots, on the broker it boots with; the actors reach it through :meth:`context`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context: SendContext | None = None
        self._lane: Lane | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._webhooks: Deliverer | None = None

    def context(self) -> SendContext:
        if self._context is None:
            raise RuntimeError("worker resources are not set up (not a worker process?)")
        return self._context

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is None:
            raise RuntimeError("the AsyncIO middleware must come before WorkerResources")
        # Dramatiq's --queues (None: every queue); a process consuming no send queue runs
        # no lane loops, one consuming some claims only those platforms' lane batches
        consumed: set[str] | None = worker.consumer_whitelist or None
        platforms = tuple(
            spec.name for spec in registry.PLATFORMS if consumed is None or spec.queue in consumed
        )
        thread.run_coroutine(self._start(broker, platforms))

    async def _start(self, broker: dramatiq.Broker, platforms: tuple[str, ...]) -> None:
        pool = await create_pool(self.settings)
        metrics.declare_platforms()
        s = self.settings
        priority = LanePriority(s.lane_priority_wait_seconds)
        self._context = SendContext(
            pool=pool,
            settings=s,
            transports=ProcessTransports(s, max_in_flight=s.max_in_flight),
            enqueuer=DramatiqEnqueuer(broker),
            providers=ProviderCache(s),
            priority=priority,
            waker=Waker(pool),
            platforms=platforms,
        )
        lane_transports = ProcessTransports(s, max_in_flight=s.lane_max_in_flight)
        lane_ctx = dataclasses.replace(self._context, transports=lane_transports, priority=None)
        if platforms:
            self._lane = Lane(lane_ctx, priority)
            await self._lane.start()
        self._webhooks = Deliverer(pool, s)
        await self._webhooks.start()
        self._reaper = asyncio.get_running_loop().create_task(
            reaper.run(pool, self.settings, self._context.enqueuer, partial(_depths, broker))
        )
        log.info("worker resources ready")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is not None and self._reaper is not None:
            thread.run_coroutine(self._stop_reaper())
        if thread is not None and self._lane is not None:
            thread.run_coroutine(self._stop_lane())
        if thread is not None and self._webhooks is not None:
            thread.run_coroutine(self._stop_webhooks())

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # the worker threads are done (or past Dramatiq's shutdown timeout): close the rest
        thread = get_event_loop_thread()
        if thread is not None and self._context is not None:
            thread.run_coroutine(self._close())

    async def _stop_lane(self) -> None:
        if self._lane is not None:
            # a claim in flight is one round of sends and a write-back
            s = self.settings
            await self._lane.stop(timeout=s.send_timeout_seconds + s.db_command_timeout)

    async def _stop_webhooks(self) -> None:
        if self._webhooks is not None:
            await self._webhooks.stop(timeout=self.settings.webhook_timeout_seconds)
            self._webhooks = None

    async def _stop_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            # the reaper catches nothing but its own errors: cancellation ends it
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None

    async def _close(self) -> None:
        await self._stop_reaper()
        await self._stop_webhooks()
        if self._lane is not None:
            await self._stop_lane()
            lane_transports = self._lane.ctx.transports
            if isinstance(lane_transports, ProcessTransports):
                await lane_transports.aclose()
            self._lane = None
        if self._context is not None:
            transports = self._context.transports
            if isinstance(transports, ProcessTransports):
                await transports.aclose()
            if self._context.waker is not None:
                await self._context.waker.aclose()
            await self._context.pool.close()
            self._context = None


async def _depths(broker: dramatiq.Broker) -> dict[str, int]:
    """Waiting messages per queue: the Redis list length, or RabbitMQ's ready count."""
    client = getattr(broker, "client", None)
    if client is None:
        # RabbitMQ: the queue's ready-message count (Dramatiq declares and asks per queue)
        counts = getattr(broker, "get_queue_message_counts", None)
        if counts is None:
            return {}
        return await asyncio.to_thread(lambda: {q: int(counts(q)[0]) for q in QUEUES})

    def lengths() -> dict[str, int]:
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(f"dramatiq:{queue}")
        return dict(zip(QUEUES, (int(n) for n in pipe.execute()), strict=True))

    return await asyncio.to_thread(lengths)

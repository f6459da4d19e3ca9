"""The webhook delivery loop: one per worker process, beside the send path and never in
its way.

It claims due events from the outbox under a lease (at most PUSHCORE_WEBHOOK_CONCURRENCY
in flight per process, PUSHCORE_WEBHOOK_ENDPOINT_CONCURRENCY per endpoint, so a slow
receiver holds a few slots and nothing else), posts each signed
(:mod:`pushcore.webhooks.signing`) with a deadline of PUSHCORE_WEBHOOK_TIMEOUT_SECONDS and
records the attempt.  A 2xx answer delivers; anything else (another status, a redirect, a
timeout, a refused address) is retried after an exponential back-off with jitter, or after
the receiver's ``Retry-After`` when that is longer, until PUSHCORE_WEBHOOK_RETRY_WINDOW_SECONDS
after the event was written.  At least once: a worker killed mid-post leaves the event
leased, and another process posts it again when the lease expires, with the same
``webhook-id``.  Connections go only to addresses the policy allows, checked on what a
name resolves to at each connection (:class:`PolicyResolver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import random
import socket
import time
from collections import Counter

import aiohttp
import asyncpg
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult

from pushcore.config import Settings
from pushcore.db import webhooks as queries
from pushcore.db.pool import Pool, Record
from pushcore.providers.base import parse_retry_after
from pushcore.webhooks import metrics, signing
from pushcore.webhooks.policy import Policy, address_allowed, url_problem

log = logging.getLogger(__name__)

# what the loop survives and retries later: the database gone for a while, a timeout
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
ERROR_CHARS = 200  # an attempt's error text is cut here (it is shown by the API)
REFUSED = "refused: "  # how an attempt the address policy stopped is recorded


def policy_of(settings: Settings) -> Policy:
    return Policy(
        allow_loopback=settings.webpush_allow_loopback,
        allow_private=settings.webhook_allow_private,
    )


def lease_seconds(settings: Settings) -> float:
    """How long a claimed event is this process's: its post's deadline and the time to
    record it.  A record slower than that lets another process post it again (a duplicate
    with the same ``webhook-id``, never a loss)."""
    return 2 * settings.webhook_timeout_seconds + 5


def backoff(
    attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds before attempt ``attempt + 1``: ``base * 2**(attempt - 1)`` capped, with
    jitter (between half and all of it, so that receivers coming back are not hit by every
    event at once), or the receiver's ``Retry-After`` when longer."""
    delay: float = min(cap, base * 2.0 ** min(attempt - 1, 40))
    delay = delay * (0.5 + rng.random() / 2)
    return max(delay, retry_after or 0.0)


class PolicyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then drops the addresses the policy
    refuses; none left is a connection error.  (Literal addresses never reach a resolver:
    the loop checks them with :func:`url_problem` before each post.)"""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [
            r for r in found if address_allowed(ipaddress.ip_address(r["host"]), self._policy)
        ]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses webhooks may not reach")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class Deliverer:
    """The loop of one worker process: :meth:`start`, then :meth:`stop` at shutdown."""

    def __init__(self, pool: Pool, settings: Settings, rng: random.Random | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.policy = policy_of(settings)
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._flights: dict[asyncio.Task[None], int] = {}  # task -> endpoint id
        self._wake = asyncio.Event()

    async def start(self) -> None:
        s = self.settings
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(self.policy),
            limit=s.webhook_concurrency,
            limit_per_host=s.webhook_endpoint_concurrency,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=s.webhook_timeout_seconds),
            headers={"user-agent": "pushcore-webhooks"},
        )
        metrics.declare()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._sampler = loop.create_task(self._sample())

    async def stop(self, timeout: float) -> None:
        """Stop claiming; give deliveries in flight ``timeout`` seconds (a cut-off one is
        posted again by another process when its lease expires)."""
        for task in (self._task, self._sampler):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._sampler = None
        if self._flights:
            await asyncio.wait(list(self._flights), timeout=timeout)
            for task in self._flights:
                task.cancel()
            await asyncio.gather(*self._flights, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        s = self.settings
        while True:
            claimed = 0
            try:
                free = s.webhook_concurrency - len(self._flights)
                if free > 0:
                    rows = await queries.claim(
                        self.pool,
                        limit=free,
                        lease_seconds=lease_seconds(s),
                        per_endpoint=s.webhook_endpoint_concurrency,
                        in_flight=dict(Counter(self._flights.values())),
                    )
                    claimed = len(rows)
                    for row in rows:
                        task = asyncio.get_running_loop().create_task(self._deliver(row))
                        self._flights[task] = row["webhook_id"]
                        task.add_done_callback(self._landed)
            except TRANSIENT as exc:
                log.warning("webhook claim failed: %s", exc)
            if claimed == 0 or len(self._flights) >= s.webhook_concurrency:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=s.webhook_poll_seconds)

    async def _sample(self) -> None:
        """The outbox gauges, every PUSHCORE_REAPER_INTERVAL_SECONDS (each process samples:
        the most recent sample is exported)."""
        while True:
            try:
                pending, oldest = await queries.backlog(self.pool, metrics.BACKLOG_CAP)
                metrics.sampled(pending, oldest)
            except TRANSIENT as exc:
                log.warning("webhook outbox not sampled: %s", exc)
            await asyncio.sleep(self.settings.reaper_interval_seconds)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._flights.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed", exc_info=task.exception())
        self._wake.set()

    async def _deliver(self, row: Record) -> None:
        s = self.settings
        attempt = int(row["attempts"]) + 1
        status, error, retry_after, started = await self._post(row)
        seconds = time.monotonic() - started
        delivered = status is not None and 200 <= status < 300
        refused = error is not None and error.startswith(REFUSED)
        try:
            recorded = await queries.record(
                self.pool,
                outbox_id=row["id"],
                webhook_id=row["webhook_id"],
                attempt=attempt,
                status=status,
                latency_ms=int(seconds * 1000),
                error=error,
                delivered=delivered,
                retry_in=backoff(
                    attempt,
                    base=s.webhook_retry_base_seconds,
                    cap=s.webhook_retry_max_seconds,
                    retry_after=retry_after,
                    rng=self.rng,
                ),
                window_seconds=s.webhook_retry_window_seconds,
            )
        except TRANSIENT as exc:
            # not recorded: the lease expires and the event is posted again (same id)
            log.warning("webhook attempt of event %d not recorded: %s", row["id"], exc)
            metrics.record(status, refused, seconds, disabled=False)
            return
        metrics.record(status, refused, seconds, disabled=bool(recorded["disabled"]))

    async def _post(self, row: Record) -> tuple[int | None, str | None, float | None, float]:
        """(HTTP status or None, error, Retry-After seconds, monotonic start)."""
        started = time.monotonic()
        problem = url_problem(row["url"], self.policy)
        if problem is not None:
            return None, f"{REFUSED}{problem}", None, started
        assert self._session is not None
        body = msgspec.json.encode(row["body"])
        msg_id = signing.event_id(row["id"])
        headers = signing.headers(row["secret"], msg_id, body, dt.datetime.now(dt.UTC))
        try:
            async with self._session.post(
                row["url"], data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                after = parse_retry_after(resp.headers.get("retry-after"), now=time.time())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, _error_text(exc), None, started
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return status, error, after, started


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:ERROR_CHARS]

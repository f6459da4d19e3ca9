"""The transactional lane's worker loop: small messages sent together, within milliseconds.

A small send is planned when it is accepted (``pushcore.db.lane.plan_now``): its lane
batches are in the ledger and PostgreSQL notifies ``pushcore_lane`` at commit.  Every
worker process runs PUSHCORE_LANE_CONCURRENCY of these loops.  Each one waits for a
notification (or PUSHCORE_LANE_POLL_SECONDS: a notification lost with a dropped connection,
retry batches coming due), lingers PUSHCORE_LANE_LINGER_SECONDS so that the messages of a
burst share a claim, then claims up to PUSHCORE_LANE_CLAIM_BATCHES due lane batches of any
messages (``FOR UPDATE SKIP LOCKED``: loops and processes split the backlog instead of
waiting on each other), sends them at once and writes all their results in one statement
(:func:`pushcore.fanout.sending.send_claimed`).  While claims come back full it claims again at
once.

Nothing here goes through the broker, so a flushed Redis cannot lose a lane message, and a
broadcast's backlog on the provider queues is never in front of one.  The lane has its own
HTTP/2 connections and in-flight bound (PUSHCORE_LANE_MAX_IN_FLIGHT), so a broadcast
filling the shared transport does not queue it either; what the two still share is the
process's CPU and event loop.  A worker killed mid-claim leaves its batches leased; the
next claim after PUSHCORE_LEASE_SECONDS takes them again (and the reaper hands them to the
provider queues meanwhile if they wait longer than PUSHCORE_REQUEUE_AFTER_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from pushcore.db import lane as lane_queries
from pushcore.db.errors import DatabaseError
from pushcore.fanout.errors import TRANSIENT
from pushcore.fanout.priority import LanePriority
from pushcore.fanout.sending import SendContext, claim_lane, send_claimed

log = logging.getLogger(__name__)

ERROR_PAUSE = 1.0  # seconds a loop waits after the database failed it


class Lane:
    """The lane loops of one worker process and the connection that wakes them."""

    def __init__(self, ctx: SendContext, priority: LanePriority) -> None:
        self.ctx = ctx
        self.priority = priority
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection[Any] | None = None
        self._stopping = False
        self._claiming = asyncio.Lock()

    async def start(self) -> None:
        try:
            self._listener = await lane_queries.listen(self.ctx.settings, self._wake.set)
        except DatabaseError as exc:
            # polling still finds every lane batch, only later: start anyway
            log.warning("lane: no notifications (%s); polling only", exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(n)) for n in range(self.ctx.settings.lane_concurrency)
        ]

    async def stop(self, timeout: float) -> None:
        """Stop claiming; let the claims in flight finish and write back (up to
        ``timeout`` seconds), then cancel what is left (its batches stay leased and are
        claimed again after the lease)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._listener is not None:
            await self._listener.close(timeout=5)
            self._listener = None

    async def _run(self, n: int) -> None:
        settings = self.ctx.settings
        backlog = False
        while not self.stopping():
            try:
                # One loop of the process waits and claims at a time; the others send what
                # they claimed meanwhile.  Without this every loop woken by the same
                # notification claimed its slice of the same few messages (claims of one or
                # two messages, two statements each); now the messages that arrive while
                # one claim is being sent make the next claim.
                async with self._claiming:
                    if not backlog and not self.stopping():
                        await self._wait(settings.lane_poll_seconds, settings.lane_linger_seconds)
                    if self.stopping():
                        return
                    with self.priority.busy():
                        rows = await claim_lane(self.ctx)
                backlog = len(rows) >= settings.lane_claim_batches  # full: claim again at once
                if rows:
                    with self.priority.busy():
                        await send_claimed(self.ctx, rows)
            except TRANSIENT as exc:
                log.warning("lane loop %d: %s; pausing", n, exc)
                backlog = False
                await asyncio.sleep(ERROR_PAUSE)

    def stopping(self) -> bool:
        return self._stopping

    async def _wait(self, poll: float, linger: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=poll)
        except TimeoutError:
            return
        self._wake.clear()
        if linger > 0:
            await asyncio.sleep(linger)

"""The sampler: every ``interval`` s (fixed ticks), one statement reads how many of the
app's messages are final, the broadcast's counters and the SQL statement count; the
messages accepted so far come from the clients in this process.  The run waits on its
samples (:meth:`Timeline.wait_for`) instead of polling the API, which would cost the API."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.fanout.broadcast import FINAL
from benchmarks.transactional.load import Submitted
from pushcore.db.pool import Pool

COLUMNS = ["seconds", "accepted", "finished", "broadcast_answered", "sql_statements"]
STOP_TIMEOUT = 60.0  # the last sample's statement, at most


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the run's start
    accepted: int  # messages the clients had seen accepted
    finished: int  # of the app's measured messages, those final (done, failed, cancelled)
    broadcast_status: str | None  # None without a broadcast
    broadcast_answered: int  # delivered + invalid_removed + failed
    broadcast_pending: int  # targeted - answered - retrying
    statements: int  # the database's SQL statement count (see benchmarks.fanout.statements)

    @property
    def broadcast_final(self) -> bool:
        return self.broadcast_status in FINAL and self.broadcast_pending == 0

    def row(self) -> list[float]:
        """The sample as a row of :data:`COLUMNS`."""
        return [
            round(self.seconds, 2),
            self.accepted,
            self.finished,
            self.broadcast_answered,
            self.statements,
        ]


def _sample_sql(count_sql: str) -> str:
    return f"""
        SELECT (SELECT count(*) FROM messages WHERE app_id = $1 AND status = ANY($2::text[]))
                   AS finished,
               b.status AS b_status,
               coalesce(b.delivered + b.invalid_removed + b.failed, 0) AS b_answered,
               coalesce(b.targeted - b.delivered - b.invalid_removed - b.failed - b.retrying, 0)
                   AS b_pending,
               ({count_sql}) AS statements
        FROM (SELECT 1) one
        LEFT JOIN messages b ON b.public_id = $3::uuid
    """


class Timeline:
    """Samples from :meth:`start` until :meth:`stop` or ``max_seconds``, in ``samples``."""

    def __init__(
        self,
        pool: Pool,
        app_id: int,
        broadcast_id: str | None,
        count_sql: str,
        submitted: Submitted,
        *,
        interval: float,
        t0: float,
        max_seconds: float,
        finished_before: int = 0,
    ) -> None:
        self.samples: list[Sample] = []
        self._finished_before = finished_before  # the warm-up's, left out of ``finished``
        self.submitted = submitted
        self._pool = pool
        self._args = (app_id, list(FINAL), broadcast_id)
        self._sql = _sample_sql(count_sql)
        self._interval = interval
        self._t0 = t0
        self._ticks = math.ceil(max_seconds / interval) + 1
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await asyncio.wait_for(self._task, STOP_TIMEOUT)

    def now(self) -> float:
        """Seconds since the run's start, the samples' clock."""
        return time.monotonic() - self._t0

    async def _run(self) -> None:
        for tick in range(1, self._ticks + 1):
            row = await self._pool.fetchrow(self._sql, *self._args)
            assert row is not None  # one row, always (the LEFT JOIN of SELECT 1)
            self.samples.append(
                Sample(
                    seconds=self.now(),
                    accepted=self.submitted.accepted,
                    finished=row["finished"] - self._finished_before,
                    broadcast_status=row["b_status"],
                    broadcast_answered=row["b_answered"],
                    broadcast_pending=row["b_pending"],
                    statements=row["statements"],
                )
            )
            if self._stopping:
                return
            await asyncio.sleep(max(0.0, self._t0 + tick * self._interval - time.monotonic()))

    async def wait_for(self, done: Callable[[Sample], bool], timeout: float) -> Sample:
        """The first sample taken from now on for which ``done`` holds; TimeoutError after
        ``timeout`` s; the sampler's own error if it failed, RuntimeError if it ended."""
        seen = len(self.samples)
        poll = self._interval / 4  # no I/O: only looks at the samples already taken
        for _ in range(math.ceil(timeout / poll) + 1):
            for sample in self.samples[seen:]:
                if done(sample):
                    return sample
            seen = len(self.samples)
            if self._task is not None and self._task.done():
                self._task.result()  # raises what stopped it, if anything did
                raise RuntimeError("the sampler ended (max_seconds) before the wait did")
            await asyncio.sleep(poll)
        raise TimeoutError(f"not seen within {timeout} s")

"""Priority of the transactional lane over campaign batches within one worker process.

A campaign and the lane share each worker process's event loop and CPU (and, on this
scale, the machine's PostgreSQL and the providers' connections).  Without a priority a
running broadcast takes the CPU the lane needs, the lane falls below its arrival rate and
its messages wait seconds.  So while a lane loop of the process has work (from its wake-up
to the write-back of its claim), a campaign batch about to be sent waits for the lane to go
idle, for at most PUSHCORE_LANE_PRIORITY_WAIT_SECONDS: the broadcast keeps progressing (a
batch is never held longer than that) while the lane gets the process first.  Pure asyncio
on the process's one loop; nothing crosses processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class LanePriority:
    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.waited = 0.0  # seconds campaign batches of this process spent waiting

    @contextmanager
    def busy(self) -> Iterator[None]:
        """The lane has work while this block runs."""
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    def idle(self) -> bool:
        return self._active == 0

    async def yield_to_lane(self) -> None:
        """What a campaign batch awaits before sending: returns at once when the lane is
        idle, else when it goes idle or after ``max_wait`` seconds."""
        if self.idle() or self.max_wait <= 0:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=self.max_wait)
        self.waited += loop.time() - started

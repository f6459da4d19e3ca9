"""What the fan-out needs from the work queue: enqueue a plan job or batch sends.

The API and the planner depend on this small protocol; ``workers.enqueue`` implements it on
Dramatiq.  An enqueue that fails is not fatal anywhere: the ledger row exists first, and the
reaper enqueues again whatever has waited longer than PUSHCORE_REQUEUE_AFTER_SECONDS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BatchJob:
    batch_id: int
    platform: str
    delay: float = 0.0  # seconds (retry back-off)


class Enqueuer(Protocol):
    async def plan(self, message_id: int) -> None: ...

    async def batches(self, jobs: Sequence[BatchJob]) -> None: ...

    async def aclose(self) -> None: ...

"""Rate limits, the pure part: how big a throttled batch is and how far apart batches go.

A limit (a send's ``rate_per_minute``, an app's per-provider quota) is a bucket row in
PostgreSQL scheduled like GCRA: its ``tat`` is when the next batch may start, and a batch
of ``n`` notifications moves it ``n * spacing`` seconds on.  The permit is taken in the
claim statement (``send_permit`` in the 0016 migration), so it holds across every worker
process and machine and survives any of them dying.

Why ``spacing = (60 + late) / (rate - batch + 1)`` and not ``60 / rate``: a batch is
claimed (and sends) at its slot or up to ``late`` seconds after it
(PUSHCORE_THROTTLE_LATE_SECONDS; the broker's delay queue is polled about once a second),
else it takes a new slot.  The sends of any 60-second window then come from the slots of
a span of ``60 + late`` seconds; spaced so, all of them but the last add up to less than
``rate - batch + 1`` notifications, hence at most ``rate - batch``, and the last adds at
most ``batch``: never more than ``rate`` in a window.  With a batch of a tenth of a
second's worth (PUSHCORE_THROTTLE_BATCH_SECONDS) and one second of lateness the pace is
about 1.7% under the rate.  Any second gets the slots of ``1 + late`` seconds: with
``late`` at most 1, at most twice the per-second rate plus one batch.
"""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

MAX_PER_MINUTE = 10_000_000
PerMinute = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_PER_MINUTE,
        description="notifications per minute, 1 to 10,000,000",
    ),
]


def batch_size(per_minute: int, *, batch_seconds: float, cap: int) -> int:
    """The largest batch a limit of ``per_minute`` lets through: ``batch_seconds`` of the
    rate, at least one notification, at most ``cap`` (PUSHCORE_BATCH_SIZE)."""
    return max(1, min(cap, math.ceil(per_minute * batch_seconds / 60)))


def spacing(per_minute: int, batch: int, late_seconds: float) -> float:
    """Seconds each notification occupies in a bucket whose batches are at most ``batch``
    and are claimed at most ``late_seconds`` after their slot: see the module's note."""
    return (60.0 + late_seconds) / (per_minute - min(batch, per_minute) + 1)


def planned_batch(
    settings_batch: int,
    rate: int | None,
    quotas: list[int],
    *,
    batch_seconds: float,
) -> int:
    """The batch size a message is planned with: PUSHCORE_BATCH_SIZE, or less under its
    own rate or a quota of its app on one of its platforms (the smallest of them, so a
    batch never exceeds what a bucket's spacing was computed for)."""
    limits = [q for q in (rate, *quotas) if q is not None]
    sizes = [batch_size(q, batch_seconds=batch_seconds, cap=settings_batch) for q in limits]
    return min([settings_batch, *sizes])

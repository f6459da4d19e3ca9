"""Rate limits, the pure part: how big a throttled batch is and how far apart batches go.

A limit (a send's ``rate_per_minute``, an app's per-provider quota) is a bucket row in
PostgreSQL scheduled like GCRA: its ``tat`` is when the next batch may start, and a batch
of ``n`` notifications moves it ``n * spacing`` seconds on.  The permit is taken in the
claim statement (``send_permit`` in the 0016 migration), so it holds across every worker
process and machine and survives any of them dying.

Why ``spacing = 60 / (rate - batch + 1)`` and not ``60 / rate``: the permits of the
batches in any 60-second window, but the last, are spaced so that they add up to less than
``rate - batch + 1`` notifications, hence at most ``rate - batch``; the last one adds at
most ``batch``: never more than ``rate`` in a window.  With a batch of a tenth of a second's
worth (PUSHCORE_THROTTLE_BATCH_SECONDS) the loss is at most a 600th of the rate.  In any
second at most ``rate / 60 + batch`` go out: twice the per-second rate at most, or one
batch when the rate is under one per second.
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


def spacing(per_minute: int, batch: int) -> float:
    """Seconds each notification occupies in a bucket whose batches are at most
    ``batch``: see the module's note."""
    return 60.0 / (per_minute - min(batch, per_minute) + 1)


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

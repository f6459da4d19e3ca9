"""Provider-wide pauses of an app, decided after a batch: a storm (many batches failing
mostly with retryable errors) and a provider's 429 with Retry-After (the provider said for
how long: every worker stops at once, instead of each batch discovering it alone).  Both
are rows of ``provider_pauses`` (:mod:`pushcore.db.pauses`) that the claim statements read.

No statement for a batch that had neither."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pushcore.config import Settings
from pushcore.db import pauses
from pushcore.db.pool import Pool
from pushcore.fanout import metrics
from pushcore.providers import registry

log = logging.getLogger(__name__)

STORM_SHARE = 0.5  # a batch counts towards a storm when this share of it was retryable


@dataclass(frozen=True, slots=True)
class BatchAnswers:
    """What a written batch's answers say for the pauses."""

    app_id: int
    platform: str
    sent: int  # registrations sent to the provider
    retryable: int  # of them, answered with a retryable outcome
    quota_retry_after: float | None  # the longest Retry-After of its 429 answers


async def after_batches(pool: Pool, settings: Settings, batches: Sequence[BatchAnswers]) -> None:
    """Count storms and start the pauses a 429 with Retry-After asks for."""
    for batch in batches:
        label = registry.spec(batch.platform).metrics_label
        if batch.quota_retry_after is not None and settings.quota_pause_max_seconds > 0:
            seconds = min(batch.quota_retry_after, settings.quota_pause_max_seconds)
            if seconds > 0 and await pauses.pause_for(pool, batch.app_id, batch.platform, seconds):
                metrics.QUOTA_PAUSES.labels(label).inc()
                log.warning(
                    "app %d: %s sends paused for %.1f s (429 with Retry-After)",
                    batch.app_id,
                    label,
                    seconds,
                )
        if not settings.storm_batches or not batch.sent:
            continue
        if batch.retryable < STORM_SHARE * batch.sent:
            continue
        started = await pauses.record_storm(
            pool,
            batch.app_id,
            batch.platform,
            window=settings.storm_window_seconds,
            batches=settings.storm_batches,
            pause=settings.storm_pause_seconds,
        )
        if started:
            metrics.PAUSES.labels(label).inc()
            log.warning(
                "app %d: %s sends paused for %.0f s (%d batches failing within %.0f s)",
                batch.app_id,
                label,
                settings.storm_pause_seconds,
                settings.storm_batches,
                settings.storm_window_seconds,
            )

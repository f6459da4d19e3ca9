"""Prometheus metrics of the fan-out (exported by the workers; see deploy/prometheus).

Workers run several processes: ``pushcore worker`` sets PROMETHEUS_MULTIPROC_DIR before
Dramatiq starts, so these metrics (and Dramatiq's own) are aggregated by Dramatiq's
exposition server on ``--metrics-port``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from prometheus_client import Counter, Gauge, Histogram

from pushcore.db import apps as app_queries
from pushcore.db import messages as message_queries
from pushcore.db.pool import Pool
from pushcore.providers import registry
from pushcore.providers.credentials import ApnsCredentials
from pushcore.providers.errors import ProviderError

NOTIFICATIONS = Counter(
    "pushcore_notifications_total",
    "Registrations answered, by platform and outcome.",
    ["platform", "outcome"],
)
DELETED = Counter(
    "pushcore_registrations_deleted_total",
    "Registrations deleted because the provider reported them dead.",
    ["platform"],
)
SENDER_ERRORS = Counter(
    "pushcore_sender_errors_total",
    "Batches stopped by a sender error (credentials, topic).",
    ["platform"],
)
UNCERTAIN_RESENDS = Counter(
    "pushcore_uncertain_resends_total",
    "Registrations sent again although the provider may have processed the first copy "
    "(connection lost, stream reset or timeout without an answer): possible duplicates.",
    ["platform"],
)
PAUSES = Counter(
    "pushcore_provider_pauses_total",
    "Provider-wide pauses started because many batches of an app failed at once.",
    ["platform"],
)
QUOTA_PAUSES = Counter(
    "pushcore_quota_pauses_total",
    "Provider-wide pauses of an app started or lengthened by a provider's 429 with Retry-After.",
    ["platform"],
)
THROTTLED = Counter(
    "pushcore_throttled_batches_total",
    "Batches put off to a later slot by a rate limit (a send's rate_per_minute or its "
    "app's quota).",
    ["platform"],
)
WRITE_BACKS = Counter(
    "pushcore_write_back_failures_total",
    "Batch results that could not be written at once: retried, or dropped after the lease.",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "pushcore_batch_seconds",
    "Time to process one batch: claim, deliver, write back.",
    ["platform"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


OUTCOMES = ("delivered", "invalid", "failed")


def declare_platforms() -> None:
    """Create every platform's series at zero (Prometheus' advice for known label values:
    a rate over a series that appears only with its first event misses that event, and a
    dashboard shows "no data" instead of 0 for a platform that has sent nothing yet)."""
    for spec in registry.PLATFORMS:
        label = spec.metrics_label
        for outcome in OUTCOMES:
            NOTIFICATIONS.labels(label, outcome)
        DELETED.labels(label)
        SENDER_ERRORS.labels(label)
        UNCERTAIN_RESENDS.labels(label)
        PAUSES.labels(label)
        QUOTA_PAUSES.labels(label)
        THROTTLED.labels(label)
        BATCH_SECONDS.labels(label)
    for result in ("retried", "dropped"):
        WRITE_BACKS.labels(result)


def record(platform: str, delivered: int, deleted: int, failed: Mapping[str, int]) -> None:
    if delivered:
        NOTIFICATIONS.labels(platform, "delivered").inc(delivered)
    if deleted:
        NOTIFICATIONS.labels(platform, "invalid").inc(deleted)
        DELETED.labels(platform).inc(deleted)
    for reason, n in failed.items():
        NOTIFICATIONS.labels(platform, "failed").inc(n)
        if reason.startswith("sender_error"):
            SENDER_ERRORS.labels(platform).inc()


# Sampled by the reaper (one process at a time), so the most recent sample is the truth in
# multi-process workers.
QUEUE_DEPTH = Gauge(
    "pushcore_queue_depth",
    "Messages waiting in each broker queue (Redis list length; prefetched ones excluded).",
    ["queue"],
    multiprocess_mode="mostrecent",
)
MESSAGES = Gauge(
    "pushcore_messages",
    "Messages by status (those created in the last 7 days).",
    ["status"],
    multiprocess_mode="mostrecent",
)
APNS_EXPIRY = Gauge(
    "pushcore_apns_credentials_expiry_seconds",
    "Seconds until an app's APNs certificate expires (certificate auth only).",
    ["app"],
    multiprocess_mode="mostrecent",
)
STATUSES = ("scheduled", "queued", "sending", "done", "cancelled", "failed")


async def sample(pool: Pool, depths: Callable[[], Awaitable[dict[str, int]]] | None) -> None:
    """Refresh the sampled gauges: queue depths, messages by status, APNs expiries."""
    if depths is not None:
        for queue, depth in (await depths()).items():
            QUEUE_DEPTH.labels(queue).set(depth)
    counts = await message_queries.status_counts(pool, days=7)
    for status in STATUSES:
        MESSAGES.labels(status).set(counts.get(status, 0))
    # only APNs certificate auth expires (token keys, FCM and VAPID keys do not)
    apns = registry.BY_KEY["apns"]
    now = time.time()
    for row in await app_queries.credentials_of(pool, apns.name):
        if not row["credentials"].get("certificate"):
            continue
        try:
            expires = msgspec.convert(row["credentials"], ApnsCredentials).expires_at()
        except (msgspec.ValidationError, ProviderError):
            continue
        if expires is not None:
            APNS_EXPIRY.labels(row["code"]).set(expires.timestamp() - now)

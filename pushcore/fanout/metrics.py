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

from pushcore.db.pool import Pool
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
BATCH_SECONDS = Histogram(
    "pushcore_batch_seconds",
    "Time to process one batch: claim, deliver, write back.",
    ["platform"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


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
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM messages "
        "WHERE created_at > now() - interval '7 days' GROUP BY status"
    )
    counts = {r["status"]: r["n"] for r in rows}
    for status in STATUSES:
        MESSAGES.labels(status).set(counts.get(status, 0))
    certs = await pool.fetch(
        "SELECT code, apns FROM apps WHERE apns ? 'certificate' AND apns->>'certificate' <> ''"
    )
    now = time.time()
    for row in certs:
        try:
            expires = msgspec.convert(row["apns"], ApnsCredentials).expires_at()
        except (msgspec.ValidationError, ProviderError):
            continue
        if expires is not None:
            APNS_EXPIRY.labels(row["code"]).set(expires.timestamp() - now)

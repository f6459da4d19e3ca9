"""Prometheus metrics of the fan-out (exported by the workers; see deploy/prometheus)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

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

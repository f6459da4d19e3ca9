"""The metric names the deployment files (alert rules, dashboard) may use.

``PUSHCORE_METRICS`` are exported by pushcore's own code (``pushcore/`` and ``workers/``): a
test checks that each appears there as a string.  Histograms are listed by their base name;
the ``_bucket``, ``_sum`` and ``_count`` series Prometheus derives from them are accepted.
``EXTERNAL_METRICS`` come from elsewhere: Dramatiq's Prometheus middleware and Prometheus
itself (``up``).
"""

from __future__ import annotations

PUSHCORE_METRICS = frozenset(
    {
        # workers (pushcore/fanout/metrics.py)
        "pushcore_notifications_total",
        "pushcore_registrations_deleted_total",
        "pushcore_sender_errors_total",
        "pushcore_batch_seconds",
        "pushcore_uncertain_resends_total",
        "pushcore_provider_pauses_total",
        "pushcore_quota_pauses_total",
        "pushcore_throttled_batches_total",
        "pushcore_write_back_failures_total",
        "pushcore_queue_depth",
        "pushcore_messages",
        "pushcore_apns_credentials_expiry_seconds",
        # workers (pushcore/webhooks/metrics.py)
        "pushcore_webhook_attempts_total",
        "pushcore_webhook_attempt_seconds",
        "pushcore_webhooks_disabled_total",
        "pushcore_webhook_outbox_backlog",
        "pushcore_webhook_outbox_oldest_due_seconds",
        # API (pushcore/api/app.py)
        "pushcore_api_requests_total",
        "pushcore_api_request_seconds",
    }
)

PUSHCORE_HISTOGRAMS = frozenset(
    {"pushcore_batch_seconds", "pushcore_api_request_seconds", "pushcore_webhook_attempt_seconds"}
)

EXTERNAL_METRICS = frozenset(
    {
        # dramatiq.middleware.prometheus (labels queue_name, actor_name)
        "dramatiq_messages_total",
        "dramatiq_message_errors_total",
        "dramatiq_messages_inprogress",
        "dramatiq_message_duration_milliseconds",
        # Prometheus: scrape success of each target
        "up",
    }
)

EXTERNAL_HISTOGRAMS = frozenset({"dramatiq_message_duration_milliseconds"})

# Every metric name the deployment files may use, in one set.
ALL_METRICS = PUSHCORE_METRICS | EXTERNAL_METRICS

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def base_name(series: str) -> str:
    """The metric a series belongs to: ``pushcore_batch_seconds_bucket`` ->
    ``pushcore_batch_seconds``; other names are returned unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        stem = series.removesuffix(suffix)
        if stem != series and stem in PUSHCORE_HISTOGRAMS | EXTERNAL_HISTOGRAMS:
            return stem
    return series

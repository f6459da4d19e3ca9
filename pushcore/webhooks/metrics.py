"""Prometheus metrics of webhook delivery (exported by the workers, aggregated over their
processes like :mod:`pushcore.fanout.metrics`; see deploy/prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "pushcore_webhook_attempts_total",
    "Webhook posts by outcome: delivered (2xx), rejected (another HTTP status), unreachable "
    "(no answer: timeout, connection error), refused (an address the policy forbids).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "pushcore_webhook_attempt_seconds",
    "Time of one webhook post, from its start to the answer or the error.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DISABLED = Counter(
    "pushcore_webhooks_disabled_total",
    "Webhook endpoints disabled after failing for their whole retry window.",
)
# Sampled by each worker process's delivery loop; the most recent sample is the truth.
BACKLOG_CAP = 100_000  # the count stops here: it reads at most this many index entries
BACKLOG = Gauge(
    "pushcore_webhook_outbox_backlog",
    f"Pending webhook events of enabled endpoints (counted up to {BACKLOG_CAP:,}).",
    multiprocess_mode="mostrecent",
)
OLDEST_DUE = Gauge(
    "pushcore_webhook_outbox_oldest_due_seconds",
    "Seconds since the longest-waiting due event of an enabled endpoint became due (0: none).",
    multiprocess_mode="mostrecent",
)

OUTCOMES = ("delivered", "rejected", "unreachable", "refused")


def outcome(status: int | None, refused: bool) -> str:
    """The ``outcome`` label of one attempt."""
    if refused:
        return "refused"
    if status is None:
        return "unreachable"
    return "delivered" if 200 <= status < 300 else "rejected"


def declare() -> None:
    """Every outcome's series at zero (a rate over a series that appears with its first
    event misses that event)."""
    for name in OUTCOMES:
        ATTEMPTS.labels(name)


def record(status: int | None, refused: bool, seconds: float, disabled: bool) -> None:
    ATTEMPTS.labels(outcome(status, refused)).inc()
    if not refused:
        ATTEMPT_SECONDS.observe(seconds)
    if disabled:
        DISABLED.inc()


def sampled(pending: int, oldest_due_seconds: float) -> None:
    BACKLOG.set(pending)
    OLDEST_DUE.set(max(oldest_due_seconds, 0.0))

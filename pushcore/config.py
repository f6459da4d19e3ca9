"""Settings from ``PUSHCORE_*`` environment variables, loaded once and checked at start-up.

Every process (API, workers, simulators, CLI) calls :func:`load_settings` once and passes the
frozen result down; nothing else reads the environment.  A variable that starts with
``PUSHCORE_`` but is not declared here is refused, so that a typo such as
``PUSHCORE_BATCH_SZIE`` fails loudly instead of silently running with the default.

To add a setting: add a field to :class:`Settings` with :func:`setting` (its environment
name, a parser and a one-line help); the README's configuration table is checked against
these declarations by a test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pushcore.endpoints import KNOWN_PUSH_SERVICES, EndpointPolicy, parse_allowed_hosts
from pushcore.errors import ConfigError

PREFIX = "PUSHCORE_"
T = TypeVar("T")

Parser = Callable[[str], Any]


def _int(lo: int, hi: int) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _float(lo: float, hi: float) -> Parser:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _choice(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse


def _url(*schemes: str) -> Parser:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"expected a {'/'.join(schemes)} URL, got {parts.scheme or '?'}://…")
        return raw

    return parse


def _https_origin(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.netloc or parts.path not in {"", "/"}:
        raise ValueError("expected an https origin such as https://api.push.apple.com")
    return f"https://{parts.netloc}"


def _secret(min_len: int) -> Parser:
    def parse(raw: str) -> str:
        if len(raw) < min_len:
            raise ValueError(f"must be at least {min_len} characters")
        return raw

    return parse


def _optional_path(raw: str) -> str | None:
    return raw or None


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def setting(env: str, default: T, parse: Parser, help: str, *, secret: bool = False) -> T:
    """Declare one setting: ``PUSHCORE_<env>`` parsed with ``parse``."""
    return dataclasses.field(
        default=default,
        metadata={"env": PREFIX + env, "parse": parse, "help": help, "secret": secret},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # --- services -----------------------------------------------------------------------
    database_url: str = setting(
        "DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/pushcore",
        _url("postgresql", "postgres"),
        "PostgreSQL DSN; the database is created by `pushcore migrate` when missing.",
    )
    db_pool_min: int = setting(
        "DB_POOL_MIN", 1, _int(0, 100), "asyncpg pool: connections kept open."
    )
    db_pool_max: int = setting(
        "DB_POOL_MAX", 10, _int(1, 200), "asyncpg pool: most connections per process."
    )
    db_command_timeout: float = setting(
        "DB_COMMAND_TIMEOUT", 30.0, _float(0.1, 3600), "Seconds any one SQL statement may take."
    )
    redis_url: str = setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        _url("redis", "rediss", "unix"),
        "Redis for the Dramatiq broker (transport only: it holds no state of record).",
    )
    # --- API ----------------------------------------------------------------------------
    admin_token: str | None = setting(
        "ADMIN_TOKEN",
        None,
        _secret(16),
        "Bearer token for the admin routes (apps); at least 16 characters. Unset: admin "
        "routes answer 401.",
        secret=True,
    )
    auth_cache_seconds: float = setting(
        "AUTH_CACHE_SECONDS",
        5.0,
        _float(0, 300),
        "How long an API process trusts a server key it has checked; a revocation reaches "
        "other API processes within this time (0 disables the cache).",
    )
    log_level: str = setting("LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR.")
    # --- console ------------------------------------------------------------------------
    console_secret: str | None = setting(
        "CONSOLE_SECRET",
        None,
        _secret(32),
        "Key that signs the console's session cookies; at least 32 characters. Unset: a "
        "random one per `pushcore api` start (shared by its --workers), so sessions end at "
        "a restart; set it when several API instances serve the console.",
        secret=True,
    )
    console_session_hours: float = setting(
        "CONSOLE_SESSION_HOURS",
        8.0,
        _float(0.05, 720),
        "How long a console sign-in lasts (the session cookie's expiry).",
    )
    console_signin_failures: int = setting(
        "CONSOLE_SIGNIN_FAILURES",
        10,
        _int(0, 10_000),
        "Failed console sign-ins a client address may make within "
        "PUSHCORE_CONSOLE_SIGNIN_WINDOW_SECONDS before it is refused (429) for the rest of "
        "the window; per API process (0: no limit).",
    )
    console_signin_window_seconds: float = setting(
        "CONSOLE_SIGNIN_WINDOW_SECONDS",
        300.0,
        _float(1, 86_400),
        "The window of PUSHCORE_CONSOLE_SIGNIN_FAILURES.",
    )
    # --- registry -----------------------------------------------------------------------
    stale_token_days: int = setting(
        "STALE_TOKEN_DAYS",
        60,
        _int(1, 3650),
        "Registrations whose token was not refreshed for this many days are deleted.",
    )
    inbox_retention_days: int = setting(
        "INBOX_RETENTION_DAYS",
        90,
        _int(1, 3650),
        "Inbox messages older than this many days are deleted from every inbox.",
    )

    # --- fan-out ------------------------------------------------------------------------
    results_retention_days: int = setting(
        "RESULTS_RETENTION_DAYS",
        30,
        _int(1, 3650),
        "Per-recipient results (GET …/messages/{id}/results), delivered webhook events and "
        "a finished message's `recipients` data are kept this many days.",
    )
    broker: str = setting(
        "BROKER", "redis", _choice("redis", "rabbitmq"), "Dramatiq broker: redis or rabbitmq."
    )
    rabbitmq_url: str = setting(
        "RABBITMQ_URL",
        "amqp://guest:guest@127.0.0.1:5672/",
        _url("amqp", "amqps"),
        "RabbitMQ for the Dramatiq broker when PUSHCORE_BROKER=rabbitmq.",
    )
    batch_size: int = setting(
        "BATCH_SIZE", 1000, _int(1, 10_000), "Registrations per batch (one Dramatiq message)."
    )
    plan_batches_per_statement: int = setting(
        "PLAN_BATCHES_PER_STATEMENT",
        20,
        _int(1, 1000),
        "Batches the planner writes per SQL statement (bounds its memory).",
    )
    retry_window_seconds: float = setting(
        "RETRY_WINDOW_SECONDS",
        3600.0,
        _float(0, 604_800),
        "How long after a message starts its registrations are retried: a retry that would "
        "come due later (or after the message's TTL) counts as failed instead.",
    )
    max_attempts: int = setting(
        "MAX_ATTEMPTS",
        30,
        _int(1, 100),
        "Sends per registration and message at most: a cap under the retry window (with "
        "the default back-off 30 attempts take 54 minutes or more, so the hour ends first).",
    )
    retry_base_seconds: float = setting(
        "RETRY_BASE_SECONDS", 1.0, _float(0, 3600), "First retry back-off (doubles per attempt)."
    )
    retry_max_seconds: float = setting(
        "RETRY_MAX_SECONDS", 300.0, _float(0, 86_400), "Longest back-off between attempts."
    )
    delivery_guarantee: str = setting(
        "DELIVERY_GUARANTEE",
        "at-least-once",
        _choice("at-least-once", "at-most-once"),
        "A request that may have reached the provider but got no answer (connection lost, "
        "stream reset, timeout) is sent again (at-least-once) or counted as failed "
        "(at-most-once).",
    )
    storm_batches: int = setting(
        "STORM_BATCHES",
        5,
        _int(0, 10_000),
        "This many batches of one app and provider failing mostly with retryable errors "
        "within PUSHCORE_STORM_WINDOW_SECONDS pause that provider's sends for the app in "
        "every worker (0: never pause).",
    )
    storm_window_seconds: float = setting(
        "STORM_WINDOW_SECONDS", 10.0, _float(0.1, 3600), "The window those batches fail in."
    )
    storm_pause_seconds: float = setting(
        "STORM_PAUSE_SECONDS",
        30.0,
        _float(0.1, 3600),
        "How long such a pause lasts; a batch failing the same way right after it pauses again.",
    )
    throttle_batch_seconds: float = setting(
        "THROTTLE_BATCH_SECONDS",
        0.1,
        _float(0.01, 1.0),
        "A message under a rate limit (its rate_per_minute, or its app's quota) is planned "
        "in batches of this many seconds' worth of the rate (at least 1, at most "
        "PUSHCORE_BATCH_SIZE), so that it is spread evenly.",
    )
    throttle_late_seconds: float = setting(
        "THROTTLE_LATE_SECONDS",
        1.0,
        _float(0.1, 1.0),
        "A batch held by a rate limit is sent when it comes back at most this long after its "
        "reserved slot; later, it takes a new slot (once), so that late batches never bunch "
        "up. The limits are spaced for it.",
    )
    worker_poll_seconds: float = setting(
        "WORKER_POLL_SECONDS",
        0.1,
        _float(0.01, 1.0),
        "How often a worker's broker consumers look for messages when idle, and for delayed "
        "ones now due (Dramatiq's worker timeout, 1 s by default there): a batch held by a "
        "rate limit comes back within about this long of its slot.",
    )
    quota_pause_max_seconds: float = setting(
        "QUOTA_PAUSE_MAX_SECONDS",
        300.0,
        _float(0, 86_400),
        "A provider's 429 with Retry-After pauses that app's sends to that provider in every "
        "worker for the time given, at most this long (0: no such pause).",
    )
    deletion_valve_share: float = setting(
        "DELETION_VALVE_SHARE",
        0.5,
        _float(0.0, 1.0),
        "Deletion safety valve: when more than this share of a batch's registrations are "
        "answered dead for a reason a misconfiguration also gives (FCM SENDER_ID_MISMATCH, "
        "APNs DeviceTokenNotForTopic or BadDeviceToken), the message stops as failed and "
        "that batch deletes nothing (1 turns the valve off).",
    )
    deletion_valve_min_registrations: int = setting(
        "DELETION_VALVE_MIN_REGISTRATIONS",
        100,
        _int(1, 1_000_000),
        "The deletion safety valve judges only batches of at least this many registrations.",
    )
    lease_seconds: float = setting(
        "LEASE_SECONDS",
        120.0,
        _float(1, 3600),
        "How long a worker owns a claimed batch; after it the reaper hands the batch to "
        "another worker. Must exceed PUSHCORE_SEND_TIMEOUT_SECONDS.",
    )
    requeue_after_seconds: float = setting(
        "REQUEUE_AFTER_SECONDS",
        30.0,
        _float(1, 86_400),
        "A queued batch (or plan job) not picked up for this long is enqueued again (a lost "
        "Redis message, a flushed Redis).",
    )
    reaper_interval_seconds: float = setting(
        "REAPER_INTERVAL_SECONDS", 5.0, _float(0.1, 3600), "How often the reaper scans the ledger."
    )
    clock_offset_seconds: float = setting(
        "CLOCK_OFFSET_SECONDS",
        0.0,
        _float(-366 * 86_400, 366 * 86_400),
        "Shifts the clock that decides when scheduled and local-time sends fall due and when "
        "TTLs run out (rehearsals and tests of a schedule); leave 0 in production. Every "
        "process of a deployment must have the same value.",
    )
    send_timeout_seconds: float = setting(
        "SEND_TIMEOUT_SECONDS", 30.0, _float(0.1, 600), "Deadline for all requests of one batch."
    )
    lane_max_targets: int = setting(
        "LANE_MAX_TARGETS",
        100,
        _int(0, 10_000),
        "A send whose target lists at most this many users, emails, phones or installations "
        "(and is not scheduled) takes the transactional lane: planned when accepted, sent "
        "with other small messages in shared claims. 0 turns the lane off.",
    )
    lane_claim_batches: int = setting(
        "LANE_CLAIM_BATCHES",
        200,
        _int(1, 5000),
        "Lane batches (a small message's batch per platform) one worker claims, sends and "
        "writes back together.",
    )
    lane_concurrency: int = setting(
        "LANE_CONCURRENCY", 2, _int(1, 64), "Lane claims in flight per worker process."
    )
    lane_poll_seconds: float = setting(
        "LANE_POLL_SECONDS",
        1.0,
        _float(0.05, 60.0),
        "How often an idle worker looks for lane batches without a notification (a missed "
        "NOTIFY, retry batches coming due).",
    )
    lane_linger_seconds: float = setting(
        "LANE_LINGER_SECONDS",
        0.02,
        _float(0.0, 1.0),
        "After a notification, how long a worker waits for more small messages before it "
        "claims (more per claim: fewer statements per message, this much more latency).",
    )
    lane_priority_wait_seconds: float = setting(
        "LANE_PRIORITY_WAIT_SECONDS",
        0.5,
        _float(0.0, 60.0),
        "While the lane has work in a worker process, a campaign batch about to be sent "
        "there waits for it at most this long (0: no priority for the lane).",
    )
    lane_max_in_flight: int = setting(
        "LANE_MAX_IN_FLIGHT",
        500,
        _int(1, 100_000),
        "HTTP/2 requests in flight per worker process for the lane, on connections of its "
        "own: a broadcast filling PUSHCORE_MAX_IN_FLIGHT never queues the lane behind it.",
    )
    template_render_seconds: float = setting(
        "TEMPLATE_RENDER_SECONDS",
        0.05,
        _float(0.001, 10),
        "CPU seconds a template render may take per recipient (all fields); a recipient over "
        "it counts failed with reason template_error.",
    )
    webhook_concurrency: int = setting(
        "WEBHOOK_CONCURRENCY",
        32,
        _int(1, 1000),
        "Webhook deliveries in flight per worker process, over all endpoints.",
    )
    webhook_endpoint_concurrency: int = setting(
        "WEBHOOK_ENDPOINT_CONCURRENCY",
        4,
        _int(1, 100),
        "Webhook deliveries in flight per endpoint and worker process: a slow receiver holds "
        "no more slots than this.",
    )
    webhook_timeout_seconds: float = setting(
        "WEBHOOK_TIMEOUT_SECONDS",
        10.0,
        _float(0.5, 120.0),
        "Deadline of one webhook delivery (connect, send, answer); past it the attempt failed.",
    )
    webhook_retry_base_seconds: float = setting(
        "WEBHOOK_RETRY_BASE_SECONDS",
        5.0,
        _float(0.01, 3600.0),
        "First webhook retry back-off (doubles per attempt, with jitter; a longer "
        "Retry-After wins).",
    )
    webhook_retry_max_seconds: float = setting(
        "WEBHOOK_RETRY_MAX_SECONDS",
        3600.0,
        _float(0.01, 86_400.0),
        "Longest back-off between two attempts of a webhook event.",
    )
    webhook_retry_window_seconds: float = setting(
        "WEBHOOK_RETRY_WINDOW_SECONDS",
        86_400.0,
        _float(1.0, 7 * 86_400.0),
        "A webhook event is retried this long after it was written, then given up; an "
        "endpoint failing for this long is disabled (webhook.disabled).",
    )
    webhook_poll_seconds: float = setting(
        "WEBHOOK_POLL_SECONDS",
        1.0,
        _float(0.05, 60.0),
        "How often an idle worker process looks for webhook events due.",
    )
    webhook_allow_private: bool = setting(
        "WEBHOOK_ALLOW_PRIVATE",
        False,
        _bool,
        "Allow webhook endpoints on private, link-local and reserved addresses (loopback "
        "stays behind PUSHCORE_WEBPUSH_ALLOW_LOOPBACK).",
    )
    max_in_flight: int = setting(
        "MAX_IN_FLIGHT",
        1000,
        _int(1, 100_000),
        "HTTP/2 requests in flight per worker process, over all providers.",
    )
    connections_per_origin: int = setting(
        "CONNECTIONS_PER_ORIGIN", 4, _int(1, 64), "HTTP/2 connections per provider origin."
    )
    apns_backend: str = setting(
        "APNS_BACKEND", "curl", _choice("curl", "aioapns"), "APNs client: curl or aioapns."
    )
    apns_origin: str = setting(
        "APNS_ORIGIN", "https://api.push.apple.com", _https_origin, "APNs production origin."
    )
    apns_sandbox_origin: str = setting(
        "APNS_SANDBOX_ORIGIN",
        "https://api.sandbox.push.apple.com",
        _https_origin,
        "APNs sandbox origin.",
    )
    fcm_origin: str = setting(
        "FCM_ORIGIN", "https://fcm.googleapis.com", _https_origin, "FCM HTTP v1 origin."
    )
    ca_file: str | None = setting(
        "CA_FILE",
        None,
        _optional_path,
        "Extra CA bundle trusted for provider connections (the local simulators' CA).",
    )
    webpush_allow_loopback: bool = setting(
        "WEBPUSH_ALLOW_LOOPBACK",
        False,
        _bool,
        "Accept and send to Web Push endpoints on loopback (127.0.0.0/8, ::1, localhost), "
        "over http too, whatever PUSHCORE_WEBPUSH_ALLOWED_HOSTS says: the local simulators "
        "and tests only.",
    )
    webpush_allowed_hosts: tuple[str, ...] = setting(
        "WEBPUSH_ALLOWED_HOSTS",
        KNOWN_PUSH_SERVICES,
        parse_allowed_hosts,
        "Comma-separated push-service hosts Web Push endpoints may name: `host`, `*.host` "
        "(any name below it) or `*` (any public host or address). Private, link-local and "
        "other internal addresses are refused whatever this says, at registration and on "
        "the connected address at send time.",
    )

    def now(self) -> dt.datetime:
        """The schedule's clock (UTC): the machine's, shifted by PUSHCORE_CLOCK_OFFSET_SECONDS;
        the SQL side's ``clock_now()`` reads the same offset from the session."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_seconds)

    def endpoint_policy(self) -> EndpointPolicy:
        """The one Web Push endpoint policy: registration and sending apply the same."""
        return EndpointPolicy(self.webpush_allowed_hosts, self.webpush_allow_loopback)

    def describe(self) -> dict[str, str]:
        """The effective settings with secrets masked, for logs and `pushcore config`."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "***" if f.metadata["secret"] and value is not None else repr(value)
            out[f.metadata["env"]] = shown
        return out


def with_console_secret(settings: Settings) -> Settings:
    """``settings`` with a console secret: the configured one, or a new random one (call it
    once per server start, before any worker process is made, so that they share it)."""
    if settings.console_secret is not None:
        return settings
    return dataclasses.replace(settings, console_secret=secrets.token_urlsafe(32))


def declared() -> list[tuple[str, Any, str]]:
    """(variable, default, help) of every setting, for documentation and its test."""
    return [
        (f.metadata["env"], f.default, f.metadata["help"]) for f in dataclasses.fields(Settings)
    ]


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and check every ``PUSHCORE_*`` variable; raise :class:`ConfigError` listing all
    problems at once.  ``overrides`` (field names) win over the environment: tests and the
    in-process simulators use them."""
    env = os.environ if environ is None else environ
    fields = {f.metadata["env"]: f for f in dataclasses.fields(Settings)}
    problems = [
        f"{name}: unknown setting"
        for name in sorted(env)
        if name.startswith(PREFIX) and name not in fields
    ]
    values: dict[str, Any] = {}
    for name, f in fields.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    unknown_overrides = set(overrides) - {f.name for f in fields.values()}
    if unknown_overrides:
        raise TypeError(f"unknown settings: {sorted(unknown_overrides)}")
    values.update(overrides)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    settings = Settings(**values)
    _check_relations(settings)
    return settings


def _check_relations(s: Settings) -> None:
    if s.db_pool_min > s.db_pool_max:
        raise ConfigError(
            "invalid configuration: PUSHCORE_DB_POOL_MIN exceeds PUSHCORE_DB_POOL_MAX"
        )
    if s.lease_seconds <= s.send_timeout_seconds:
        raise ConfigError(
            "invalid configuration: PUSHCORE_LEASE_SECONDS must exceed "
            "PUSHCORE_SEND_TIMEOUT_SECONDS (a batch still sending would be handed out again)"
        )

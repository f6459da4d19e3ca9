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
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
    # --- registry -----------------------------------------------------------------------
    stale_token_days: int = setting(
        "STALE_TOKEN_DAYS",
        60,
        _int(1, 3650),
        "Registrations whose token was not refreshed for this many days are deleted.",
    )

    def describe(self) -> dict[str, str]:
        """The effective settings with secrets masked, for logs and `pushcore config`."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "***" if f.metadata["secret"] and value is not None else repr(value)
            out[f.metadata["env"]] = shown
        return out


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

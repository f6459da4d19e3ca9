"""Errors of the fan-out layer."""

from __future__ import annotations

import asyncpg
from redis.exceptions import RedisError

from pushcore.errors import PushcoreError

# What a worker's background loop (the reaper, the lane) survives and retries later: the
# database or the broker gone for a while, a timeout.  Anything else is a bug and ends it.
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, RedisError)
# What makes a write to PostgreSQL worth trying again unchanged: the server unreachable,
# restarting or shutting down, a lost connection, a timeout, a deadlock or serialization
# failure.  Other errors would fail the same way again.
DB_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.QueryCanceledError,
)


class FanoutError(PushcoreError):
    """Root of the fan-out layer's exceptions."""


class InvalidSend(FanoutError):
    """A send request cannot be accepted; ``field`` names the culprit (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

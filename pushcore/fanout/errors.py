"""Errors of the fan-out layer."""

from __future__ import annotations

from pushcore.errors import PushcoreError


class FanoutError(PushcoreError):
    """Root of the fan-out layer's exceptions."""


class InvalidSend(FanoutError):
    """A send request cannot be accepted; ``field`` names the culprit (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

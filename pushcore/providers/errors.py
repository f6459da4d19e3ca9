"""Errors of the provider layer (pure request building, classification, credentials)."""

from __future__ import annotations

from pushcore.errors import PushcoreError


class ProviderError(PushcoreError):
    """Root of the provider layer's exceptions."""


class CredentialsError(ProviderError):
    """A credential given by an app is malformed; ``field`` names where (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadTooLarge(ProviderError):
    """The rendered payload exceeds the provider's limit; nothing was sent."""

    def __init__(self, provider: str, size: int, limit: int) -> None:
        super().__init__(f"{provider} payload is {size} bytes; the limit is {limit}")
        self.provider = provider
        self.size = size
        self.limit = limit


class InvalidNotification(ProviderError):
    """The notification cannot be expressed for this provider (e.g. a reserved data key);
    nothing was sent."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class AuthError(ProviderError):
    """No usable provider authorization (FCM access token): the token endpoint refused the
    credentials (``retryable`` False: the app's credentials are wrong) or failed for the
    moment (``retryable`` True), or ``build`` was called before a token was obtained."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

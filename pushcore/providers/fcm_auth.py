"""OAuth 2.0 access tokens for FCM, from a Google service account, without I/O.

Google's two-legged flow (RFC 7523 JWT bearer grant): sign an RS256 assertion with the
service account's key, POST it form-encoded to the account's ``token_uri``, receive an
access token valid for about an hour.  Here: the assertion, the request, the parsing of
the answer and a cache that says when to refresh; the transport sends the request.

The cache refreshes ``margin`` seconds (default 5 minutes) before expiry so that requests
in flight never carry a token that expires on the way, and so that a failed refresh can be
retried while the old token still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import jwt

from pushcore.providers.base import json_object
from pushcore.providers.credentials import FcmCredentials
from pushcore.providers.errors import AuthError
from pushcore.transport.base import Request, Response

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google refuses assertions valid for more than one hour.
ASSERTION_LIFETIME = 3600
# A burst of 401s answering one token should cause one refresh, not one per answer.
INVALIDATE_GRACE = 60.0


def assertion(credentials: FcmCredentials, now: float) -> str:
    """The signed JWT (``iss`` = client_email, ``scope``, ``aud`` = token_uri, ``iat``,
    ``exp`` = iat + 1 h) with ``kid`` = private_key_id when the account has one."""
    account = credentials.account()
    issued = int(now)
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, credentials.signing_key(), algorithm="RS256", headers=headers)


def token_request(credentials: FcmCredentials, now: float) -> Request:
    """The form POST that exchanges a fresh :func:`assertion` for an access token."""
    body = urlencode({"grant_type": GRANT_TYPE, "assertion": assertion(credentials, now)})
    return Request(
        url=credentials.account().token_uri,
        headers=(
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ),
        body=body.encode("ascii"),
    )


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: float  # Unix seconds

    def __repr__(self) -> str:  # never print the secret itself
        return f"AccessToken(expires_at={self.expires_at})"


def parse_token_response(response: Response, now: float) -> AccessToken:
    """The token from the endpoint's answer, or :class:`AuthError`: ``retryable`` False
    when Google refused the credentials (400/401/403, e.g. ``invalid_grant`` for a deleted
    key), True for transport failures, 429, 5xx and malformed answers."""
    if response.failure is not None:
        raise AuthError(f"token endpoint: {response.failure.value}", retryable=True)
    body = json_object(response.body)
    if response.status != 200:
        # error/error_description name the problem and never echo the assertion
        error = body.get("error", "")
        description = body.get("error_description", "")
        retryable = response.status == 429 or response.status >= 500
        raise AuthError(
            f"token endpoint answered {response.status} {error} {description}".rstrip(),
            retryable=retryable,
        )
    token = body.get("access_token")
    expires_in = body.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
        raise AuthError("token endpoint answer has no access_token/expires_in", retryable=True)
    return AccessToken(token, now + float(expires_in))


class AccessTokenCache:
    """One access token per service account, in memory."""

    def __init__(self, *, margin: float = 300.0) -> None:
        self.margin = margin
        self._token: AccessToken | None = None
        self._stored_at = 0.0

    def refresh_due(self, now: float) -> bool:
        return self._token is None or now >= self._token.expires_at - self.margin

    def current(self, now: float) -> str | None:
        """The token if it is still valid at ``now`` (even when a refresh is already due)."""
        if self._token is None or now >= self._token.expires_at:
            return None
        return self._token.token

    def store(self, token: AccessToken, now: float) -> None:
        self._token = token
        self._stored_at = now

    def invalidate(self, now: float) -> None:
        """Drop the token after a 401, unless it was stored in the last
        :data:`INVALIDATE_GRACE` seconds (answers to the previous token arriving late)."""
        if now - self._stored_at >= INVALIDATE_GRACE:
            self._token = None

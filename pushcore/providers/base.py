"""The contract every provider (APNs, FCM, Web Push) fulfils, and what it returns.

A provider is pure: it renders a notification (the common
:class:`~pushcore.providers.notification.Content` and its own override block) once per
message, builds one :class:`~pushcore.transport.base.Request` per registration,
and classifies each :class:`~pushcore.transport.base.Response` into a :class:`Result`.  The
caller moves the bytes.  Time comes in as ``now``: Unix seconds (``time.time()``), never a
monotonic clock, because it ends up in JWT ``iat``/``exp`` claims and expiry headers.

One send of a batch goes::

    rendered = provider.render(notification)           # PayloadTooLarge: nothing sent
    if (auth := provider.auth_request(now)) is not None:  # only FCM fetches a token
        provider.accept_auth((await transport.send([auth], timeout=t))[0], now)
    prepared = provider.build(rendered, registrations, now)
    # a Result in ``prepared`` was decided without sending (e.g. undecodable Web Push keys)
    results = [provider.classify(r) for r in await transport.send(requests, timeout=t)]
    if any(r.refresh_auth for r in results):
        provider.invalidate_auth(now)

Transport failures (``Response.failure`` set) classify as ``RETRY`` (but for ``BLOCKED``: the
endpoint's address is refused by policy, which sending again would not change, so the
registration fails for this message and is kept): an unprocessed request
is always safe to send again, and one that the server may have processed is sent again
too, because a duplicate notification is a far smaller harm than a lost one.  Push
providers keep no idempotency key we could use instead (APNs' ``apns-id`` only labels).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from pushcore.providers.notification import Content
from pushcore.transport.base import Failure, Request, Response

Platform = Literal["ios", "android", "web"]

# A Retry-After further away than this is treated as this: a malformed or hostile value
# must not park a message for days; the caller's own backoff takes over after it.
MAX_RETRY_AFTER = 3600.0


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # accepted by the provider
    INVALID = "invalid"  # the registration is dead: delete it
    RETRY = "retry"  # temporary: send again later (``Result.retry_after`` if known)
    SENDER_ERROR = "sender_error"  # our credentials/configuration: stop, never delete
    PERMANENT = "permanent"  # this message cannot go to this registration: give up on it


@dataclass(frozen=True, slots=True)
class Result:
    """The classification of one response.  ``reason`` is the provider's reason code (or
    ``http-<status>`` / ``transport-<failure>``), meant for counters and logs.
    ``refresh_auth`` says the authorization used (APNs JWT, FCM access token) must be
    renewed before the next send: call ``Provider.invalidate_auth``.  ``invalid_since``
    (APNs 410 only, Unix seconds) is when the provider found the token dead: a registration
    whose token was updated after it is alive and must not be deleted.  ``suspect`` marks
    an ``INVALID`` answer that a misconfiguration of ours also produces for every token
    (wrong FCM project, wrong APNs topic or environment): the send path's deletion safety
    valve counts them."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None
    refresh_auth: bool = False
    status: int = 0
    invalid_since: float | None = None
    suspect: bool = False


# A Web Push endpoint the endpoint policy refuses, by its URL when the batch is built or by
# the address it resolved to when connecting.  The registration is kept, never deleted as
# dead: the policy is the operator's to change (PUSHCORE_WEBPUSH_ALLOWED_HOSTS, a resolver
# answering wrongly for a while) and a deletion cannot be undone.  It fails for this message
# and goes with PUSHCORE_STALE_TOKEN_DAYS like any registration nobody refreshes.
ENDPOINT_REFUSED = Result(Outcome.PERMANENT, "endpoint-refused")


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """One push address.  ``token``: the APNs device token, the FCM registration token, or
    the Web Push endpoint URL; ``p256dh`` and ``auth`` (base64url) only for Web Push."""

    installation_id: int
    token: str
    p256dh: str | None = None
    auth: str | None = None


RenderedT = TypeVar("RenderedT")


class Provider(Protocol[RenderedT]):
    """What the send path needs from a provider; implementations keep small in-memory
    caches (JWTs, access tokens) and nothing else."""

    name: str

    @property
    def client_identity(self) -> tuple[str, str] | None:
        """(certificate PEM, key PEM) when the provider authenticates on the TLS connection
        (APNs certificate auth): the transport must present it, so such an app needs
        connections of its own.  None when requests carry their own authorization."""
        ...

    def render(self, notification: Content) -> RenderedT:
        """Encode the notification once per message.  Raises ``PayloadTooLarge`` or
        ``InvalidNotification``; nothing has been sent then."""
        ...

    def auth_request(self, now: float) -> Request | None:
        """A request that must be sent (and its answer passed to :meth:`accept_auth`)
        before :meth:`build`, or ``None`` when the cached authorization is good."""
        ...

    def accept_auth(self, response: Response, now: float) -> None:
        """Take the answer to :meth:`auth_request`; raises ``AuthError``."""
        ...

    def invalidate_auth(self, now: float) -> None:
        """Drop the cached authorization after a ``refresh_auth`` result."""
        ...

    def build(
        self, rendered: RenderedT, registrations: Sequence[Registration], now: float
    ) -> list[Request | Result]:
        """One entry per registration, in order: the request to send, or a result decided
        without sending (the registration cannot be addressed at all)."""
        ...

    def classify(self, response: Response, now: float | None = None) -> Result:
        """Classify one answer.  ``now`` resolves an HTTP-date ``Retry-After``; without
        it the response's ``Date`` header is the reference."""
        ...


def transport_result(response: Response) -> Result | None:
    """The result of a response that carries no HTTP answer (see the module docstring)."""
    if response.failure is None:
        return None
    if response.failure is Failure.BLOCKED:
        return ENDPOINT_REFUSED
    return Result(Outcome.RETRY, f"transport-{response.failure.value}")


_DELAY_SECONDS = re.compile(r"\d{1,10}(\.\d+)?")


def parse_retry_after(
    value: str | None, *, now: float | None = None, date: str | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds, or an HTTP-date taken
    relative to ``now`` or else to the response's ``Date`` header (both clocks from the same
    server, so skew cancels).  ``None`` when absent, unparsable or without a reference.
    Capped at :data:`MAX_RETRY_AFTER`."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER)
    target = _http_date(value)
    if target is None:
        return None
    if now is None:
        now = _http_date(date) if date is not None else None
        if now is None:
            return None
    return min(max(target - now, 0.0), MAX_RETRY_AFTER)


def _http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" in the value: RFC 5322 says UTC
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def retry_after(response: Response, now: float | None) -> float | None:
    return parse_retry_after(
        response.headers.get("retry-after"), now=now, date=response.headers.get("date")
    )


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``{}``: error bodies are advisory and may be empty,
    HTML from a proxy, or truncated."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def header_list(headers: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Headers as the transport takes them, unset ones left out."""
    return tuple((name, value) for name, value in headers.items() if value is not None)

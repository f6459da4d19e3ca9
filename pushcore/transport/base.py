"""What crosses the boundary between providers (pure) and the transport (I/O).

A provider turns one notification and a batch of registrations into :class:`Request`\\ s; a
:class:`Transport` sends them and returns one :class:`Response` per request, in order, each
either an HTTP answer (``status`` > 0) or a ``failure`` that says whether the server may have
processed the request.  The provider then classifies each response into an outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Failure(enum.Enum):
    """Why no HTTP answer arrived.  ``UNPROCESSED`` failures are safe to send again (the
    server said so, e.g. GOAWAY with a lower last-stream-id or RST_STREAM REFUSED_STREAM, or
    the connection never opened); the others may or may not have reached the server."""

    CONNECT = "connect"  # TCP/TLS connection could not be made: unprocessed
    REFUSED = "refused"  # GOAWAY above last-stream-id / REFUSED_STREAM: unprocessed
    NOT_SENT = "not_sent"  # still in the client's own queue at the deadline: unprocessed
    RESET = "reset"  # stream reset by the server after the request was sent
    CONNECTION_LOST = "connection_lost"  # connection dropped while waiting for the answer
    TIMEOUT = "timeout"  # no answer within the deadline
    PROTOCOL = "protocol"  # malformed HTTP/2 from the peer
    BLOCKED = "blocked"  # the peer's address is refused by ``Request.peer_allowed``: unsent

    @property
    def unprocessed(self) -> bool:
        return self in (Failure.CONNECT, Failure.REFUSED, Failure.NOT_SENT, Failure.BLOCKED)


@dataclass(frozen=True, slots=True)
class Request:
    url: str  # absolute https URL
    headers: Sequence[tuple[str, str]]  # lower-case names, no pseudo-headers
    body: bytes
    method: str = "POST"
    # Whether a connection to this peer address (what the name resolved to) may carry the
    # request; checked when a connection is opened for it, before anything is sent.  For
    # URLs that come from outside (Web Push endpoints); None trusts the address.
    peer_allowed: Callable[[str], bool] | None = None


@dataclass(frozen=True, slots=True)
class Response:
    status: int  # HTTP status; 0 when ``failure`` is set
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    failure: Failure | None = None
    detail: str = ""  # human-readable reason of a failure, for logs


class Transport(Protocol):
    """One process-wide client: multiplexed HTTP/2 over TLS, bounded, with timeouts."""

    async def send(self, requests: Sequence[Request], *, timeout: float) -> list[Response]:
        """Send every request and return their responses in the same order.  Returns within
        ``timeout`` seconds (plus scheduling slack): a request still unanswered then gets
        ``Failure.TIMEOUT``.  Never raises for a per-request problem."""
        ...

    async def aclose(self) -> None: ...

"""An APNs-only :class:`~pushcore.transport.base.Transport` built on aioapns 4.0.

An alternative to the default pycurl engine.  Each :class:`Request` of the APNs provider
becomes an aioapns ``NotificationRequest``; each answer a :class:`Response` (status,
headers, body ``{"reason", "timestamp"}`` rebuilt from the ``NotificationResult``), so the
provider's classifier works unchanged.  aioapns' pool, stream ids, request headers and JWT
header are used; connection set-up and the receive path are subclassed, because of these
aioapns 4.0 defects:

* Host/port are class attributes (``APNS_SERVER``/``APNS_PORT``), TLS has no CA option and
  no ALPN.  Handled: our pool connects to ``origin`` with an SSL context trusting
  ``ca_file`` and offering ``h2``; ``APNS_SERVER`` (the ``host`` header) is per connection.
* It never returns flow-control window: a connection stalls after ~64 KiB of error bodies
  (~2,300 BadDeviceToken).  Fixed: every DATA frame is acknowledged.
* It matches answers by ``apns-id`` echo, ignores RST_STREAM and resolves an error only on
  a JSON ``reason`` in one DATA frame: a reset, an error without reason or a 200 without
  ``apns-id`` hangs (leaking its stream slot); a non-JSON body kills the connection.
  Fixed: answers are matched by stream and resolved on END_STREAM; a reset gives
  ``Failure.RESET`` (``REFUSED`` for REFUSED_STREAM).
* 200 answers stay in ``request_streams`` until the connection closes (memory growth).
  Fixed: finished streams are forgotten, so connections need no recycling.
* On GOAWAY it closes at once and its pool re-sends all in-flight requests, also ones the
  server processed.  Fixed: that retry loop is bypassed; streams above the last-stream-id
  get ``REFUSED`` (safe to resend), the others are still awaited.  Documented: a dropped
  connection gives ``CONNECTION_LOST`` (RETRY), so a processed request may be sent twice.
* One JWT per connection: reconnects mint new tokens, and APNs answers 429
  TooManyProviderTokenUpdates to a key whose token changes more often than every 20 min.
  Handled: connections share one :class:`TokenSigner` handed in by the caller (the APNs
  provider's, so one per process), invalidated on 403 Expired/InvalidProviderToken.  The
  requests' ``authorization`` header is ignored: aioapns writes its own.
* What still hangs (no answer; an exhausted outbound window: aioapns never waits for
  WINDOW_UPDATE) is cut by the batch deadline: every await is under ``asyncio.timeout_at``
  (``Failure.TIMEOUT``); the stream is reset and its slot freed.

Limits, documented only: aioapns fills one connection up to the server's
MAX_CONCURRENT_STREAMS (at most 1000) before opening the next, busy-polls every 10 ms when
all ``connections`` are full (keep ``max_in_flight`` below that) and closes connections
idle for 10 s; two in-flight requests with one ``apns-id`` collide (the first times out);
``apns-expiration`` travels as a TTL that aioapns adds to its own clock when the stream
opens (second resolution); certificate auth is not supported.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import msgspec
from aioapns.common import NotificationRequest, NotificationResult, PushType
from aioapns.connection import APNsBaseConnectionPool, APNsTLSClientProtocol
from aioapns.connection import AuthorizationHeaderProvider as AuthHeader
from aioapns.exceptions import ConnectionClosed
from aioapns.exceptions import ConnectionError as ApnsConnectError
from h2 import events as ev
from h2.errors import ErrorCodes
from h2.exceptions import NoAvailableStreamIDError, ProtocolError

from pushcore.transport.base import Failure, Request, Response

MAX_ERROR_BODY = 4096  # APNs error bodies are ~50 bytes; more is not kept
CLOSE_TIMEOUT = 5.0
_AUTH_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


class TokenSigner(Protocol):
    """Mints the APNs provider token (the APNs provider's ``ApnsTokenSigner``)."""

    def token(self, now: float) -> str: ...

    def invalidate(self, now: float) -> None: ...


class _StreamFailed(Exception):
    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure  # how the request ended without an HTTP answer


class _ErrorBody(msgspec.Struct, omit_defaults=True):
    reason: str = ""
    timestamp: int | None = None


class _Result(NotificationResult):
    """aioapns' result plus the response headers (``retry-after`` is needed for 429)."""

    __slots__ = ("headers",)

    def __init__(self, nid: str, headers: dict[str, str], body: bytes) -> None:
        try:
            error = msgspec.json.decode(body, type=_ErrorBody)
        except msgspec.DecodeError:  # empty, HTML from a proxy...: the status classifies
            error = _ErrorBody()
        super().__init__(nid, headers.pop(":status", "0"), error.reason or None, error.timestamp)
        self.headers = headers


class _Protocol(APNsTLSClientProtocol):
    """aioapns' send path, with a receive path that matches answers by stream id."""

    def __init__(self, pool: _Pool, authority: str) -> None:
        super().__init__(pool.apns_topic or "", pool.loop, None, pool)
        self.APNS_SERVER, self.pool = authority, pool  # APNS_SERVER: the ``host`` header
        self.heads: dict[int, list[Any]] = {}
        self.bodies: dict[int, bytes] = {}
        self.draining = self.lost = False  # draining: GOAWAY or ids used up, no new streams
        self.closed: asyncio.Future[None] = pool.loop.create_future()

    @property
    def unusable(self) -> bool:
        return self.draining or self.lost or self.transport is None or self.transport.is_closing()

    @property
    def is_busy(self) -> bool:  # what aioapns' pool asks before handing a connection out
        return self.unusable or self.free_channels.is_busy

    def flush(self) -> None:  # aioapns writes even to a closing transport
        if self.transport is not None and not self.transport.is_closing():
            super().flush()

    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        if self.unusable:
            raise ConnectionClosed("connection closing")
        try:
            return await super().send_notification(request)
        except ProtocolError as exc:
            # From send_headers/send_data (GOAWAY received, TooManyStreams, outbound window
            # exhausted) or stream id exhaustion.  No await ran since our stream id was
            # allocated, so ``_stream_id`` is ours; the server never got a whole request.
            self.free_channels.release()
            self._reset(self.free_channels._stream_id)
            if isinstance(exc, NoAvailableStreamIDError):
                self._retire()
            raise _StreamFailed(Failure.REFUSED, f"not sent: {exc!r}") from exc
        except asyncio.CancelledError:  # our deadline: reset the stream, free its slot
            nid = request.notification_id
            sid = next((s for s, n in self.request_streams.items() if n == nid), 0)
            if sid:  # 0: cancelled while waiting for a stream slot, nothing was sent
                self._take(sid)
                self._reset(sid)
            raise

    def _reset(self, sid: int) -> None:
        if sid in self.conn.streams and not self.lost:
            try:
                self.conn.reset_stream(sid, ErrorCodes.CANCEL)
                self.flush()
            except ProtocolError:
                pass  # the connection is already closed in h2's state machine

    def _retire(self) -> None:
        """No new streams here; close once the open ones are answered (see ``_take``)."""
        self.draining = True
        self.pool.forget(self)  # new requests go to a new connection
        if not self.request_streams:
            self.close()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self._fail_all(Failure.PROTOCOL, f"HTTP/2 error: {exc!r}")
            self.close()
            return
        for event in events:
            if isinstance(event, ev.ResponseReceived):
                self.heads[event.stream_id] = event.headers
            elif isinstance(event, ev.DataReceived):
                # The fix of the stall: give the window back (padding included).
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                body = self.bodies.get(event.stream_id, b"")
                if len(body) < MAX_ERROR_BODY and event.stream_id in self.request_streams:
                    self.bodies[event.stream_id] = body + event.data
            elif isinstance(event, ev.StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, ev.StreamReset):
                refused = event.error_code == ErrorCodes.REFUSED_STREAM
                failure = Failure.REFUSED if refused else Failure.RESET
                self._fail(event.stream_id, failure, f"RST_STREAM {event.error_code!r}")
            elif isinstance(event, ev.RemoteSettingsChanged):
                self.on_remote_settings_changed(cast(Any, event.changed_settings))
            elif isinstance(event, ev.ConnectionTerminated):
                last = event.last_stream_id or 0
                self._fail_all(Failure.REFUSED, "above GOAWAY last-stream-id", above=last)
                self._retire()  # streams up to ``last`` may still be answered...
                if event.error_code != ErrorCodes.NO_ERROR:
                    self.close()  # ...unless the GOAWAY reports an error
        self.flush()

    def _take(self, sid: int) -> tuple[str, asyncio.Future[NotificationResult] | None]:
        self.heads.pop(sid, None)
        self.bodies.pop(sid, None)
        nid = self.request_streams.pop(sid, None)
        if nid is None:
            return "", None  # already abandoned (deadline) or failed
        self.free_channels.release()
        future = self.requests.pop(nid, None)
        if self.draining and not self.request_streams:
            self.close()
        return nid, future if future is not None and not future.done() else None

    def _finish(self, sid: int) -> None:
        raw, body = self.heads.get(sid, []), self.bodies.get(sid, b"")
        nid, future = self._take(sid)
        if future is not None:
            headers = {bytes(k).decode(): bytes(v).decode() for k, v in raw}
            future.set_result(_Result(nid, headers, body))

    def _fail(self, sid: int, failure: Failure, detail: str) -> None:
        _, future = self._take(sid)
        if future is not None:
            future.set_exception(_StreamFailed(failure, detail))

    def _fail_all(self, failure: Failure, detail: str, above: int = 0) -> None:
        for sid in [s for s in self.request_streams if s > above]:
            self._fail(sid, failure, detail)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool.forget(self)
        self.pool.every.discard(self)
        self._fail_all(Failure.CONNECTION_LOST, f"connection lost: {exc!r}")
        # aioapns' handler cancels the idle timer and wakes the tasks still waiting for a
        # stream slot with ConnectionClosed (they sent nothing).
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)


class _Pool(APNsBaseConnectionPool, AuthHeader):
    """aioapns' pool (connection reuse, ``max_connections``) connecting to our origin, and
    the ``authorization`` header of all its connections: one shared signer."""

    def __init__(self, transport: AioapnsTransport, ctx: ssl.SSLContext) -> None:
        super().__init__(topic=transport.topic, max_connections=transport.connections)
        self.ssl_context, self.to = ctx, transport
        self.every: set[_Protocol] = set()  # open connections, also draining ones

    def get_header(self) -> str:
        return "bearer " + self.to.signer.token(time.time())

    async def create_connection(self) -> _Protocol:
        factory: Callable[[], _Protocol] = partial(_Protocol, self, self.to.authority)
        host, port = self.to.host, self.to.port
        _, protocol = await self.loop.create_connection(factory, host, port, ssl=self.ssl_context)
        self.every.add(protocol)
        return protocol

    def forget(self, protocol: _Protocol) -> None:  # no new requests go to ``protocol``
        if protocol in self.connections:
            self.connections.remove(protocol)


class AioapnsTransport:
    """APNs requests of one app (one credential) over aioapns; see the module docstring."""

    def __init__(
        self,
        *,
        topic: str,
        signer: TokenSigner,
        origin: str,
        ca_file: str | None,
        connections: int,
        max_in_flight: int,
    ) -> None:
        parts = urlsplit(origin.rstrip("/"))
        if parts.scheme != "https" or not parts.hostname or parts.path:
            raise ValueError(f"origin must be https://host[:port], got {origin!r}")
        if min(connections, max_in_flight) < 1:
            raise ValueError("connections and max_in_flight must be >= 1")
        self.topic, self.ca_file, self.connections = topic, ca_file, connections
        self.origin = f"https://{parts.netloc}"
        self.host, self.port, self.authority = parts.hostname, parts.port or 443, parts.netloc
        self.signer = signer
        self._prefix = self.origin + "/3/device/"
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pool: _Pool | None = None  # made on the running loop (aioapns binds it)
        self._body: bytes | None = None  # a batch shares one payload: decode it once
        self._message: dict[str, Any] = {}

    async def send(self, requests: Sequence[Request], *, timeout: float) -> list[Response]:
        deadline = asyncio.get_running_loop().time() + timeout
        if self._pool is None:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            ctx.set_alpn_protocols(["h2"])  # aioapns sets none
            self._pool = _Pool(self, ctx)
        pool = self._pool
        return list(await asyncio.gather(*(self._send_one(pool, r, deadline) for r in requests)))

    async def _send_one(self, pool: _Pool, request: Request, deadline: float) -> Response:
        try:
            notification = self._convert(request)
            async with asyncio.timeout_at(deadline), self._slots:
                connection = await pool.acquire()
                result = await connection.send_notification(notification)
        except (ValueError, TimeoutError, ApnsConnectError, ConnectionClosed) as exc:
            # ValueError: not built for APNs; ConnectionClosed: before a stream was opened
            failure = Failure.TIMEOUT if isinstance(exc, TimeoutError) else Failure.CONNECT
            if isinstance(exc, ConnectionClosed):
                failure = Failure.REFUSED
            return Response(0, failure=failure, detail=f"{failure.value}: {exc!r}")
        except _StreamFailed as exc:
            return Response(0, failure=exc.failure, detail=str(exc))
        status = int(result.status)
        headers = result.headers if isinstance(result, _Result) else {}
        if result.description is None:
            return Response(status, headers)
        if status == 403 and result.description in _AUTH_REASONS:
            self.signer.invalidate(time.time())  # mint anew, at most once per burst
        error = _ErrorBody(result.description, result.timestamp)
        return Response(status, headers, msgspec.json.encode(error))

    def _convert(self, request: Request) -> NotificationRequest:
        if request.method != "POST" or not request.url.startswith(self._prefix):
            raise ValueError(f"{request.method} {request.url}")
        token = request.url[len(self._prefix) :]  # already %-quoted by the provider
        if not token or "/" in token or "?" in token:
            raise ValueError(f"bad device token in {request.url}")
        if request.body != self._body:
            message = msgspec.json.decode(request.body)
            if not isinstance(message, dict):
                raise ValueError("the body is not a JSON object")
            self._body, self._message = request.body, message
        h = dict(request.headers)
        ttl = None
        if "apns-expiration" in h:  # aioapns only takes a TTL: 0 stays ~0 ("now or never")
            ttl = int(h["apns-expiration"]) - int(time.time())
        push_type: Any = h.get("apns-push-type")
        if push_type is not None:  # the enum lacks e.g. pushtotalk: aioapns only reads .value
            known = push_type in PushType._value2member_map_
            push_type = PushType(push_type) if known else SimpleNamespace(value=push_type)
        priority = int(h["apns-priority"]) if "apns-priority" in h else None
        return NotificationRequest(
            token, self._message, h.get("apns-id"), ttl, priority, h.get("apns-collapse-id"),
            cast(PushType | None, push_type), apns_topic=h.get("apns-topic")
        )  # fmt: skip

    async def aclose(self) -> None:
        protocols = list(self._pool.every) if self._pool is not None else []
        self._pool = None
        for protocol in protocols:
            protocol.close()
        if protocols:
            await asyncio.wait([p.closed for p in protocols], timeout=CLOSE_TIMEOUT)
        for protocol in protocols:  # TLS close_notify unanswered: drop the socket
            if not protocol.closed.done() and protocol.transport is not None:
                protocol.transport.abort()

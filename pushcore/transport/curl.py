"""CurlTransport: libcurl's multi interface (HTTP/2 via nghttp2) driven by the asyncio loop.

libcurl never blocks here and no thread is used: libcurl tells us which sockets it wants
watched (``M_SOCKETFUNCTION`` -> ``loop.add_reader``/``add_writer``) and when it next needs
a timeout (``M_TIMERFUNCTION`` -> ``loop.call_later``); each readiness event or timer calls
``socket_action`` which does all the TLS, HTTP/2 framing and callbacks in C, then finished
transfers are collected with ``info_read``.  Python runs only per request (set-up, header
and body callbacks, building the :class:`Response`), which is why this client does ~20,000
requests per CPU-second where pure-Python HTTP/2 stacks do a few thousand.

Bounds: at most ``max_in_flight`` requests are inside libcurl at once, the rest wait in a
FIFO shared by every :meth:`CurlTransport.send` call; libcurl itself opens at most
``max_connections_per_origin`` connections to one host and puts at most
``max_streams_per_connection`` streams (or the server's SETTINGS_MAX_CONCURRENT_STREAMS if
lower) on each, queueing the rest internally.  Response bodies are capped at ``body_cap``.

libcurl behaviours the caller must know (measured with libcurl 8.23 / nghttp2 1.70 by
``tests/transport``; libcurl has no switch for any of them):

* GOAWAY: libcurl marks the connection for closing and opens no more streams on it; the
  streams at or below the last-stream-id are still answered there, those above it are
  re-sent by libcurl on a fresh connection (the server promised not to process them), so
  they normally just succeed.  That holds only if the server closes gracefully: when it
  closes the socket while our frames are still arriving (new streams sent before its
  GOAWAY reached us, WINDOW_UPDATEs), its kernel answers with a TCP RST and ours then
  discards the answers and the GOAWAY we had not read yet; libcurl fails every transfer on
  the connection ("Send failure: Broken pipe", CONNECTION_LOST), answered ones included.
  Measured against the fault server when it closed at once (GOAWAY every 60 streams, 3%
  RST_STREAM, server in its own process): 0-142 of 6,000 answered requests per run
  reported lost; with its 2 s lingering close (``goaway_grace``; nghttp2 and nginx linger
  too) none in any run (``tests/transport/test_curl_faults.py``, ``benchmarks.goaway``).
  The transport cannot tell those apart from requests the server never saw, so they stay
  "possibly processed".
* RST_STREAM(REFUSED_STREAM) is retried the same way, but libcurl then closes the whole
  connection.  libcurl puts streams on a new connection before it has seen the server's
  SETTINGS (measured: 50 at once against a server allowing 10, capped only by
  ``max_streams_per_connection``); the server refuses the excess, and every retry bursts
  again on a new connection.  After 5 tries libcurl gives up with
  "Connection died, tried 5 times before giving up" (CURLE_RECV_ERROR), which we must call
  CONNECTION_LOST although the server refused it.  So set ``max_streams_per_connection`` no
  higher than the SETTINGS_MAX_CONCURRENT_STREAMS the provider advertises.
* A dropped connection fails the streams multiplexed on it with CONNECTION_LOST, except the
  transfer that opened the connection: libcurl re-sends that one on a fresh connection
  without telling us, so it may be processed twice (at-least-once, not at-most-once).
* CURLE_HTTP2_STREAM naming REFUSED_STREAM becomes ``Failure.REFUSED``; any other stream
  error becomes ``Failure.RESET`` (may have been processed: the conservative choice).

So a request may be processed twice exactly when (a) the provider processed it but no
answer reached us -- CONNECTION_LOST, RESET (other than REFUSED_STREAM) or TIMEOUT, which
the fan-out sends again only under PUSHCORE_DELIVERY_GUARANTEE=at-least-once and counts in
``pushcore_uncertain_resends_total`` -- or (b) libcurl silently re-sent a request whose
connection died after it went out, which nobody is told about (libcurl retries a request
that got no byte back on a reused connection; no option turns that off).  CONNECT,
REFUSED and NOT_SENT failures (no connection; REFUSED_STREAM; above a GOAWAY's
last-stream-id, re-sent by libcurl itself; still in our own queue at the deadline) never
are: the request never reached the provider, or the provider said it did not process it.

A request with ``peer_allowed`` has its address checked in libcurl's open-socket callback,
for each address the name resolved to, before connecting: a refused one is never connected
to (libcurl tries the next), and when none is left the request fails ``Failure.BLOCKED``.
A connection already open to the host was checked when it was opened and is reused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

import pycurl

from pushcore.transport.base import Failure, Request, Response
from pushcore.transport.curl_errors import classify
from pushcore.transport.errors import TransportError

log = logging.getLogger(__name__)

_SLACK = 0.05  # seconds past the deadline before a batch is cut off by force
_EARLY = 0.02  # a timeout this long before the deadline was the connect timeout


class _Job:
    """One request from its place in the queue until its :class:`Response` is stored."""

    __slots__ = (
        "batch",
        "blocked",
        "body",
        "body_size",
        "curl",
        "done",
        "headers",
        "index",
        "request",
    )

    def __init__(self, batch: _Batch, index: int, request: Request) -> None:
        self.batch = batch
        self.index = index
        self.request = request
        self.curl: pycurl.Curl | None = None
        self.done = False
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.blocked: str | None = None  # an address peer_allowed refused

    def open_socket(self, purpose: int, address: tuple[int, int, int, tuple[Any, ...]]) -> Any:
        """libcurl's OPENSOCKETFUNCTION: a socket for ``address`` when the request's policy
        allows it, else SOCKET_BAD.  pycurl gives libcurl a dup() of the descriptor as the
        callback returns, so ours is closed on the loop's next turn."""
        family, socktype, protocol, addr = address
        check = self.request.peer_allowed
        if check is not None and not check(str(addr[0])):
            self.blocked = str(addr[0])
            return pycurl.SOCKET_BAD
        sock = socket.socket(family, socktype, protocol)
        self.batch.transport.loop.call_soon(sock.close)
        return sock

    def on_header(self, line: bytes) -> None:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            self.headers[name.strip().lower()] = value.strip()
        elif name.startswith("HTTP/"):
            self.headers.clear()  # a new response head (after 1xx) replaces the last one

    def on_body(self, chunk: bytes) -> None:
        cap = self.batch.transport.body_cap
        if self.body_size < cap:
            self.body.append(chunk[: cap - self.body_size])
        self.body_size += len(chunk)


class _Batch:
    __slots__ = ("deadline", "done", "jobs", "remaining", "results", "transport")

    def __init__(self, transport: CurlTransport, requests: Sequence[Request]) -> None:
        self.transport = transport
        self.deadline = 0.0
        self.jobs = [_Job(self, i, r) for i, r in enumerate(requests)]
        self.results: list[Response] = [_PLACEHOLDER] * len(requests)
        self.remaining = len(requests)
        self.done: asyncio.Future[None] = transport.loop.create_future()


_PLACEHOLDER = Response(0, failure=Failure.TIMEOUT, detail="not finished")


class CurlTransport:
    """The process-wide HTTP/2 client (see the module docstring for limits and libcurl
    behaviours).  Create it on the event loop that will use it; it is not thread-safe.

    :param max_in_flight: requests inside libcurl at once, across all ``send`` calls; the
        rest wait in FIFO order (their wait counts against their deadline).
    :param max_connections_per_origin: TCP/TLS connections libcurl opens to one host:port.
    :param max_streams_per_connection: concurrent HTTP/2 streams per connection (the server's
        SETTINGS_MAX_CONCURRENT_STREAMS still applies when lower, but only once it has
        arrived: keep this at or below what the provider advertises; 100 is the RFC 9113
        recommended minimum every server should allow).
    :param connect_timeout: seconds for TCP + TLS set-up (also bounded by the deadline).
    :param ca_file: PEM bundle to trust instead of the system store (self-signed simulators).
    :param client_cert_pem / client_key_pem: TLS client certificate and key (APNs certificate
        authentication); given as PEM bytes, kept in memory (``SSLCERT_BLOB``), never written
        to disk.  One pair per transport: apps with different certificates need their own.
    :param body_cap: response bytes kept per request; the excess is dropped and counted in
        ``truncated_bodies``.
    :param prior_knowledge: speak HTTP/2 without TLS negotiation for ``http://`` URLs (h2c);
        ``https://`` URLs always negotiate h2 with ALPN.
    """

    def __init__(
        self,
        *,
        max_in_flight: int = 400,
        max_connections_per_origin: int = 4,
        max_streams_per_connection: int = 100,
        connect_timeout: float = 10.0,
        ca_file: str | None = None,
        client_cert_pem: bytes | None = None,
        client_key_pem: bytes | None = None,
        body_cap: int = 64 * 1024,
        prior_knowledge: bool = False,
    ) -> None:
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError as exc:
            raise TransportError("CurlTransport must be created on a running loop") from exc
        if min(max_in_flight, max_connections_per_origin, max_streams_per_connection) < 1:
            raise TransportError("max_in_flight, connections and streams must be >= 1")
        if connect_timeout <= 0 or body_cap < 0:
            raise TransportError("connect_timeout must be > 0 and body_cap >= 0")
        if (client_cert_pem is None) != (client_key_pem is None):
            raise TransportError("client_cert_pem and client_key_pem go together")
        if ca_file is not None:
            try:
                with open(ca_file, "rb"):
                    pass
            except OSError as exc:
                raise TransportError(f"CA file {ca_file!r} is not readable") from exc
        self.max_in_flight = max_in_flight
        self.body_cap = body_cap
        self.truncated_bodies = 0  # responses whose body exceeded body_cap
        self.connections_opened = 0  # new connections libcurl made (CURLINFO_NUM_CONNECTS)
        self._connect_timeout_ms = max(1, int(connect_timeout * 1000))
        self._ca_file = ca_file
        self._client = (client_cert_pem, client_key_pem)
        self._http_version = (
            pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
            if prior_knowledge
            else pycurl.CURL_HTTP_VERSION_2TLS
        )
        self._queue: deque[_Job] = deque()
        self._running: dict[pycurl.Curl, _Job] = {}
        self._pool: list[pycurl.Curl] = []
        self._fds: dict[int, int] = {}  # fd -> POLL_* mask currently registered
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._headers_in: object = None  # the last request's headers, and their curl form
        self._headers_out: list[str] = []
        self._closed = False
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        self._multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, max_connections_per_origin)
        self._multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, max_streams_per_connection)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return sum(1 for job in self._queue if not job.done)

    async def send(self, requests: Sequence[Request], *, timeout: float) -> list[Response]:
        if self._closed:
            raise TransportError("send() after aclose()")
        if asyncio.get_running_loop() is not self.loop:
            raise TransportError("CurlTransport used from another event loop")
        if not requests:
            return []
        batch = _Batch(self, requests)
        batch.deadline = self.loop.time() + timeout
        self._queue.extend(batch.jobs)
        guard = self.loop.call_at(batch.deadline + _SLACK, self._expire, batch)
        self._pump()
        try:
            # Cancellation of the caller lands here; ``finally`` takes its requests back.
            await batch.done
        finally:
            guard.cancel()
            if batch.remaining:
                self._fail_all(batch.jobs, Failure.TIMEOUT, "abandoned by the caller")
                self._pump()
        return batch.results

    async def aclose(self) -> None:
        """Fail every queued request (``CONNECT``, never sent) and every running one
        (``CONNECTION_LOST``), then close the connections.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        queued = [job for job in self._queue if not job.done]
        self._queue.clear()
        self._fail_all(queued, Failure.CONNECT, "transport closed before sending")
        self._fail_all(list(self._running.values()), Failure.CONNECTION_LOST, "transport closed")
        if self._timer is not None:
            self._timer.cancel()
        for curl in self._pool:
            curl.close()
        self._pool.clear()
        self._multi.close()  # closes every connection; may call _on_socket(POLL_REMOVE)
        for fd in list(self._fds):
            self._watch(fd, 0)

    # -- queue and handles ---------------------------------------------------------------

    def _pump(self) -> None:
        while self._queue and len(self._running) < self.max_in_flight and not self._closed:
            job = self._queue.popleft()
            if job.done:
                continue
            remaining_ms = int((job.batch.deadline - self.loop.time()) * 1000)
            if remaining_ms <= 0:
                detail = "deadline passed while queued; never sent"
                self._finish(job, Response(0, failure=Failure.NOT_SENT, detail=detail))
                continue
            self._start(job, remaining_ms)

    def _start(self, job: _Job, timeout_ms: int) -> None:
        curl = self._pool.pop() if self._pool else pycurl.Curl()
        try:
            self._configure(curl, job, timeout_ms)
            self._multi.add_handle(curl)
        except (pycurl.error, UnicodeError, TypeError, ValueError) as exc:
            # A request libcurl cannot take (non-ASCII URL or header, bad method): it is
            # never sent, so CONNECT (unprocessed), but it will fail the same way again.
            self._release(curl)
            detail = f"invalid request, never sent: {exc}"
            self._finish(job, Response(0, failure=Failure.CONNECT, detail=detail))
            return
        job.curl = curl
        self._running[curl] = job

    def _configure(self, curl: pycurl.Curl, job: _Job, timeout_ms: int) -> None:
        request = job.request
        setopt = curl.setopt
        setopt(pycurl.URL, request.url)
        setopt(pycurl.HTTP_VERSION, self._http_version)
        setopt(pycurl.PIPEWAIT, 1)  # wait to multiplex on a pending connection, not open more
        setopt(pycurl.NOSIGNAL, 1)
        setopt(pycurl.USERAGENT, "pushcore")
        setopt(pycurl.TIMEOUT_MS, timeout_ms)
        setopt(pycurl.CONNECTTIMEOUT_MS, min(timeout_ms, self._connect_timeout_ms))
        # Empty values delete libcurl's defaults (Accept, form Content-Type, Expect).  A
        # provider gives every request of a batch the same headers object: format it once.
        if request.headers is not self._headers_in:
            self._headers_in = request.headers
            self._headers_out = ["Accept:", "Content-Type:", "Expect:"]
            self._headers_out.extend(f"{name}: {value}" for name, value in request.headers)
        setopt(pycurl.HTTPHEADER, self._headers_out)
        setopt(pycurl.HEADERFUNCTION, job.on_header)
        if request.peer_allowed is not None:
            setopt(pycurl.OPENSOCKETFUNCTION, job.open_socket)
        setopt(pycurl.WRITEFUNCTION, job.on_body)
        method = request.method.upper()
        if method == "POST" or request.body:
            setopt(pycurl.POSTFIELDSIZE, len(request.body))
            setopt(pycurl.POSTFIELDS, request.body)
        if method == "HEAD":
            setopt(pycurl.NOBODY, 1)
        elif method not in ("GET", "POST"):
            setopt(pycurl.CUSTOMREQUEST, method)
        if self._ca_file is not None:
            setopt(pycurl.CAINFO, self._ca_file)
        cert, key = self._client
        if cert is not None and key is not None:
            setopt(pycurl.SSLCERT_BLOB, cert)
            setopt(pycurl.SSLCERTTYPE, "PEM")
            setopt(pycurl.SSLKEY_BLOB, key)
            setopt(pycurl.SSLKEYTYPE, "PEM")

    def _release(self, curl: pycurl.Curl) -> None:
        # reset() drops every option, including our callbacks and the body reference, so a
        # pooled handle keeps nothing of its last request alive.  Connections live in the
        # multi handle's cache, not in the easy handle, so reset loses none of them.
        curl.reset()
        if len(self._pool) < self.max_in_flight:
            self._pool.append(curl)
        else:
            curl.close()

    def _detach(self, job: _Job) -> None:
        curl = job.curl
        if curl is None:
            return
        job.curl = None
        del self._running[curl]
        self._multi.remove_handle(curl)
        self._release(curl)

    def _finish(self, job: _Job, response: Response) -> None:
        job.done = True
        batch = job.batch
        batch.results[job.index] = response
        batch.remaining -= 1
        if batch.remaining == 0 and not batch.done.done():
            batch.done.set_result(None)

    def _fail_all(self, jobs: Sequence[_Job], failure: Failure, detail: str) -> None:
        for job in jobs:
            if not job.done:
                self._detach(job)
                self._finish(job, Response(0, failure=failure, detail=detail))

    def _expire(self, batch: _Batch) -> None:
        # Normally libcurl's TIMEOUT_MS has ended every transfer by now; this guard covers
        # requests still queued (never handed to libcurl: certainly not sent) and any
        # transfer libcurl did not time out.
        queued = [job for job in batch.jobs if job.curl is None]
        self._fail_all(queued, Failure.NOT_SENT, "deadline passed while queued; never sent")
        self._fail_all(batch.jobs, Failure.TIMEOUT, "deadline passed")
        self._pump()

    def _complete(self, curl: pycurl.Curl, code: int, message: str) -> None:
        job = self._running.get(curl)
        if job is None:
            return
        self.connections_opened += curl.getinfo(pycurl.NUM_CONNECTS)
        if code == 0:
            status = curl.getinfo(pycurl.RESPONSE_CODE)
            body = b"".join(job.body)
            if job.body_size > self.body_cap:
                self.truncated_bodies += 1
            response = Response(status, job.headers, body)
        else:
            early = self.loop.time() < job.batch.deadline - _EARLY
            failure = classify(code, message, before_deadline=early)
            # REQUEST_SIZE stays 0 for a transfer that never got a stream (still waiting for
            # a connection or a free stream slot); PRETRANSFER_TIME is no guide, libcurl
            # sets it when such a transfer fails.
            sent = " (never sent)" if curl.getinfo(pycurl.REQUEST_SIZE) == 0 else ""
            response = Response(0, failure=failure, detail=f"curl {code}: {message}{sent}")
            if job.blocked is not None and curl.getinfo(pycurl.REQUEST_SIZE) == 0:
                detail = f"peer address {job.blocked} refused by policy; never sent"
                response = Response(0, failure=Failure.BLOCKED, detail=detail)
        self._detach(job)
        self._finish(job, response)

    # -- event loop glue -----------------------------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        self._watch(fd, 0 if what == pycurl.POLL_REMOVE else what)

    def _watch(self, fd: int, mask: int) -> None:
        old = self._fds.get(fd, 0)
        if mask & pycurl.POLL_IN and not old & pycurl.POLL_IN:
            self.loop.add_reader(fd, self._on_ready, fd, pycurl.CSELECT_IN)
        elif old & pycurl.POLL_IN and not mask & pycurl.POLL_IN:
            self.loop.remove_reader(fd)
        if mask & pycurl.POLL_OUT and not old & pycurl.POLL_OUT:
            self.loop.add_writer(fd, self._on_ready, fd, pycurl.CSELECT_OUT)
        elif old & pycurl.POLL_OUT and not mask & pycurl.POLL_OUT:
            self.loop.remove_writer(fd)
        if mask:
            self._fds[fd] = mask
        else:
            self._fds.pop(fd, None)

    def _on_timer(self, timeout_ms: int) -> None:
        # Called from inside libcurl: only schedule, never re-enter socket_action here.
        # libcurl asks for a timer after every added handle; a timer that already fires no
        # later than asked is kept (firing early is harmless: libcurl checks its timeouts
        # and asks again), which saves a cancel and a new TimerHandle per request.
        if timeout_ms < 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # (the deadline is kept here, not read from the handle: uvloop's TimerHandle.when()
        # is not on loop.time()'s clock)
        when = self.loop.time() + timeout_ms / 1000
        if self._timer is not None:
            if self._timer_when <= when:
                return
            self._timer.cancel()
        self._timer_when = when
        self._timer = self.loop.call_at(when, self._on_ready, -1, 0)

    def _on_ready(self, fd: int, event: int) -> None:
        if self._closed:
            return
        if fd == -1:
            self._timer = None
        try:
            self._multi.socket_action(fd, event)
        except pycurl.error:  # CURLM_* errors are bugs in the glue, not per request
            log.exception("curl_multi_socket_action failed")
        while True:
            queued, ok, failed = self._multi.info_read()
            for curl in ok:
                self._complete(curl, 0, "")
            for curl, code, message in failed:
                self._complete(curl, code, message)
            if not queued:
                break
        self._pump()

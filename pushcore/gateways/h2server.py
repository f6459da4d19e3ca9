"""The in-process HTTP/2 engine: the ``h2`` state machine over an asyncio server (TLS, or
cleartext with prior knowledge), with connection-level faults.

Slow (~3,000 requests/s) but it controls every frame, so it carries the faults of
:class:`~pushcore.gateways.core.TransportFaults`: a stream limit announced in SETTINGS,
GOAWAY after N requests (answers first, or GOAWAY first), RST_STREAM on every N-th request
or on a share of them, an abrupt drop.  What it serves is an :class:`H2App`, pure request
in, response out:

- :class:`SimulatorApp`: one of the provider simulators (what
  :meth:`pushcore.gateways.simulators.Simulators.start` runs with ``engine="h2"``), whose
  control routes are exempt from the faults and whose :class:`~pushcore.gateways.core.Faults`
  add latency, throttling and refusing connections (each new one is aborted right after the
  TLS handshake); ``POST /__sim/faults`` replaces both fault sets at runtime;
- the transport tests' echo server (``tests/transport/conftest.py``), which also uses
  :class:`H2Stats`, the engine's own frame-level record.

Limits: request bodies above ``max_body`` (default :data:`~pushcore.gateways.core.MAX_BODY`)
are cut after one byte more, so the app can tell (the simulators answer 413); at most
``max_connections`` connections (others are closed at once); streams above the announced
SETTINGS_MAX_CONCURRENT_STREAMS are refused one by one with RST_STREAM(REFUSED_STREAM), as
nghttp2 and APNs do, not with a connection error (a client may open streams before it has
seen our SETTINGS; RFC 9113 section 5.1.2 allows either).  Response bodies honour the
client's flow-control windows: a client that never returns window (as aioapns does) stalls
here exactly as on the real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from pushcore.gateways.core import (
    MAX_BODY,
    Faults,
    SimRequest,
    SimResponse,
    Simulator,
    Throttle,
    TransportControl,
    TransportFaults,
    dispatch,
)
from pushcore.gateways.tls import TlsFiles

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 256
CONTROL_PREFIXES = ("/__sim/", "/__stats")
HANDSHAKE_TIMEOUT = 10.0
MAX_VIOLATIONS = 100  # protocol errors kept as text; all of them are counted in faults


class H2App(Protocol):
    """What the engine serves.  Called on the server's event loop; must not block."""

    def respond(self, request: SimRequest, control: TransportControl) -> SimResponse:
        """The answer (``control``: the engine, for a route that replaces its faults)."""
        ...

    def latency(self, request: SimRequest) -> float:
        """Seconds to wait before :meth:`respond` is called (0: answer at once)."""
        ...

    def accepts_connections(self) -> bool:
        """False: every new connection is aborted after the TLS handshake."""
        ...

    def exempt(self, request: SimRequest) -> bool:
        """True: answered at once, outside every connection-level fault and count."""
        ...


class StreamCounters(Protocol):
    """Where an app counts in-flight streams and faults (the simulators' ``Counters``)."""

    def enter(self) -> None: ...

    def leave(self) -> None: ...

    def fault(self, name: str) -> None: ...


@dataclass(slots=True)
class H2Stats:
    """What the engine saw, per server.  Paths are the ``:path`` as received."""

    connections: int = 0  # accepted (refused ones are not counted)
    received: Counter[str] = field(default_factory=Counter)  # requests fully received
    answered: Counter[str] = field(default_factory=Counter)  # answers written
    # above a GOAWAY's last-stream-id, so never processed (refused, or left unanswered)
    ignored: Counter[str] = field(default_factory=Counter)
    refused_streams: int = 0  # above our SETTINGS_MAX_CONCURRENT_STREAMS
    open_streams: int = 0
    max_open_streams: int = 0
    max_open_streams_per_connection: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)  # the client's protocol errors


def server_ssl_context(
    cert_file: Path | str, key_file: Path | str, *, client_ca: Path | str | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ with ALPN ``h2``; ``client_ca``: a client certificate signed by it is
    mandatory (APNs' certificate-based authentication works so)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["h2"])
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


class SimulatorApp:
    """A provider simulator behind the engine: its control routes, then its faults."""

    def __init__(self, sim: Simulator, faults: Faults | None = None) -> None:
        self.sim = sim
        self.throttle = Throttle(faults or Faults())

    def respond(self, request: SimRequest, control: TransportControl) -> SimResponse:
        return dispatch(self.sim, self.throttle, request, control)

    def latency(self, request: SimRequest) -> float:
        return self.throttle.faults.latency

    def accepts_connections(self) -> bool:
        return not self.throttle.faults.refuse_connections

    def exempt(self, request: SimRequest) -> bool:
        # stats and control requests are exempt from the connection-level faults, so a test
        # can always read the counters and lift a fault
        return request.path.startswith(CONTROL_PREFIXES)


def simulator_server(
    sim: Simulator,
    tls: TlsFiles,
    faults: Faults | None = None,
    transport_faults: TransportFaults | None = None,
) -> H2Server:
    """One simulator on the engine (not yet listening: ``await server.start(host, port)``)."""
    return H2Server(
        SimulatorApp(sim, faults),
        server_ssl_context(tls.cert_file, tls.key_file),
        transport_faults,
        counters=sim.counters,
    )


class H2Server:
    """One app served on one port."""

    def __init__(
        self,
        app: H2App,
        ssl_context: ssl.SSLContext | None,
        transport_faults: TransportFaults | None = None,
        *,
        counters: StreamCounters | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.counters = counters
        self.stats = H2Stats()
        self.transport_faults = transport_faults or TransportFaults()
        self.max_connections = max_connections
        self.max_body = max_body
        self.requests_seen = 0  # for rst_every, across connections
        self.resets = 0  # for rst_limit
        self._rst_random = random.Random(self.transport_faults.seed)  # noqa: S311 (faults)
        self.connections: set[_Connection] = set()
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl else 'http'}://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            ssl=self._ssl,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self._ssl else None,
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]

    def replace_transport_faults(self, faults: TransportFaults) -> None:
        """``POST /__sim/faults`` (see :class:`~pushcore.gateways.core.TransportFaults`)."""
        self.transport_faults = faults
        self.requests_seen = self.resets = 0
        self._rst_random = random.Random(faults.seed)  # noqa: S311 (fault injection)

    def reset_now(self) -> bool:
        """Whether the next request is answered with RST_STREAM (``rst_every``/``_fraction``,
        within ``rst_limit``)."""
        tf = self.transport_faults
        self.requests_seen += 1
        if tf.rst_limit and self.resets >= tf.rst_limit:
            return False
        every = bool(tf.rst_every) and self.requests_seen % tf.rst_every == 0
        if every or (bool(tf.rst_fraction) and self._rst_random.random() < tf.rst_fraction):
            self.resets += 1
            return True
        return False

    def fault(self, name: str) -> None:
        self.stats.faults[name] += 1
        if self.counters is not None:
            self.counters.fault(name)

    async def aclose(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            # abort, not close: a TLS close waits for the peer's close_notify, which a
            # client that keeps its connection (a worker still running) never sends
            conn.shutdown(abort=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout)
        self._server = None


class _LenientConnection(h2.connection.H2Connection):
    """h2 treats a stream above our SETTINGS_MAX_CONCURRENT_STREAMS as an error of the whole
    connection; :class:`_Connection` refuses just that stream instead, so h2's own check is
    switched off here (the property is read only by that check)."""

    @property
    def open_inbound_streams(self) -> int:
        _ = super().open_inbound_streams  # keeps h2's clean-up of closed streams
        return 0


@dataclass(slots=True)
class _Stream:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    pending: bytes = b""  # response bytes waiting for flow-control window
    timer: asyncio.TimerHandle | None = None  # a delayed answer

    @property
    def path(self) -> str:
        return self.headers.get(":path", "")


def _goaway_frame(last_stream_id: int) -> bytes:
    # h2 refuses to send anything after its own close_connection(), so a GOAWAY that must
    # precede answers is written by hand (RFC 9113 sections 4.1 and 6.8): length 8, type
    # 0x7, no flags, stream 0; then the last stream id and NO_ERROR.
    return (
        (8).to_bytes(3, "big")
        + bytes((0x7, 0))
        + (0).to_bytes(4, "big")
        + last_stream_id.to_bytes(4, "big")
        + (0).to_bytes(4, "big")
    )


def _common_name(peercert: Any) -> str:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.app = server.app
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = _LenientConnection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.max_streams = server.transport_faults.max_concurrent_streams
        self.requests = 0
        self.goaway_last = 0  # last stream id we promised to answer after GOAWAY; 0 = none
        self.goaway_first = False  # that GOAWAY is already sent
        self.lingering: asyncio.TimerHandle | None = None  # closing once the grace is over
        self.client_cn = ""

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast
        self.transport = cast(asyncio.Transport, transport)
        if not self._admissible():
            self.transport.abort()
            return
        self.server.connections.add(self)
        self.server.stats.connections += 1
        self.client_cn = _common_name(transport.get_extra_info("peercert"))
        # In the first SETTINGS frame, as initial values: they apply at once, not only after
        # the client's ACK, and a later update would race the client's first streams.
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.h2.initiate_connection()
        self._flush()

    def _admissible(self) -> bool:
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            return False
        return (
            len(self.server.connections) < self.server.max_connections
            and self.app.accepts_connections()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lingering is not None:
            self.lingering.cancel()
            self.lingering = None
        self.server.connections.discard(self)
        for sid in list(self.streams):
            self._discard(sid)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.lingering is not None:
            # After our GOAWAY and its last answer: whatever the client still sends is for
            # streams we said we would not process (and h2 refuses frames after its own
            # GOAWAY), so it is read and dropped, never answered with a TCP reset.
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.debug("closing connection after protocol error: %s", exc)
            if len(self.server.stats.violations) < MAX_VIOLATIONS:
                self.server.stats.violations.append(repr(exc))
            self.server.fault("protocol_error")
            self.shutdown(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            if self.transport is None:
                return
            if self._closing():
                break  # the rest of this read came after our GOAWAY's last answer: dropped
            self._on_event(event)
        self._flush()

    # --- HTTP/2 events -------------------------------------------------------------------
    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._complete(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            for sid, stream in list(self.streams.items()):
                if stream.pending:
                    self._send_body(sid, stream)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close_transport()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        headers = {str(k): str(v) for k, v in event.headers or []}
        if self.goaway_last and sid > self.goaway_last:
            self._ignore(sid, headers.get(":path", ""))
            return
        if len(self.streams) >= self.max_streams:
            self.server.stats.refused_streams += 1
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self.streams[sid] = _Stream(headers)
        stats = self.server.stats
        stats.open_streams += 1
        stats.max_open_streams = max(stats.max_open_streams, stats.open_streams)
        stats.max_open_streams_per_connection = max(
            stats.max_open_streams_per_connection, len(self.streams)
        )
        if self.server.counters is not None:
            self.server.counters.enter()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        if event.flow_controlled_length:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or not event.data:
            return
        room = self.server.max_body + 1 - len(stream.body)
        if room > 0:
            stream.body += event.data[:room]

    def _complete(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.complete:
            return
        stream.complete = True
        request = self._request(stream)
        self.server.stats.received[stream.path] += 1
        if self.app.exempt(request):
            self._answer(sid, stream, request)
            return
        self.requests += 1
        tf = self.server.transport_faults
        if self.server.reset_now():
            self.server.fault("rst_stream")
            # reset first: forgetting the last stream of a GOAWAY closes the connection
            self.h2.reset_stream(sid, tf.rst_code)
            self._forget(sid)
            return
        # ">=": a knob set at runtime also acts on connections already past N
        if tf.drop_after and self.requests >= tf.drop_after:
            self.app.respond(request, self.server)  # processed, but the answer is lost
            self.server.fault("dropped")
            self._forget(sid)
            self._close_transport(abort=True)
            return
        if tf.goaway_after and self.requests >= tf.goaway_after and not self.goaway_last:
            self._start_goaway(sid, first=tf.goaway_first)
        delay = self.app.latency(request)
        if delay > 0:
            loop = asyncio.get_running_loop()
            stream.timer = loop.call_later(delay, self._answer_later, sid, stream, request)
        else:
            self._answer(sid, stream, request)

    def _request(self, stream: _Stream) -> SimRequest:
        h = stream.headers
        path, _, query = stream.path.partition("?")
        return SimRequest(
            method=h.get(":method", ""),
            path=path,
            headers=h,
            body=bytes(stream.body),
            query=query,
            authority=h.get(":authority", ""),
            client_cn=self.client_cn,
        )

    def _answer_later(self, sid: int, stream: _Stream, request: SimRequest) -> None:
        stream.timer = None
        if self.streams.get(sid) is stream and self.transport is not None:
            self._answer(sid, stream, request)
            self._flush()

    def _answer(self, sid: int, stream: _Stream, request: SimRequest) -> None:
        response = self.app.respond(request, self.server)
        if self.transport is None or self.transport.is_closing():
            return
        headers = [(":status", str(response.status)), *response.headers]
        headers.append(("content-length", str(len(response.body))))
        self.h2.send_headers(sid, headers, end_stream=not response.body)
        self.server.stats.answered[stream.path] += 1
        if response.body:
            stream.pending = response.body
            self._send_body(sid, stream)
        else:
            self._forget(sid)

    def _send_body(self, sid: int, stream: _Stream) -> None:
        try:
            window = self.h2.local_flow_control_window(sid)
        except h2.exceptions.StreamClosedError:
            self._forget(sid)
            return
        size = min(window, len(stream.pending))
        frame_max = self.h2.max_outbound_frame_size
        for start in range(0, size, frame_max):
            self.h2.send_data(sid, stream.pending[start : min(start + frame_max, size)])
        stream.pending = stream.pending[size:]
        if not stream.pending:
            self.h2.end_stream(sid)
            self._forget(sid)

    # --- GOAWAY ----------------------------------------------------------------------------
    def _start_goaway(self, last: int, *, first: bool) -> None:
        # By default the GOAWAY frame itself is sent only once every stream up to ``last``
        # has been answered: h2-based clients (httpx, jh2) cannot read any frame after a
        # GOAWAY, so a GOAWAY sent first would turn the promised answers into protocol
        # errors there.  Streams above ``last`` are refused now (REFUSED_STREAM: "not
        # processed").  ``first``: the GOAWAY goes out now and those streams stay silent;
        # the client has to infer from last-stream-id that they were not processed.
        self.goaway_last = last
        self.goaway_first = first
        self.server.fault("goaway")
        for sid in [s for s in self.streams if s > last]:
            self._ignore(sid, self.streams[sid].path)
            self._discard(sid)
        if first and self.transport is not None:
            self._flush()  # what h2 has queued precedes the GOAWAY on the wire
            self.transport.write(_goaway_frame(last))

    def _ignore(self, sid: int, path: str) -> None:
        self.server.stats.ignored[path] += 1
        if not self.goaway_first:
            # (after h2's own GOAWAY it refuses to send anything: then silence says it)
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)

    def _discard(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is None:
            return
        if stream.timer is not None:
            stream.timer.cancel()
        self.server.stats.open_streams -= 1
        if self.server.counters is not None:
            self.server.counters.leave()

    def _forget(self, sid: int) -> None:
        self._discard(sid)
        if (
            self.goaway_last
            and self.lingering is None
            and not any(s <= self.goaway_last for s in self.streams)
        ):
            if self.transport is not None:
                if not self.goaway_first:
                    self.h2.close_connection(last_stream_id=self.goaway_last)
                self._flush()
            self._linger()

    def _closing(self) -> bool:
        return self.lingering is not None

    def _linger(self) -> None:
        # A graceful close, as nghttp2-based servers and nginx's lingering close do it: the
        # last answers are written, then the connection stays open (reading and dropping)
        # for ``goaway_grace`` seconds or until the client closes it.  Closing at once is
        # what made answered requests look lost: the client, not yet done reading, still
        # sends frames (new streams, WINDOW_UPDATE); a socket closed with unread input
        # answers them with a TCP RST, and the RST makes the client's kernel discard the
        # answers and the GOAWAY it had not read yet ("Send failure: Broken pipe").
        grace = self.server.transport_faults.goaway_grace
        if self.transport is None or grace <= 0:
            self._close_transport()
            return
        self.lingering = asyncio.get_running_loop().call_later(grace, self._close_transport)

    # --- output ---------------------------------------------------------------------------
    def _flush(self) -> None:
        if self.transport is None:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def shutdown(self, code: int = h2.errors.ErrorCodes.NO_ERROR, *, abort: bool = False) -> None:
        """GOAWAY (no stream processed beyond what was answered) and close."""
        if self.transport is None:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(code)
        self._flush()
        self._close_transport(abort=abort)

    def _close_transport(self, *, abort: bool = False) -> None:
        # Forgetting the transport makes every later write a no-op; connection_lost (called
        # later by asyncio) releases the streams.
        transport, self.transport = self.transport, None
        if transport is not None:
            if abort:
                transport.abort()
            elif not transport.is_closing():
                transport.close()

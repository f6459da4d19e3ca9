"""The in-process engine: the ``h2`` state machine over an asyncio TLS server.

Slow (~3,000 requests/s) but it controls every frame, so it carries the connection-level
faults of :class:`~pushcore.gateways.core.TransportFaults`: a stream limit announced in
SETTINGS, GOAWAY after N requests, RST_STREAM on every N-th request or on a share of them,
an abrupt drop, and refusing connections (each new one is aborted right after the TLS
handshake).  All of them can be replaced at runtime with ``POST /__sim/faults``.

Limits: request bodies above :data:`~pushcore.gateways.core.MAX_BODY` are not buffered
(answered 413); at most ``max_connections`` connections (others are closed at once); a
client opening more streams than announced before it saw our SETTINGS breaks h2's limit
check and loses the connection (h2 raises ``TooManyStreamsError`` for the whole frame).
Response bodies honour the client's flow-control windows: a client that never returns
window (as aioapns does) stalls here exactly as on the real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass, field

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
    Simulator,
    Throttle,
    TransportFaults,
    dispatch,
)
from pushcore.gateways.tls import TlsFiles

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 256
CONTROL_PREFIXES = ("/__sim/", "/__stats")
HANDSHAKE_TIMEOUT = 10.0


def server_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.set_alpn_protocols(["h2"])
    return ctx


@dataclass(slots=True)
class _Stream:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    oversized: bool = False
    complete: bool = False
    pending: bytes = b""  # response bytes waiting for flow-control window


class H2Server:
    """One simulator served on one port."""

    def __init__(
        self,
        sim: Simulator,
        tls: TlsFiles,
        faults: Faults | None = None,
        transport_faults: TransportFaults | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.sim = sim
        self.faults = faults or Faults()
        self.transport_faults = transport_faults or TransportFaults()
        self.throttle = Throttle(self.faults)
        self.max_connections = max_connections
        self.requests_seen = 0  # for rst_every, across connections
        self._rst_random = random.Random(self.transport_faults.seed)  # noqa: S311 (faults)
        self.connections: set[_Connection] = set()
        self._ssl = server_ssl_context(tls)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            ssl=self._ssl,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def replace_transport_faults(self, faults: TransportFaults) -> None:
        """``POST /__sim/faults`` (see :class:`~pushcore.gateways.core.TransportFaults`)."""
        self.transport_faults = faults
        self.requests_seen = 0
        self._rst_random = random.Random(faults.seed)  # noqa: S311 (fault injection)

    def reset_now(self) -> bool:
        """Whether the next request is answered with RST_STREAM (``rst_every``/``_fraction``)."""
        tf = self.transport_faults
        self.requests_seen += 1
        if tf.rst_every and self.requests_seen % tf.rst_every == 0:
            return True
        return bool(tf.rst_fraction) and self._rst_random.random() < tf.rst_fraction

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


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.sim = server.sim
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.requests = 0
        self.goaway_last = 0  # last stream id we promised to answer after GOAWAY; 0 = none
        self.tasks: set[asyncio.Task[None]] = set()

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object else None
        if (
            alpn != "h2"
            or len(self.server.connections) >= self.server.max_connections
            or self.server.throttle.faults.refuse_connections
        ):
            transport.abort()
            return
        self.server.connections.add(self)
        # Settings given as initial values apply at once, not only after the client's ACK.
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: (
                    self.server.transport_faults.max_concurrent_streams
                ),
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for task in self.tasks:
            task.cancel()
        for _ in self.streams:
            self.sim.counters.leave()
        self.streams.clear()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.debug("closing connection after protocol error: %s", exc)
            self.sim.counters.fault("protocol_error")
            self.shutdown(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            if self.transport is None:
                return
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
            if self.streams.pop(event.stream_id, None) is not None:
                self.sim.counters.leave()
        elif isinstance(event, h2.events.WindowUpdated):
            for sid, stream in list(self.streams.items()):
                if stream.pending:
                    self._send_body(sid, stream)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close_transport()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self.goaway_last and sid > self.goaway_last:
            # Announced as unprocessed by our GOAWAY: refuse, the client may retry.
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self.streams[sid] = _Stream({str(k): str(v) for k, v in event.headers or []})
        self.sim.counters.enter()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        if event.flow_controlled_length:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or not event.data:
            return
        if len(stream.body) + len(event.data) > MAX_BODY:
            stream.oversized = True  # stop buffering; answered 413
        else:
            stream.body += event.data

    def _complete(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.complete:
            return
        stream.complete = True
        tf = self.server.transport_faults
        if stream.headers.get(":path", "").startswith(CONTROL_PREFIXES):
            # stats and control requests are exempt from the connection-level faults, so
            # a test can always read the counters and lift a fault
            self._answer_now(sid, stream)
            return
        self.requests += 1
        if self.server.reset_now():
            self.sim.counters.fault("rst_stream")
            self._forget(sid)
            self.h2.reset_stream(sid, tf.rst_code)
            return
        # ">=": a knob set at runtime also acts on connections already past N
        if tf.drop_after and self.requests >= tf.drop_after:
            self._answer_now(sid, stream)  # processed and counted, but the answer is lost
            self.sim.counters.fault("dropped")
            self._forget(sid)
            self._close_transport(abort=True)
            return
        if tf.goaway_after and self.requests >= tf.goaway_after and not self.goaway_last:
            self._start_goaway(sid)
        if self.server.throttle.faults.latency:
            task = asyncio.get_running_loop().create_task(self._answer_later(sid, stream))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self._answer_now(sid, stream)

    async def _answer_later(self, sid: int, stream: _Stream) -> None:
        await asyncio.sleep(self.server.throttle.faults.latency)
        if self.streams.get(sid) is stream and self.transport is not None:
            self._answer_now(sid, stream)
            self._flush()

    def _answer_now(self, sid: int, stream: _Stream) -> None:
        h = stream.headers
        path, _, query = h.get(":path", "").partition("?")
        request = SimRequest(
            method=h.get(":method", ""),
            path=path,
            headers=h,
            body=bytes(stream.body) if not stream.oversized else b"\0" * (MAX_BODY + 1),
            query=query,
            authority=h.get(":authority", ""),
        )
        response = dispatch(self.sim, self.server.throttle, request, self.server)
        if self.transport is None or self.transport.is_closing():
            return
        headers = [(":status", str(response.status)), *response.headers]
        headers.append(("content-length", str(len(response.body))))
        self.h2.send_headers(sid, headers, end_stream=not response.body)
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

    def _start_goaway(self, last: int) -> None:
        # The GOAWAY frame itself is sent only once every stream up to ``last`` has been
        # answered: h2-based clients (httpx, jh2) cannot read any frame after a GOAWAY, so a
        # GOAWAY sent first would turn the promised answers into protocol errors there.
        # Streams above ``last`` are refused now (REFUSED_STREAM: "not processed").
        self.goaway_last = last
        self.sim.counters.fault("goaway")
        for sid in [s for s in self.streams if s > last]:
            self._forget(sid)
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)

    def _forget(self, sid: int) -> None:
        if self.streams.pop(sid, None) is not None:
            self.sim.counters.leave()
        if self.goaway_last and not any(s <= self.goaway_last for s in self.streams):
            if self.transport is not None:
                self.h2.close_connection(last_stream_id=self.goaway_last)
                self._flush()
            self._close_transport()

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

"""A test-only HTTP/2 + TLS server with fault knobs, on ``h2`` over asyncio.

It runs on the test's own event loop, next to the client under test, and answers every
request with a JSON echo of its method, path, headers and body (or ``body_size`` filler
bytes).  Knobs (:class:`Knobs`) inject the faults a push provider shows in real life: slow
answers, error statuses, graceful GOAWAY, stream resets, dropped connections and a small
``SETTINGS_MAX_CONCURRENT_STREAMS``.  Two request headers override per request:
``x-delay`` (seconds) and ``x-status``.

What it records (:class:`H2Server`): requests fully received per path (``received``),
requests answered per path (``answered``), requests ignored because they arrived above a
GOAWAY's last-stream-id (``ignored``), the highest number of streams open at once, server
wide and on one connection, connections accepted, and protocol violations by the client.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hyperframe.frame import GoAwayFrame


class _LenientConnection(h2.connection.H2Connection):
    """h2 treats a stream above our SETTINGS_MAX_CONCURRENT_STREAMS as a connection error;
    real servers (nghttp2, APNs) refuse just that stream with RST_STREAM(REFUSED_STREAM),
    which RFC 9113 section 5.1.2 allows and which matters because a client may open streams
    before it has seen our SETTINGS.  The protocol below does that itself."""

    @property
    def open_inbound_streams(self) -> int:
        _ = super().open_inbound_streams  # keeps h2's clean-up of closed streams
        return 0


@dataclass(frozen=True)
class CertFiles:
    cert: Path  # PEM certificate, self-signed and usable as its own CA
    key: Path  # PEM private key (unencrypted PKCS#8)

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def make_cert(directory: Path, name: str, common_name: str = "localhost") -> CertFiles:
    """A self-signed EC certificate valid for localhost and 127.0.0.1 (CA:TRUE, so a test
    can hand the very same file to the client as its trust anchor)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass
class Knobs:
    latency: float = 0.0  # seconds before each answer
    status: int = 200
    body_size: int | None = None  # answer this many filler bytes instead of the echo
    # Per connection: after the Nth request, send GOAWAY(last_stream_id = that stream),
    # answer the streams up to it, ignore later ones, then close the socket.
    goaway_after: int | None = None
    # Server wide: reset the Nth request (1-based) instead of answering it.
    rst_nth: int | None = None
    rst_code: h2.errors.ErrorCodes = h2.errors.ErrorCodes.INTERNAL_ERROR
    # Per connection: drop the TCP connection as soon as N requests have arrived, unanswered.
    close_after: int | None = None
    max_concurrent_streams: int = 100


@dataclass
class H2Server:
    knobs: Knobs
    tls: bool = True
    port: int = 0
    received: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    open_streams: int = 0
    max_open_streams: int = 0
    max_open_streams_per_connection: int = 0
    violations: list[str] = field(default_factory=list)
    refused_streams: int = 0  # streams above max_concurrent_streams, RST(REFUSED_STREAM)
    requests_seen: int = 0
    _server: asyncio.Server | None = None
    _protocols: set[_Protocol] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for protocol in list(self._protocols):
                if protocol.transport is not None:
                    protocol.transport.abort()
            await self._server.wait_closed()


@dataclass
class _Stream:
    method: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    pending: bytes = b""  # response bytes waiting for flow-control window
    timer: asyncio.TimerHandle | None = None


class _Protocol(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.knobs = server.knobs
        config = h2.config.H2Configuration(client_side=False)
        self.conn = _LenientConnection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.open = 0
        self.requests = 0
        self.goaway_sid: int | None = None
        self.close_when_flushed = False
        self.client_cn = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections += 1
        self.server._protocols.add(self)
        peer = transport.get_extra_info("peercert")
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        self.client_cn = value
        # In the first SETTINGS frame: a later update would race the client's first streams.
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.knobs.max_concurrent_streams
            },
        )
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._protocols.discard(self)
        for stream in self.streams.values():
            if stream.timer is not None:
                stream.timer.cancel()
        self.server.open_streams -= self.open
        self.open = 0
        self.streams.clear()

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())
            if self.close_when_flushed:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.violations.append(repr(exc))
            self.flush()
            assert self.transport is not None
            self.transport.close()
            return
        for event in events:
            self.handle(event)
        self.flush()

    def handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = _Stream()
            for raw_name, raw_value in event.headers or ():
                name, value = bytes(raw_name).decode(), bytes(raw_value).decode()
                if name == ":method":
                    stream.method = value
                elif name == ":path":
                    stream.path = value
                elif not name.startswith(":"):
                    stream.headers[name] = value
            assert event.stream_id is not None
            if self.open >= self.knobs.max_concurrent_streams:
                self.server.refused_streams += 1
                self.conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self.streams[event.stream_id] = stream
            self.open += 1
            self.server.open_streams += 1
            self.server.max_open_streams = max(
                self.server.max_open_streams, self.server.open_streams
            )
            self.server.max_open_streams_per_connection = max(
                self.server.max_open_streams_per_connection, self.open
            )
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None
            assert event.data is not None
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_id in self.streams:
                self.streams[event.stream_id].body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            self.request_complete(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self.forget(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            for sid in list(self.streams):
                self.send_pending(sid)

    def forget(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            if stream.timer is not None:
                stream.timer.cancel()
            self.open -= 1
            self.server.open_streams -= 1
        if self.goaway_sid is not None and not self.streams:
            # Graceful shutdown: every stream up to last-stream-id is answered; close once
            # the last answer is written.
            self.close_when_flushed = True

    def request_complete(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None:
            return
        if self.goaway_sid is not None and sid > self.goaway_sid:
            # Above last-stream-id: a real server never processes these.
            self.server.ignored[stream.path] += 1
            self.forget(sid)
            return
        self.server.received[stream.path] += 1
        self.server.requests_seen += 1
        self.requests += 1
        knobs = self.knobs
        if knobs.close_after is not None and self.requests >= knobs.close_after:
            assert self.transport is not None
            self.transport.abort()
            return
        if knobs.rst_nth is not None and self.server.requests_seen == knobs.rst_nth:
            self.conn.reset_stream(sid, knobs.rst_code)
            self.forget(sid)
            return
        if knobs.goaway_after is not None and self.requests == knobs.goaway_after:
            # h2 refuses to send anything after its own close_connection(), so the GOAWAY
            # frame is written by hand: the streams up to ``sid`` are still answered.
            self.flush()
            self.goaway_sid = sid
            frame = GoAwayFrame(stream_id=0, last_stream_id=sid, error_code=0)
            assert self.transport is not None
            self.transport.write(frame.serialize())
        delay = float(stream.headers.get("x-delay", knobs.latency))
        if delay > 0:
            stream.timer = asyncio.get_running_loop().call_later(delay, self.answer, sid)
        else:
            self.answer(sid)

    def answer(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or self.transport is None or self.transport.is_closing():
            return
        stream.timer = None
        status = int(stream.headers.get("x-status", self.knobs.status))
        if self.knobs.body_size is not None:
            body = b"x" * self.knobs.body_size
        else:
            echo = {
                "method": stream.method,
                "path": stream.path,
                "headers": stream.headers,
                "body": stream.body.decode("utf-8", "replace"),
                "client_cn": self.client_cn,
            }
            body = json.dumps(echo).encode()
        headers = [
            (":status", str(status)),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("x-path", stream.path),
        ]
        self.server.answered[stream.path] += 1
        self.conn.send_headers(sid, headers, end_stream=not body)
        if not body:
            self.forget(sid)
        else:
            stream.pending = body
            self.send_pending(sid)
        self.flush()

    def send_pending(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or not stream.pending:
            return
        while stream.pending:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                return
            chunk, stream.pending = stream.pending[:window], stream.pending[window:]
            self.conn.send_data(sid, chunk, end_stream=not stream.pending)
        self.forget(sid)


async def start_server(
    knobs: Knobs, cert: CertFiles | None, *, client_ca: CertFiles | None = None
) -> H2Server:
    """Listen on 127.0.0.1 on a free port; ``cert=None`` serves cleartext HTTP/2 with prior
    knowledge (h2c), ``client_ca`` makes a client certificate mandatory."""
    context: ssl.SSLContext | None = None
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        context.set_alpn_protocols(["h2"])
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca.cert)
    server = H2Server(knobs, tls=cert is not None)
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(
        lambda: _Protocol(server), "127.0.0.1", 0, ssl=context
    )
    server.port = server._server.sockets[0].getsockname()[1]
    return server

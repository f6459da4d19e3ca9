"""A one-request HTTP/2 client (``h2`` over asyncio TLS) for the simulators' own needs:
readiness checks and ``/__stats`` of a granian subprocess.  Not a general client: one
connection per call, the whole answer buffered (capped at :data:`MAX_RESPONSE`)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events

MAX_RESPONSE = 64 * 1024 * 1024  # per-token stats of a large run can be big


class SimulatorClientError(Exception):
    """No complete HTTP/2 answer (connection refused, reset, timeout, too large)."""


def client_ssl_context(ca_file: Path | str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def h2_request(
    origin: str,
    ca_file: Path | str,
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    timeout: float = 5.0,
    max_response: int = MAX_RESPONSE,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; raises :class:`SimulatorClientError`."""
    try:
        return await asyncio.wait_for(
            _request(origin, ca_file, (method, path), headers, body, max_response=max_response),
            timeout,
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise SimulatorClientError(f"{method} {origin}{path}: {exc!r}") from exc


async def _request(
    origin: str,
    ca_file: Path | str,
    target: tuple[str, str],
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    max_response: int,
) -> tuple[int, dict[str, str], bytes]:
    method, path = target
    parts = urlsplit(origin)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    reader, writer = await asyncio.open_connection(
        host, port, ssl=client_ssl_context(ca_file), server_hostname=host
    )
    try:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        request_headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", parts.netloc),
            (":path", path),
            *headers,
        ]
        conn.send_headers(sid, request_headers, end_stream=not body)
        if body:
            # Small bodies only: within the 65,535-byte initial window.
            conn.send_data(sid, body, end_stream=True)
        writer.write(conn.data_to_send())
        return await _read_answer(reader, writer, conn, sid, max_response)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _read_answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    conn: h2.connection.H2Connection,
    sid: int,
    max_response: int,
) -> tuple[int, dict[str, str], bytes]:
    status, response_headers, received = 0, {}, bytearray()
    while True:
        data = await reader.read(65536)
        if not data:
            raise SimulatorClientError("connection closed before the answer")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                response_headers = {str(k): str(v) for k, v in event.headers or []}
                status = int(response_headers.get(":status", "0"))
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                received += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
                if len(received) > max_response:
                    raise SimulatorClientError("answer too large")
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                return status, response_headers, bytes(received)
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                raise SimulatorClientError(f"stream ended early: {event}")
        # window updates and SETTINGS acknowledgements
        writer.write(conn.data_to_send())

"""A lean HTTP/1.1 keep-alive client for load generation.

The registration benchmark's load generator shares the machine's cores with the API and
PostgreSQL it measures, so every microsecond it spends is taken from them: aiohttp's
client costs ~0.16 ms of CPU per request here, about a fifth of the whole request.  This
client does only what the benchmark needs: one connection per simulated device, one
request at a time on it, JSON bodies, answers framed by ``Content-Length`` (what
``pushcore api`` always sends).  Anything else (chunked answers, a closed connection, a
malformed status line) is an error, never a guess.  Like wrk or h2load, but with per-route
latencies and a stateful device flow.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import msgspec

MAX_ANSWER = 1024 * 1024


class LoadgenError(Exception):
    """The connection broke or the answer was not one this client reads."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(LoadgenError(f"connection lost: {exc!r}"))
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            parsed = self._parse()
        except LoadgenError as exc:
            self._waiter.set_exception(exc)
            return
        if parsed is not None:
            self._waiter.set_result(parsed)

    def _parse(self) -> tuple[int, bytes] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_ANSWER:
                raise LoadgenError("header too large")
            return None
        head = bytes(self._buffer[:end]).split(b"\r\n")
        parts = head[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise LoadgenError(f"not an HTTP/1.1 status line: {head[0]!r}")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                raise LoadgenError("chunked answers are not read by this client")
        if length > MAX_ANSWER:
            raise LoadgenError("answer too large")
        if len(self._buffer) < end + 4 + length:
            return None
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        return int(parts[1]), body

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.transport is None:
            raise LoadgenError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter


class Connection:
    """One keep-alive connection; :meth:`call` sends a request and awaits its answer."""

    def __init__(self, host: str, port: int, protocol: _Protocol) -> None:
        self._host = f"{host}:{port}".encode()
        self._protocol = protocol

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, protocol = await asyncio.get_running_loop().create_connection(_Protocol, host, port)
        return cls(host, port, protocol)

    async def call(
        self, method: str, path: str, token: str | None, body: Any, timeout: float
    ) -> tuple[int, Any]:
        """(status, decoded JSON answer or None); raises :class:`LoadgenError`."""
        payload = b"" if body is None else msgspec.json.encode(body)
        lines = [
            f"{method} {path} HTTP/1.1".encode(),
            b"Host: " + self._host,
            b"Content-Type: application/json",
            b"Content-Length: " + str(len(payload)).encode(),
        ]
        if token:
            lines.append(b"Authorization: Bearer " + token.encode())
        request = b"\r\n".join(lines) + b"\r\n\r\n" + payload
        try:
            status, answer = await asyncio.wait_for(self._protocol.send(request), timeout)
        except TimeoutError:
            raise LoadgenError(f"{method} {path}: no answer in {timeout} s") from None
        return status, msgspec.json.decode(answer) if answer else None

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()

"""The load generator's HTTP/1.1 answer framing (pure: fed bytes, no socket)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.loadgen import LoadgenError, _Protocol


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


async def _answer(*chunks: bytes) -> tuple[int, bytes]:
    proto = _Protocol()
    proto.transport = _Transport()  # type: ignore[assignment]
    waiter = proto.send(b"GET / HTTP/1.1\r\n\r\n")
    for chunk in chunks:
        proto.data_received(chunk)
    return await asyncio.wait_for(waiter, 1)


async def test_answers_split_anywhere_are_framed_by_content_length() -> None:
    raw = b'HTTP/1.1 201 Created\r\nContent-Length: 9\r\nX: y\r\n\r\n{"a": 1}\n'
    for cut in range(1, len(raw)):
        assert await _answer(raw[:cut], raw[cut:]) == (201, b'{"a": 1}\n')
    assert await _answer(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, b"")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 abc\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", "too large"),
    ],
)
async def test_answers_it_cannot_read_are_errors(raw: bytes, message: str) -> None:
    with pytest.raises(LoadgenError, match=message):
        await _answer(raw)


async def test_a_lost_connection_fails_the_call() -> None:
    proto = _Protocol()
    proto.transport = _Transport()  # type: ignore[assignment]
    waiter = proto.send(b"GET / HTTP/1.1\r\n\r\n")
    proto.connection_lost(ConnectionResetError())
    with pytest.raises(LoadgenError, match="connection lost"):
        await waiter
    with pytest.raises(LoadgenError, match="closed"):
        proto.send(b"GET / HTTP/1.1\r\n\r\n")

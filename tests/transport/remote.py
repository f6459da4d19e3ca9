"""The fault server in a process of its own, for races that need two processes.

In one event loop the client and the server take turns, so the server never closes a
connection while the client is writing to it; in two processes they run at once, as a
worker and a provider do.  The child runs :func:`~tests.transport.conftest.start_server`
on asyncio's own loop, reports its origin, and on request what it answered per path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import Any

from tests.transport.conftest import CertFiles, start_server

START_TIMEOUT = 20.0


def _serve(cert: CertFiles, options: dict[str, Any], pipe: Connection) -> None:
    async def run() -> None:
        server = await start_server(cert, **options)
        pipe.send(server.origin)
        loop = asyncio.get_running_loop()
        while True:
            asked = asyncio.Event()
            loop.add_reader(pipe.fileno(), asked.set)
            await asked.wait()
            loop.remove_reader(pipe.fileno())
            command = pipe.recv()
            stats = server.stats
            pipe.send(
                {
                    "answered": dict(stats.answered),
                    "received": dict(stats.received),
                    "ignored": dict(stats.ignored),
                    "connections": stats.connections,
                    "faults": dict(stats.faults),
                }
            )
            if command == "stop":
                await server.aclose()
                return

    asyncio.run(run())


class RemoteServer:
    def __init__(self, origin: str, pipe: Connection) -> None:
        self.origin = origin
        self._pipe = pipe

    async def stats(self, command: str = "stats") -> dict[str, Any]:
        self._pipe.send(command)
        loop = asyncio.get_running_loop()
        answer: dict[str, Any] = await loop.run_in_executor(None, self._pipe.recv)
        return answer


@asynccontextmanager
async def remote_server(cert: CertFiles, **options: Any) -> AsyncIterator[RemoteServer]:
    """:func:`start_server` with ``options`` in a spawned process (stopped on exit)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(cert, options, theirs), daemon=True)
    process.start()
    try:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, ours.poll, START_TIMEOUT):
            raise RuntimeError("the fault server process did not start")
        server = RemoteServer(ours.recv(), ours)
        yield server
        await server.stats("stop")
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
        ours.close()

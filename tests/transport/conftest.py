"""Fixtures: certificates in tmp_path, fault servers and transports closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pushcore.transport.curl import CurlTransport
from tests.transport.h2server import CertFiles, H2Server, Knobs, make_cert, start_server

ServerFactory = Callable[..., Awaitable[H2Server]]
TransportFactory = Callable[..., CurlTransport]


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path, "server")


@pytest.fixture
async def server_factory(cert: CertFiles) -> AsyncIterator[ServerFactory]:
    servers: list[H2Server] = []

    async def start(client_ca: CertFiles | None = None, **knobs: Any) -> H2Server:
        server = await start_server(Knobs(**knobs), cert, client_ca=client_ca)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def transport_factory(cert: CertFiles) -> AsyncIterator[TransportFactory]:
    transports: list[CurlTransport] = []

    def make(**kwargs: Any) -> CurlTransport:
        kwargs.setdefault("ca_file", str(cert.cert))
        transport = CurlTransport(**kwargs)
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        await transport.aclose()

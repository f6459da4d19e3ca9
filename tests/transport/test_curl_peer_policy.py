"""The connected-address check: a request whose ``peer_allowed`` refuses the address its
host resolved to is never connected or sent (``Failure.BLOCKED``); an allowed one is."""

from __future__ import annotations

from urllib.parse import urlsplit

from pushcore.transport.base import Failure, Request
from tests.transport.conftest import ServerFactory, TransportFactory


async def test_a_refused_peer_address_is_never_connected_to(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory()
    # the name, not the address: the check sees what "localhost" resolved to
    port = urlsplit(server.origin).port
    url = f"https://localhost:{port}/p"
    seen: list[str] = []

    def refuse(address: str) -> bool:
        seen.append(address)
        return False

    transport = transport_factory()
    (blocked,) = await transport.send([Request(url, [], b"x", peer_allowed=refuse)], timeout=5)
    assert blocked.failure is Failure.BLOCKED, blocked
    assert blocked.failure.unprocessed
    assert seen
    assert set(seen) <= {"127.0.0.1", "::1"}
    assert server.stats.connections == 0
    assert server.stats.received.total() == 0

    def allow(address: str) -> bool:
        seen.append(address)
        return address == "127.0.0.1"

    seen.clear()
    (sent,) = await transport.send([Request(url, [], b"x", peer_allowed=allow)], timeout=5)
    assert sent.failure is None, sent
    assert sent.status == 200
    assert "127.0.0.1" in seen
    assert server.stats.received.total() == 1

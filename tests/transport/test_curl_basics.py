"""CurlTransport against a real HTTP/2 + TLS server: multiplexing, bounds, TLS, bodies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import uvloop

from pushcore.transport.base import Failure, Request
from pushcore.transport.curl import CurlTransport
from pushcore.transport.errors import TransportError
from tests.transport.conftest import ServerFactory, TransportFactory, make_cert, start_server


def requests_for(url: str, n: int, prefix: str = "r") -> list[Request]:
    return [
        Request(f"{url}/{prefix}/{i}", [("x-index", str(i))], f"payload-{i}".encode())
        for i in range(n)
    ]


async def test_many_requests_multiplexed_in_order(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory()
    transport = transport_factory(max_in_flight=200, max_connections_per_origin=2)
    responses = await transport.send(requests_for(server.origin, 2000), timeout=30)

    assert len(responses) == 2000
    for i, response in enumerate(responses):
        assert response.failure is None, response
        assert response.status == 200
        assert response.headers["x-path"] == f"/r/{i}"  # names arrive lower-cased
        echo = json.loads(response.body)
        assert echo["method"] == "POST"
        assert echo["body"] == f"payload-{i}"
        assert echo["headers"]["x-index"] == str(i)
    assert server.stats.connections <= 2
    assert transport.connections_opened == server.stats.connections
    assert server.stats.received.total() == 2000
    assert max(server.stats.received.values()) == 1
    assert transport.in_flight == 0


async def test_libcurl_defaults_are_not_sent(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory()
    transport = transport_factory()
    request = Request(f"{server.origin}/h", [("content-type", "application/json")], b"{}")
    (response,) = await transport.send([request], timeout=5)
    headers = json.loads(response.body)["headers"]
    assert headers["content-type"] == "application/json"  # not x-www-form-urlencoded
    assert "accept" not in headers
    assert "expect" not in headers


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_methods(
    server_factory: ServerFactory, transport_factory: TransportFactory, method: str
) -> None:
    server = await server_factory()
    transport = transport_factory()
    body = b"" if method == "GET" else b"data"
    (response,) = await transport.send([Request(f"{server.origin}/m", [], body, method)], timeout=5)
    echo = json.loads(response.body)
    assert (echo["method"], echo["body"]) == (method, body.decode())


async def test_status_and_headers_pass_through(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory()
    transport = transport_factory()
    request = Request(f"{server.origin}/gone", [("x-status", "410")], b"{}")
    (response,) = await transport.send([request], timeout=5)
    assert (response.status, response.failure) == (410, None)
    assert response.headers["content-type"] == "application/json"


async def test_in_flight_bound_is_respected(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory(delay=0.02)
    transport = transport_factory(max_in_flight=25)
    # Two concurrent batches share the one bound.
    first, second = await asyncio.gather(
        transport.send(requests_for(server.origin, 150, "a"), timeout=20),
        transport.send(requests_for(server.origin, 150, "b"), timeout=20),
    )
    assert all(r.status == 200 for r in first + second)
    assert server.stats.max_open_streams <= 25
    assert server.stats.max_open_streams >= 20  # the bound is actually used


async def test_server_max_concurrent_streams_respected(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory(delay=0.01, max_concurrent_streams=10)
    transport = transport_factory(
        max_in_flight=50, max_connections_per_origin=2, max_streams_per_connection=10
    )
    responses = await transport.send(requests_for(server.origin, 500), timeout=20)
    assert all(r.status == 200 for r in responses)
    assert server.stats.max_open_streams_per_connection <= 10
    assert server.stats.connections == 2
    assert server.stats.refused_streams == 0
    assert server.stats.violations == []


async def test_streams_above_unseen_settings_are_refused_never_doubled(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    # libcurl assumes 100 streams until the server's SETTINGS arrive, so with a larger
    # configured limit its first burst overshoots a server that allows 10.  The server
    # refuses the excess (REFUSED_STREAM); libcurl closes that connection and retries on
    # fresh ones, up to 5 times.  Whatever the outcome, nothing is processed twice.
    server = await server_factory(delay=0.01, max_concurrent_streams=10)
    transport = transport_factory(max_in_flight=50, max_connections_per_origin=2)
    responses = await transport.send(requests_for(server.origin, 200), timeout=20)
    assert server.stats.refused_streams > 0
    assert max(server.stats.received.values()) == 1
    for response in responses:
        assert response.status == 200 or response.failure in (
            Failure.REFUSED,
            Failure.CONNECTION_LOST,  # "Connection died, tried 5 times before giving up"
        ), response
    assert server.stats.answered.total() == sum(r.status == 200 for r in responses)


async def test_body_cap_truncates_and_counts(
    server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory(body_size=100_000)
    transport = transport_factory(body_cap=65536)
    (response,) = await transport.send([Request(f"{server.origin}/big", [], b"")], timeout=5)
    assert response.status == 200
    assert len(response.body) == 65536
    assert transport.truncated_bodies == 1


async def test_wrong_ca_is_connect_failure(
    tmp_path: Path, server_factory: ServerFactory, transport_factory: TransportFactory
) -> None:
    server = await server_factory()
    other = make_cert(tmp_path, "other")
    transport = transport_factory(ca_file=str(other.cert))
    responses = await transport.send(requests_for(server.origin, 3), timeout=5)
    for response in responses:
        assert response.failure is Failure.CONNECT, response
        assert response.failure.unprocessed
    assert server.stats.received.total() == 0


async def test_client_certificate(tmp_path: Path, transport_factory: TransportFactory) -> None:
    server_cert = make_cert(tmp_path, "server")
    client = make_cert(tmp_path, "client", common_name="pushcore-client")
    server = await start_server(server_cert, client_ca=client)
    try:
        with_cert = transport_factory(
            ca_file=str(server_cert.cert),
            client_cert_pem=client.cert_pem(),
            client_key_pem=client.key_pem(),
        )
        (ok,) = await with_cert.send([Request(f"{server.origin}/c", [], b"")], timeout=5)
        assert json.loads(ok.body)["client_cn"] == "pushcore-client"

        without = transport_factory(ca_file=str(server_cert.cert))
        (refused,) = await without.send([Request(f"{server.origin}/c", [], b"")], timeout=5)
        # TLS 1.3 finishes the client's handshake before the server checks the certificate,
        # so the refusal arrives as a dropped connection, not always as a handshake error.
        assert refused.failure in (Failure.CONNECT, Failure.CONNECTION_LOST), refused
    finally:
        await server.aclose()


async def test_cleartext_prior_knowledge(transport_factory: TransportFactory) -> None:
    server = await start_server(None)
    try:
        transport = transport_factory(prior_knowledge=True)
        responses = await transport.send(requests_for(server.origin, 50), timeout=5)
        assert [r.status for r in responses] == [200] * 50
        assert server.stats.connections == 1
    finally:
        await server.aclose()


async def test_empty_batch(transport_factory: TransportFactory) -> None:
    assert await transport_factory().send([], timeout=1) == []


def test_needs_a_running_loop() -> None:
    with pytest.raises(TransportError):
        CurlTransport()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_in_flight": 0},
        {"max_streams_per_connection": 0},
        {"connect_timeout": 0},
        {"client_cert_pem": b"only a certificate"},
        {"ca_file": "/nonexistent/ca.pem"},
    ],
)
async def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(TransportError):
        CurlTransport(**kwargs)  # type: ignore[arg-type]


async def test_send_after_aclose_raises(transport_factory: TransportFactory) -> None:
    transport = transport_factory()
    await transport.aclose()
    await transport.aclose()  # idempotent
    with pytest.raises(TransportError):
        await transport.send([Request("https://localhost:1/", [], b"")], timeout=1)


def test_runs_on_uvloop(tmp_path: Path) -> None:
    async def main() -> list[int]:
        cert = make_cert(tmp_path, "server")
        server = await start_server(cert)
        transport = CurlTransport(ca_file=str(cert.cert))
        try:
            responses = await transport.send(requests_for(server.origin, 300), timeout=10)
        finally:
            await transport.aclose()
            await server.aclose()
        return [r.status for r in responses]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [200] * 300

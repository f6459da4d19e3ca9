"""Fixtures: certificates in tmp_path, fault servers and transports closed after each test.

The fault server is the simulators' own HTTP/2 engine (:mod:`pushcore.gateways.h2server`)
serving :class:`EchoApp`; its connection-level faults are
:class:`~pushcore.gateways.core.TransportFaults` and what it saw is ``server.stats``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pushcore.gateways.core import SimRequest, SimResponse, TransportControl, TransportFaults
from pushcore.gateways.h2server import H2Server, server_ssl_context
from pushcore.transport.curl import CurlTransport

ServerFactory = Callable[..., Awaitable[H2Server]]
TransportFactory = Callable[..., CurlTransport]
# libcurl assumes 100 streams until it has seen the server's SETTINGS: the tests' default
MAX_CONCURRENT_STREAMS = 100


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
    can hand the very same file to the client as its trust anchor, and no extended key
    usage, so it serves as a client certificate too)."""
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


@dataclass(frozen=True)
class EchoApp:
    """Answers every request with a JSON echo of its method, path, headers, body and client
    certificate's common name (or ``body_size`` filler bytes) after ``delay`` seconds with
    ``status``; the request headers ``x-delay`` and ``x-status`` override both."""

    delay: float = 0.0
    status: int = 200
    body_size: int | None = None

    def respond(self, request: SimRequest, control: TransportControl) -> SimResponse:
        assert isinstance(request.headers, dict)  # the h2 engine hands a dict
        path = request.path + (f"?{request.query}" if request.query else "")
        if self.body_size is not None:
            body = b"x" * self.body_size
        else:
            echo = {
                "method": request.method,
                "path": path,
                "headers": {k: v for k, v in request.headers.items() if not k.startswith(":")},
                "body": request.body.decode("utf-8", "replace"),
                "client_cn": request.client_cn,
            }
            body = json.dumps(echo).encode()
        status = int(request.headers.get("x-status", self.status))
        return SimResponse(status, [("content-type", "application/json"), ("x-path", path)], body)

    def latency(self, request: SimRequest) -> float:
        return float(request.headers.get("x-delay", self.delay))

    def accepts_connections(self) -> bool:
        return True

    def exempt(self, request: SimRequest) -> bool:
        return False


async def start_server(
    cert: CertFiles | None,
    *,
    client_ca: CertFiles | None = None,
    delay: float = 0.0,
    status: int = 200,
    body_size: int | None = None,
    **transport_faults: Any,
) -> H2Server:
    """Listen on 127.0.0.1 on a free port; ``cert=None`` serves cleartext HTTP/2 with prior
    knowledge (h2c), ``client_ca`` makes a client certificate mandatory; the other keywords
    are :class:`~pushcore.gateways.core.TransportFaults` fields."""
    context = None
    if cert is not None:
        ca = client_ca.cert if client_ca is not None else None
        context = server_ssl_context(cert.cert, cert.key, client_ca=ca)
    transport_faults.setdefault("max_concurrent_streams", MAX_CONCURRENT_STREAMS)
    server = H2Server(
        EchoApp(delay, status, body_size), context, TransportFaults(**transport_faults)
    )
    await server.start("127.0.0.1", 0)
    return server


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path, "server")


@pytest.fixture
async def server_factory(cert: CertFiles) -> AsyncIterator[ServerFactory]:
    servers: list[H2Server] = []

    async def start(**options: Any) -> H2Server:
        server = await start_server(cert, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()


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

"""Ceiling of the HTTP/2 transport: requests per client CPU-second against a fast server.

Starts a granian RSGI server (HTTP/2 over TLS, one worker, a self-signed certificate) that
answers 200 ``{}`` to everything -- the app is :func:`app` below -- then sends
``--requests`` POSTs through :class:`~pushcore.transport.curl.CurlTransport` in batches of
``--batch`` with ``--in-flight`` requests in flight, ``--senders`` batches at a time so the
in-flight bound stays full, and prints one JSON object.  Client CPU is
``time.process_time()`` of this process only (the server is a separate process).

    .venv/bin/python -m benchmarks.transport_ceiling [--requests 50000] [--loop asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport


async def app(scope: Any, protocol: Any) -> None:
    """The RSGI app granian serves: read the body, answer 200 with a tiny JSON body."""
    await protocol()
    protocol.response_bytes(200, [("content-type", "application/json")], b"{}")


def write_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_granian(cert: Path, key: Path, port: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parent.parent
    command = [
        str(Path(sys.executable).with_name("granian")),
        "--interface", "rsgi", "--http", "2", "--workers", "1",
        "--runtime-threads", "1", "--no-access-log", "--log-level", "warning",
        "--http2-max-concurrent-streams", "1000",
        "--host", "127.0.0.1", "--port", str(port),
        "--ssl-certificate", str(cert), "--ssl-keyfile", str(key),
        "benchmarks.transport_ceiling:app",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(command, cwd=root, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.1)
        else:
            return process
    process.kill()
    raise RuntimeError("granian did not start listening")


async def measure(args: argparse.Namespace, url: str, ca_file: str) -> dict[str, Any]:
    transport = CurlTransport(
        max_in_flight=args.in_flight,
        max_connections_per_origin=args.connections,
        max_streams_per_connection=1000,
        ca_file=ca_file,
    )
    body = json.dumps({"aps": {"alert": "benchmark"}}).encode()
    headers = [("content-type", "application/json"), ("apns-topic", "com.example.app")]
    batches = [
        [Request(f"{url}/3/device/{b:05d}{i:04d}", headers, body) for i in range(args.batch)]
        for b in range(args.requests // args.batch)
    ]
    # Warm-up: TLS handshake, connection, pooled easy handles.
    await transport.send(batches[0], timeout=30)
    statuses: dict[str, int] = {}
    pending = iter(batches)

    async def sender() -> None:
        for batch in pending:
            for response in await transport.send(batch, timeout=60):
                key = str(response.status) if response.failure is None else response.failure.value
                statuses[key] = statuses.get(key, 0) + 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(args.senders)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await transport.aclose()
    sent = sum(statuses.values())
    return {
        "benchmark": "transport_ceiling",
        "client": "CurlTransport",
        "server": "granian rsgi http2 tls, 1 worker",
        "loop": args.loop,
        "requests": sent,
        "batch": args.batch,
        "in_flight": args.in_flight,
        "connections": args.connections,
        "senders": args.senders,
        "outcomes": statuses,
        "wall_s": round(wall, 3),
        "client_cpu_s": round(cpu, 3),
        "req_per_client_cpu_s": round(sent / cpu),
        "req_per_wall_s": round(sent / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = write_cert(Path(tmp))
        port = free_port()
        server = start_granian(cert, key, port)
        try:
            if args.loop == "uvloop":
                import uvloop

                runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            else:
                runner = asyncio.Runner()
            with runner:
                result = runner.run(measure(args, f"https://localhost:{port}", str(cert)))
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Credentials and a raw HTTP/2 client for the simulator tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

APNS_KEY = ec.generate_private_key(ec.SECP256R1())
VAPID_KEY = ec.generate_private_key(ec.SECP256R1())
SERVICE_ACCOUNT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def apns_jwt(iat: float | None = None) -> str:
    claims = {"iss": "TEAM123456", "iat": int(time.time() if iat is None else iat)}
    return jwt.encode(claims, APNS_KEY, algorithm="ES256", headers={"kid": "KEY1234567"})


def apns_headers(**extra: str) -> dict[str, str]:
    return {
        "authorization": f"bearer {apns_jwt()}",
        "apns-topic": "com.example.app",
        "apns-push-type": "alert",
        **extra,
    }


def vapid_headers(origin: str, ttl: str | None = "60") -> dict[str, str]:
    claims = {"aud": origin, "exp": int(time.time()) + 3600, "sub": "mailto:ops@example.com"}
    token = jwt.encode(claims, VAPID_KEY, algorithm="ES256")
    raw = VAPID_KEY.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    k = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    headers = {"authorization": f"vapid t={token}, k={k}", "content-encoding": "aes128gcm"}
    if ttl is not None:
        headers["ttl"] = ttl
    return headers


def fcm_assertion(aud: str, *, lifetime: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "iss": "pushcore@test-project.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, SERVICE_ACCOUNT_KEY, algorithm="RS256", headers={"kid": "k1"})


class RawH2:
    """A client that shows every frame-level event (GOAWAY, RST_STREAM, close)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str):
        self.reader = reader
        self.writer = writer
        self.authority = authority
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.events: list[h2.events.Event] = []
        self.closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, origin: str, ca_file: Path) -> AsyncIterator[RawH2]:
        parts = urlsplit(origin)
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port, ssl=ctx), 5
        )
        client = cls(reader, writer, parts.netloc)
        client.conn.initiate_connection()
        writer.write(client.conn.data_to_send())
        try:
            yield client
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    def post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        pseudo = [(":method", "POST"), (":scheme", "https"), (":authority", self.authority)]
        self.conn.send_headers(sid, [*pseudo, (":path", path), *headers.items()])
        self.conn.send_data(sid, body, end_stream=True)
        self.writer.write(self.conn.data_to_send())
        return sid

    async def pump(self, until: float = 2.0) -> None:
        """Read events until the connection closes or ``until`` seconds pass quietly."""
        while not self.closed:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), until)
            except TimeoutError:
                return
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            self.events.extend(self.conn.receive_data(data))
            with contextlib.suppress(ConnectionError):
                self.writer.write(self.conn.data_to_send())

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in self.events:
            if isinstance(e, h2.events.ResponseReceived):
                headers = {str(k): str(v) for k, v in e.headers or []}
                out[e.stream_id] = int(headers[":status"])
        return out

    def resets(self) -> dict[int, int]:
        return {
            e.stream_id: int(e.error_code or 0)
            for e in self.events
            if isinstance(e, h2.events.StreamReset)
        }

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for e in self.events:
            if isinstance(e, h2.events.ConnectionTerminated):
                return e
        return None

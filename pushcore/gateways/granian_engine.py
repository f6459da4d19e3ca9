"""The fast engine: one granian subprocess (RSGI, HTTP/2 only, TLS) per simulator.

Granian binds its port in its main process and gives no way to learn a port it picked, so
for port 0 a free port is chosen here first (bind to 0, read, close).  Another process may
take it in between: the start is then retried on a new port (at most :data:`ATTEMPTS`).
Readiness is a real ``GET /__stats`` over HTTP/2, which proves that a worker imported the
app, not only that the socket listens.

granian is not a dependency of the product: it comes with the ``pushcore[simulators]``
extra.  Nothing here imports it (it runs as ``python -m granian``), so this module loads
without it and :meth:`GranianProcess.start` says what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import socket
import sys
import tempfile
import time
from dataclasses import asdict
from typing import IO, Any

from pushcore.gateways.client import SimulatorClientError, h2_request
from pushcore.gateways.core import STATS_PATH, Faults, TransportFaults
from pushcore.gateways.rsgi import ENV_CONFIG, ENV_PROVIDER
from pushcore.gateways.tls import TlsFiles

ATTEMPTS = 3
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = "granian is not installed: pip install 'pushcore[simulators]'"


class GranianStartError(RuntimeError):
    """granian did not answer in time or exited; the message carries its output."""


class GranianMissing(GranianStartError):
    """The ``simulators`` extra is not installed."""


def granian_installed() -> bool:
    return importlib.util.find_spec("granian") is not None


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class GranianProcess:
    def __init__(
        self,
        provider: str,
        tls: TlsFiles,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: dict[str, Any] | None = None,
        faults: Faults | None = None,
        transport_faults: TransportFaults | None = None,
        workers: int = 1,
        max_tracked_tokens: int | None = None,
    ) -> None:
        tf = transport_faults or TransportFaults()
        if tf.needs_h2_engine or (faults is not None and faults.refuse_connections):
            raise ValueError(
                "refusing connections, GOAWAY, RST_STREAM and drop faults need the h2 engine"
            )
        if tf.max_concurrent_streams < 10:
            raise ValueError("granian's max_concurrent_streams must be at least 10")
        self.provider = provider
        self.tls = tls
        self.host = host
        self.requested_port = port
        self.port = port
        self.workers = workers
        self.max_concurrent_streams = tf.max_concurrent_streams
        config: dict[str, Any] = {"options": options or {}, "faults": asdict(faults or Faults())}
        if max_tracked_tokens is not None:
            config["max_tracked_tokens"] = max_tracked_tokens
        self.config = json.dumps(config)
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "granian",
            "--interface", "rsgi",
            # HTTP/2 for pushcore and every h2 client; HTTP/1.1 too (ALPN picks), because
            # third-party clients such as pywebpush and google-auth's token refresh use
            # requests, which speaks only HTTP/1.1
            "--http", "auto",
            "--host", self.host,
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--loop", "uvloop",
            "--no-ws",
            "--log-level", "warning",
            "--no-access-log",
            "--http2-max-concurrent-streams", str(self.max_concurrent_streams),
            "--ssl-certificate", str(self.tls.cert_file),
            "--ssl-keyfile", str(self.tls.key_file),
            "pushcore.gateways.rsgi:app",
        ]  # fmt: skip

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        if not granian_installed():
            raise GranianMissing(INSTALL_HINT)
        deadline = time.monotonic() + timeout
        for attempt in range(ATTEMPTS):
            self.port = self.requested_port or free_port(self.host)
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in aclose)
            env = {ENV_PROVIDER: self.provider, ENV_CONFIG: self.config}
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env={**_inherited_env(), **env},
            )
            try:
                await self._wait_ready(deadline)
            except GranianStartError:
                output = self.output()
                await self.aclose()
                in_use = "address already in use" in output.lower()
                if in_use and not self.requested_port and attempt + 1 < ATTEMPTS:
                    continue
                raise GranianStartError(
                    f"granian for {self.provider} on {self.origin} did not start:\n{output}"
                ) from None
            return

    async def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise GranianStartError("exited")
            try:
                status, _, _ = await h2_request(
                    self.origin, self.tls.ca_file, "GET", STATS_PATH, timeout=1.0
                )
            except SimulatorClientError:
                await asyncio.sleep(0.05)
                continue
            if status == 200:
                return
            raise GranianStartError(f"GET {STATS_PATH} answered {status}")
        raise GranianStartError("timed out")

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read(64 * 1024).decode("utf-8", "replace")

    async def aclose(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (granian stops gracefully), SIGKILL if it has not exited in time."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def _inherited_env() -> dict[str, str]:
    import os

    # granian reads GRANIAN_* variables too; ours are given as flags and must win.
    return {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}

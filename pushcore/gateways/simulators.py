"""In-process API: start the three simulators on either engine.

::

    async with Simulators.start(engine="h2") as sims:
        sims.apns.origin        # "https://127.0.0.1:41234"
        sims.ca_file            # trust this CA (httpx: verify=str(sims.ca_file))
        sims.apns.counters      # live Counters (h2 engine only)
        await sims.fcm.fetch_stats()   # GET /__sim/stats, both engines
        await sims.fcm.reset_stats()   # POST /__sim/reset
        await sims.fcm.set_faults(error_every=10, error_status=503)  # POST /__sim/faults

Everything started is stopped when the block exits, also on error; each start and stop is
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.client import h2_request
from pushcore.gateways.core import (
    SIM_FAULTS,
    SIM_RESET,
    SIM_STATS,
    Counters,
    Faults,
    Simulator,
    TransportFaults,
)
from pushcore.gateways.fcm import FcmOptions
from pushcore.gateways.granian_engine import GranianProcess
from pushcore.gateways.h2server import H2Server, simulator_server
from pushcore.gateways.rsgi import PROVIDERS, build_simulator
from pushcore.gateways.tls import TlsFiles, ensure_certificates
from pushcore.gateways.webpush import WebPushOptions

Engine = Literal["h2", "granian"]
T = TypeVar("T")
STATS_TIMEOUT = 10.0


def _per_provider(value: T | Mapping[str, T] | None, name: str, default: T) -> T:
    if value is None:
        return default
    if isinstance(value, Mapping):
        return value.get(name, default)
    return value


class RunningSimulator:
    """One simulator listening on one port."""

    def __init__(self, name: str, origin: str, ca_file: Path) -> None:
        self.name = name
        self.origin = origin
        self.ca_file = ca_file

    @property
    def port(self) -> int:
        return int(self.origin.rsplit(":", 1)[1])

    @property
    def counters(self) -> Counters:
        raise RuntimeError(
            f"{self.name}: counters live in the granian process; use await fetch_stats()"
        )

    async def fetch_stats(
        self, *, with_tokens: bool = False, with_payloads: bool = False
    ) -> dict[str, Any]:
        """``GET /__sim/stats`` (``with_tokens``: the per-token table too; ``with_payloads``:
        the payloads kept per token, with ``record_payloads``)."""
        query = "&".join(
            q for q, on in (("tokens=1", with_tokens), ("payloads=1", with_payloads)) if on
        )
        return await self._control("GET", SIM_STATS + (f"?{query}" if query else ""))

    async def reset_stats(self) -> None:
        """``POST /__sim/reset``."""
        await self._control("POST", SIM_RESET)

    async def set_faults(self, **fields: Any) -> dict[str, Any]:
        """``POST /__sim/faults``: the whole fault set (fields left out: no fault); returns
        the set in force.  Granian: one worker's faults only, connection-level ones refused."""
        return await self._control("POST", SIM_FAULTS, json.dumps(fields).encode())

    async def _control(self, method: str, path: str, body: bytes = b"") -> dict[str, Any]:
        headers = [("content-type", "application/json")] if body else []
        status, _, answer = await h2_request(
            self.origin,
            self.ca_file,
            method,
            path,
            headers=headers,
            body=body,
            timeout=STATS_TIMEOUT,
        )
        if status != 200:
            detail = answer[:300].decode("utf-8", "replace")
            raise RuntimeError(f"{self.name}: {method} {path} answered {status}: {detail}")
        result: dict[str, Any] = json.loads(answer)
        return result

    async def aclose(self) -> None:
        return None


class H2Simulator(RunningSimulator):
    def __init__(self, name: str, sim: Simulator, server: H2Server, ca_file: Path) -> None:
        super().__init__(name, server.origin, ca_file)
        self.sim = sim
        self.server = server

    @property
    def counters(self) -> Counters:
        return self.sim.counters

    async def aclose(self) -> None:
        await self.server.aclose()


class GranianSimulator(RunningSimulator):
    def __init__(self, name: str, process: GranianProcess, ca_file: Path) -> None:
        super().__init__(name, process.origin, ca_file)
        self.process = process

    async def aclose(self) -> None:
        await self.process.aclose()


@dataclass(frozen=True, slots=True)
class Simulators:
    engine: Engine
    tls: TlsFiles
    apns: RunningSimulator
    fcm: RunningSimulator
    webpush: RunningSimulator

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def __iter__(self) -> Iterator[RunningSimulator]:
        return iter((self.apns, self.fcm, self.webpush))

    def __getitem__(self, name: str) -> RunningSimulator:
        if name not in PROVIDERS:
            raise KeyError(name)
        sim: RunningSimulator = getattr(self, name)
        return sim

    @staticmethod
    @contextlib.asynccontextmanager
    async def start(
        *,
        engine: Engine = "h2",
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        ca_dir: Path | str | None = None,
        faults: Faults | Mapping[str, Faults] | None = None,
        transport_faults: TransportFaults | Mapping[str, TransportFaults] | None = None,
        apns: ApnsOptions | None = None,
        fcm: FcmOptions | None = None,
        webpush: WebPushOptions | None = None,
        workers: int = 1,
        max_tracked_tokens: int | None = None,
    ) -> AsyncIterator[Simulators]:
        """Start APNs, FCM and Web Push simulators; ``faults``/``transport_faults`` apply to
        all three or, as a mapping, per provider name.  ``ca_dir`` None: a temporary
        directory removed at exit.  ``workers`` applies to granian only."""
        if engine not in ("h2", "granian"):
            raise ValueError(f"engine must be h2 or granian, got {engine!r}")
        options = {
            "apns": asdict(apns or ApnsOptions()),
            "fcm": asdict(fcm or FcmOptions()),
            "webpush": asdict(webpush or WebPushOptions()),
        }
        launches = [
            _Launch(
                name,
                host,
                (ports or {}).get(name, 0),
                options[name],
                _per_provider(faults, name, Faults()),
                _per_provider(transport_faults, name, TransportFaults()),
                max_tracked_tokens,
            )
            for name in PROVIDERS
        ]
        async with contextlib.AsyncExitStack() as stack:
            if ca_dir is None:
                ca_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pushsim-"))
            tls = await asyncio.to_thread(ensure_certificates, ca_dir, [host])
            if engine == "h2":
                started = await _start_all(stack, launches, lambda la: _start_h2(la, tls))
            else:
                started = await _start_all(
                    stack, launches, lambda la: _start_granian(la, tls, workers)
                )
            yield Simulators(engine, tls, started["apns"], started["fcm"], started["webpush"])


@dataclass(frozen=True, slots=True)
class _Launch:
    """What one simulator is started with."""

    name: str
    host: str
    port: int  # 0: any free port
    options: dict[str, Any]  # fields of the provider's options dataclass
    faults: Faults
    transport_faults: TransportFaults
    max_tracked_tokens: int | None


async def _start_all(
    stack: contextlib.AsyncExitStack,
    launches: Sequence[_Launch],
    start_one: Callable[[_Launch], Awaitable[RunningSimulator]],
) -> dict[str, RunningSimulator]:
    """Started together (granian takes ~1 s each); whatever started is stopped by ``stack``,
    also when another one fails."""
    started: dict[str, RunningSimulator] = {}

    async def start(launch: _Launch) -> None:
        running = await start_one(launch)
        started[launch.name] = running
        stack.push_async_callback(running.aclose)

    results = await asyncio.gather(*(start(la) for la in launches), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return started


async def _start_h2(launch: _Launch, tls: TlsFiles) -> RunningSimulator:
    sim = build_simulator(launch.name, launch.options, launch.max_tracked_tokens)
    server = simulator_server(sim, tls, launch.faults, launch.transport_faults)
    await server.start(launch.host, launch.port)
    return H2Simulator(launch.name, sim, server, tls.ca_file)


async def _start_granian(launch: _Launch, tls: TlsFiles, workers: int) -> RunningSimulator:
    process = GranianProcess(
        launch.name,
        tls,
        host=launch.host,
        port=launch.port,
        options=launch.options,
        faults=launch.faults,
        transport_faults=launch.transport_faults,
        workers=workers,
        max_tracked_tokens=launch.max_tracked_tokens,
    )
    try:
        await process.start()
    except BaseException:
        await process.aclose()
        raise
    return GranianSimulator(launch.name, process, tls.ca_file)

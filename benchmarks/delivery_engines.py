"""Which HTTP/2 engine sends APNs notifications: pycurl, aioapns or httpx, side by side.

Starts the granian APNs simulator (one worker, JWT signatures verified) and sends the same
``--tokens`` live device tokens through each engine with the same in-flight bound:

* ``curl``: :class:`~pushcore.transport.curl.CurlTransport` + ``ApnsProvider`` through
  :func:`~pushcore.fanout.delivery.deliver`, batches of ``--batch`` (two batches at a
  time so the transport's ``max_in_flight`` stays full), one connection;
* ``aioapns``: ``aioapns.APNs`` 4.0 as shipped (its own JWT, request and connection pool),
  one connection, pointed at the simulator by overriding its protocol class's
  ``APNS_SERVER``/``APNS_PORT`` (class attributes) and giving it an SSL context that trusts
  the simulator's CA and offers ALPN ``h2`` (aioapns sets none); ``asyncio.gather`` bounded
  by a semaphore;
* ``httpx``: ``httpx.AsyncClient(http2=True)`` with the requests ``ApnsProvider`` builds,
  ``asyncio.gather`` bounded by a semaphore (httpx uses one connection per origin and at
  most 100 streams on it, whatever the bound).

Each engine runs ``--repeats`` times, interleaved (curl, aioapns, httpx, curl, ...), with
the simulator's counters reset before every run; medians are reported.  Client CPU is
``time.process_time()`` of this process (the simulator is a separate process; its CPU is
read from ``/proc`` for the granian process tree when available).  Prints one JSON
document and writes it to ``benchmarks/results/delivery-engines-<date>.json``.

    .venv/bin/python -m benchmarks.delivery_engines [--tokens 20000] [--in-flight 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioapns
import httpx
import pycurl
from aioapns.common import NotificationRequest, PushType
from aioapns.connection import APNsProductionClientProtocol
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.fanout.delivery import deliver
from pushcore.gateways import fates
from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.simulators import GranianSimulator, Simulators
from pushcore.providers.apns import ApnsProvider, ApnsRendered
from pushcore.providers.base import Outcome, Registration
from pushcore.providers.credentials import ApnsCredentials
from pushcore.providers.registry import notification
from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport

TOPIC = "com.example.bench"
TEAM_ID = "TEAMBENCH1"
KEY_ID = "KEYBENCH01"
ENGINES = ("curl", "aioapns", "httpx")
NOTE = notification(title="Benchmark", body="delivery engines", data={"n": "1"})
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Setup:
    sims: Simulators
    credentials: ApnsCredentials
    key_pem: str
    tokens: list[str]
    in_flight: int
    batch: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Outcomes:
    ok: int  # HTTP 200 answers seen by the client
    other: dict[str, int]  # everything else, by status or failure


Engine = Callable[[Setup], Awaitable[Outcomes]]


# -- engines ------------------------------------------------------------------------------------


async def run_curl(setup: Setup) -> Outcomes:
    transport = CurlTransport(
        ca_file=str(setup.sims.ca_file),
        max_in_flight=setup.in_flight,
        max_connections_per_origin=1,
        max_streams_per_connection=setup.in_flight,
    )
    provider = ApnsProvider(setup.credentials, origin=setup.sims.apns.origin)
    rendered = provider.render(NOTE)
    registrations = [Registration(installation_id=i, token=t) for i, t in enumerate(setup.tokens)]
    batches = [
        registrations[i : i + setup.batch] for i in range(0, len(registrations), setup.batch)
    ]
    senders = asyncio.Semaphore(2)  # two batches queued: the in-flight bound stays full
    other: dict[str, int] = {}
    ok = 0

    async def send(batch: Sequence[Registration]) -> None:
        nonlocal ok
        async with senders:
            results = await deliver(provider, transport, rendered, batch, timeout=setup.timeout)
        for r in results:
            if r.outcome is Outcome.DELIVERED:
                ok += 1
            else:
                other[r.reason] = other.get(r.reason, 0) + 1

    try:
        await asyncio.gather(*(send(b) for b in batches))
    finally:
        await transport.aclose()
    return Outcomes(ok, other)


def _sim_protocol(host: str, port: int) -> type[APNsProductionClientProtocol]:
    # aioapns reads host and port from class attributes of its protocol class.
    return type(
        "SimulatorProtocol",
        (APNsProductionClientProtocol,),
        {"APNS_SERVER": host, "APNS_PORT": port},
    )


async def run_aioapns(setup: Setup) -> Outcomes:
    ctx = ssl.create_default_context(cafile=str(setup.sims.ca_file))
    ctx.set_alpn_protocols(["h2"])
    client = aioapns.APNs(
        key=setup.key_pem,
        key_id=KEY_ID,
        team_id=TEAM_ID,
        topic=TOPIC,
        max_connections=1,
        max_connection_attempts=1,
        ssl_context=ctx,
    )
    client.pool.protocol_class = _sim_protocol("127.0.0.1", setup.sims.apns.port)
    message = json.loads(ApnsProvider(setup.credentials).render(NOTE).payload)
    slots = asyncio.Semaphore(setup.in_flight)
    other: dict[str, int] = {}
    ok = 0

    async def send(token: str) -> None:
        nonlocal ok
        async with slots:
            request = NotificationRequest(
                device_token=token, message=message, push_type=PushType.ALERT, priority=10
            )
            try:
                result = await asyncio.wait_for(client.send_notification(request), setup.timeout)
            except Exception as exc:  # noqa: BLE001 (count whatever aioapns raises)
                key = type(exc).__name__
            else:
                if result.status == "200":
                    ok += 1
                    return
                key = f"{result.status} {result.description}"
        other[key] = other.get(key, 0) + 1

    try:
        await asyncio.gather(*(send(t) for t in setup.tokens))
    finally:
        client.pool.close()  # the loop finishes closing during the next awaits
    return Outcomes(ok, other)


async def run_httpx(setup: Setup) -> Outcomes:
    ctx = ssl.create_default_context(cafile=str(setup.sims.ca_file))
    provider = ApnsProvider(setup.credentials, origin=setup.sims.apns.origin)
    rendered: ApnsRendered = provider.render(NOTE)
    slots = asyncio.Semaphore(setup.in_flight)
    other: dict[str, int] = {}
    ok = 0

    async with httpx.AsyncClient(http2=True, verify=ctx, timeout=setup.timeout) as client:

        async def send(request: Request) -> None:
            nonlocal ok
            async with slots:
                try:
                    response = await client.post(
                        request.url, content=request.body, headers=list(request.headers)
                    )
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                else:
                    if response.status_code == 200:
                        ok += 1
                        return
                    key = str(response.status_code)
            other[key] = other.get(key, 0) + 1

        registrations = [Registration(installation_id=0, token=t) for t in setup.tokens]
        built = provider.build(rendered, registrations, time.time())
        requests = [r for r in built if isinstance(r, Request)]
        await asyncio.gather(*(send(r) for r in requests))
    return Outcomes(ok, other)


RUNNERS: dict[str, Engine] = {"curl": run_curl, "aioapns": run_aioapns, "httpx": run_httpx}


# -- measurement --------------------------------------------------------------------------------


def _tree_cpu_seconds(root: int) -> float | None:
    """user + system CPU seconds of ``root`` and its descendants (Linux ``/proc``)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        parents: dict[int, int] = {}
        times: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields[1])  # ppid (field 4; 2 after the ")" split)
            times[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0) for p in tree) / tick


def _server_pid(sims: Simulators) -> int | None:
    apns = sims.apns
    if isinstance(apns, GranianSimulator) and apns.process.process is not None:
        return apns.process.process.pid
    return None


async def measure(name: str, setup: Setup) -> dict[str, Any]:
    await setup.sims.apns.reset_stats()
    pid = _server_pid(setup.sims)
    server_before = _tree_cpu_seconds(pid) if pid else None
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = await RUNNERS[name](setup)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    server_after = _tree_cpu_seconds(pid) if pid else None
    stats = await setup.sims.apns.fetch_stats()
    n = len(setup.tokens)
    server_cpu = (
        server_after - server_before
        if server_before is not None and server_after is not None
        else None
    )
    return {
        "engine": name,
        "requests": n,
        "ok_200": outcomes.ok,
        "not_ok": outcomes.other,
        "server_accepted": stats["accepted"],
        "server_requests": stats["requests"],
        "wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 1),
        "client_cpu_s": round(cpu, 3),
        "requests_per_client_cpu_s": round(n / cpu, 1) if cpu > 0 else None,
        "server_cpu_s": round(server_cpu, 2) if server_cpu is not None else None,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(runs: list[dict[str, Any]], engines: Sequence[str]) -> dict[str, Any]:
    medians: dict[str, Any] = {}
    keys = (
        "wall_s",
        "requests_per_s",
        "client_cpu_s",
        "requests_per_client_cpu_s",
        "server_cpu_s",
        "ok_200",
        "server_accepted",
    )
    for name in engines:
        mine = [r for r in runs if r["engine"] == name]
        medians[name] = {key: _median(mine, key) for key in keys}
        medians[name]["all_ok"] = all(
            r["ok_200"] == r["requests"] == r["server_accepted"] for r in mine
        )
    return medians


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines: {sorted(unknown)}")
    key = ec.generate_private_key(ec.SECP256R1())
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key_pem = _key_pem(key)
    credentials = ApnsCredentials(topic=TOPIC, private_key=key_pem, team_id=TEAM_ID, key_id=KEY_ID)
    tokens = [fates.apns_token(i, seed=7) for i in range(args.tokens)]
    options = ApnsOptions(keys={KEY_ID: public}, topics=[TOPIC])
    runs: list[dict[str, Any]] = []
    async with Simulators.start(engine="granian", workers=1, apns=options) as sims:
        setup = Setup(sims, credentials, key_pem, tokens, args.in_flight, args.batch, args.timeout)
        for repeat in range(args.repeats):
            for name in engines:
                run = await measure(name, setup)
                run["repeat"] = repeat
                runs.append(run)
                print(json.dumps(run), flush=True, file=sys.stderr)
    return {
        "benchmark": "delivery_engines",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pycurl": pycurl.version,
            "aioapns": _version("aioapns"),
            "httpx": httpx.__version__,
            "h2": _version("h2"),
            "granian": _version("granian"),
        },
        "config": {
            "simulator": "granian APNs, 1 worker, TLS, JWT signatures verified",
            "tokens": args.tokens,
            "in_flight": args.in_flight,
            "curl_batch": args.batch,
            "curl_concurrent_batches": 2,
            "connections_per_engine": 1,
            "httpx_note": "httpx caps one HTTP/2 connection at 100 concurrent streams",
            "repeats": args.repeats,
            "order": "interleaved",
            "client_cpu": "time.process_time() of the benchmark process",
        },
        "medians": summarize(runs, engines),
        "runs": runs,
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=20_000, help="live tokens per run")
    parser.add_argument("--in-flight", type=int, default=200, help="requests in flight")
    parser.add_argument("--batch", type=int, default=500, help="deliver() batch size (curl)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine, interleaved")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.tokens < 1 or args.in_flight < 1 or args.batch < 1 or args.repeats < 1:
        parser.error("--tokens, --in-flight, --batch and --repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = asyncio.run(main_async(args))
    text = json.dumps(report, indent=2)
    print(text)
    out: Path = args.out or RESULTS / f"delivery-engines-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""The delivery layer's speed per provider and engine, side by side, with the simulators'
own ceiling.

For APNs, FCM and Web Push, against the granian simulators (one worker each), the same
live registrations are sent by:

* ``curl``: the default transport (``CurlTransport``) through the providers and
  ``pushcore.transport.delivery.deliver``, in batches of ``--batch``;
* ``aioapns`` (APNs only): ``aioapns.APNs`` as shipped (see ``benchmarks.delivery_engines``);
* ``httpx``: the common baseline, ``httpx.AsyncClient(http2=True)`` and ``asyncio.gather``
  over the provider-built requests.

Every engine keeps ``--in-flight`` requests in flight and runs ``--repeats`` times,
interleaved; medians are reported.  Sender CPU is ``time.process_time()`` of this process.
The ceiling is ``h2load`` (Debian's nghttp2-client) replaying one provider-built request on
one connection with 100 streams.  Prints one JSON object and writes it to
``benchmarks/results/transport-<date>.json``.

    .venv/bin/python -m benchmarks.transport [--tokens 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from benchmarks import delivery_engines
from pushcore.gateways import fates
from pushcore.gateways.fcm import FcmOptions
from pushcore.gateways.simulators import Simulators
from pushcore.providers.apns import ApnsProvider
from pushcore.providers.base import Outcome, Provider, Registration
from pushcore.providers.credentials import (
    ApnsCredentials,
    FcmCredentials,
    WebPushCredentials,
    private_key_pem,
)
from pushcore.providers.fcm import FcmProvider
from pushcore.providers.notification import Notification
from pushcore.providers.webpush import WebPushProvider
from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport
from pushcore.transport.delivery import authorize, deliver

NOTE = Notification(title="Benchmark", body="transport", data={"n": "1"})
RESULTS = Path(__file__).resolve().parent / "results"
STATIC_FCM_TOKEN = "bench-static-access-token"


def _providers(sims: Simulators) -> dict[str, Provider[Any]]:
    apns = ApnsCredentials(
        team_id=delivery_engines.TEAM_ID,
        key_id=delivery_engines.KEY_ID,
        private_key=private_key_pem(ec.generate_private_key(ec.SECP256R1())),
        topic=delivery_engines.TOPIC,
    )
    account = {
        "type": "service_account",
        "project_id": "bench",
        "private_key": private_key_pem(
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "client_email": "bench@bench.iam.gserviceaccount.com",
        "token_uri": f"{sims.fcm.origin}/token",
    }
    vapid = WebPushCredentials(
        vapid_private_key=private_key_pem(ec.generate_private_key(ec.SECP256R1())),
        subject="mailto:bench@example.com",
    )
    return {
        "apns": ApnsProvider(apns, origin=sims.apns.origin),
        "fcm": FcmProvider(FcmCredentials(service_account=account), base_url=sims.fcm.origin),
        "webpush": WebPushProvider(vapid, allow_loopback=True),
    }


def _registrations(name: str, n: int, origin: str) -> list[Registration]:
    if name == "apns":
        return [Registration(installation_id=i, token=fates.apns_token(i)) for i in range(n)]
    if name == "fcm":
        return [Registration(installation_id=i, token=fates.fcm_token(i)) for i in range(n)]
    out = []
    for i in range(n):
        sub = fates.webpush_subscription(i, origin=origin)
        out.append(
            Registration(installation_id=i, token=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth)
        )
    return out


async def run_curl(provider: Provider[Any], regs: list[Registration], args: Any, ca: str) -> int:
    transport = CurlTransport(
        ca_file=ca,
        max_in_flight=args.in_flight,
        max_connections_per_origin=1,
        max_streams_per_connection=args.in_flight,
    )
    rendered = provider.render(NOTE)
    senders = asyncio.Semaphore(2)  # two batches queued keep the in-flight bound full

    async def send(batch: Sequence[Registration]) -> int:
        async with senders:
            results = await deliver(provider, transport, rendered, batch, timeout=60)
        return sum(r.outcome is Outcome.DELIVERED for r in results)

    try:
        batches = [regs[i : i + args.batch] for i in range(0, len(regs), args.batch)]
        return sum(await asyncio.gather(*(send(b) for b in batches)))
    finally:
        await transport.aclose()


async def run_httpx(provider: Provider[Any], regs: list[Registration], args: Any, ca: str) -> int:
    slots = asyncio.Semaphore(args.in_flight)
    ctx = ssl.create_default_context(cafile=ca)
    ok = 0
    async with httpx.AsyncClient(http2=True, verify=ctx, timeout=60) as client:

        async def send(request: Request) -> None:
            nonlocal ok
            async with slots:
                response = await client.post(
                    request.url, content=request.body, headers=list(request.headers)
                )
            ok += response.status_code in (200, 201)

        built = provider.build(provider.render(NOTE), regs, time.time())
        await asyncio.gather(*(send(r) for r in built if isinstance(r, Request)))
    return ok


async def run_aioapns(
    provider: Provider[Any], regs: list[Registration], args: Any, ca: str, sims: Simulators
) -> int:
    assert isinstance(provider, ApnsProvider)
    setup = delivery_engines.Setup(
        sims,
        provider.credentials,
        provider.credentials.private_key,
        [r.token for r in regs],
        args.in_flight,
        args.batch,
        60.0,
    )
    return (await delivery_engines.run_aioapns(setup)).ok


def h2load_ceiling(request: Request, ca_dir: Path, n: int) -> dict[str, Any]:
    """h2load replaying ``request`` (one connection, 100 streams); None fields if absent."""
    if shutil.which("h2load") is None:
        return {"error": "h2load not installed (Debian package nghttp2-client)"}
    with tempfile.NamedTemporaryFile(dir=ca_dir, suffix=".body", delete=False) as body:
        body.write(request.body)
    cmd = ["h2load", "-n", str(n), "-c", "1", "-m", "100", "-d", body.name]
    for name, value in request.headers:
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(request.url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    Path(body.name).unlink(missing_ok=True)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out.stdout)
    codes = re.search(r"status codes: (\d+) 2xx", out.stdout)
    return {
        "requests_per_s": float(rate.group(1)) if rate else None,
        "2xx": int(codes.group(1)) if codes else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    ca_dir = Path(tempfile.mkdtemp(prefix="pushcore-bench-ca-"))
    async with Simulators.start(
        engine="granian", ca_dir=ca_dir, fcm=FcmOptions(static_tokens=[STATIC_FCM_TOKEN])
    ) as sims:
        ca = str(sims.ca_file)
        providers = _providers(sims)
        probe = CurlTransport(ca_file=ca, max_in_flight=4)
        await authorize(providers["fcm"], probe, timeout=30)  # the OAuth token, once
        await probe.aclose()
        engines: dict[str, list[str]] = {
            "apns": ["curl", "aioapns", "httpx"],
            "fcm": ["curl", "httpx"],
            "webpush": ["curl", "httpx"],
        }
        report: dict[str, Any] = {}
        for name, provider in providers.items():
            regs = _registrations(name, args.tokens, sims.webpush.origin)
            runs: dict[str, list[dict[str, float]]] = {e: [] for e in engines[name]}
            for _ in range(args.repeats):
                for engine in engines[name]:
                    cpu, wall = time.process_time(), time.perf_counter()
                    if engine == "curl":
                        ok = await run_curl(provider, regs, args, ca)
                    elif engine == "httpx":
                        ok = await run_httpx(provider, regs, args, ca)
                    else:
                        ok = await run_aioapns(provider, regs, args, ca, sims)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    runs[engine].append(
                        {
                            "ok": ok,
                            "wall_s": wall,
                            "cpu_s": cpu,
                            "per_s": ok / wall,
                            "per_cpu_s": ok / cpu,
                        }
                    )
            medians = {
                engine: {
                    k: round(statistics.median(r[k] for r in rs), 3)
                    for k in ("ok", "wall_s", "cpu_s", "per_s", "per_cpu_s")
                }
                for engine, rs in runs.items()
            }
            sample = provider.build(provider.render(NOTE), regs[:1], time.time())[0]
            assert isinstance(sample, Request)
            report[name] = {
                "medians": medians,
                "runs": runs,
                "simulator_ceiling_h2load": h2load_ceiling(sample, ca_dir, args.h2load_requests),
            }
    apns = report["apns"]["medians"]
    return {
        "benchmark": "transport",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {
            "tokens": args.tokens,
            "in_flight": args.in_flight,
            "batch": args.batch,
            "repeats": args.repeats,
            "connections_per_engine": 1,
        },
        "providers": report,
        "goals": {
            "apns_curl_per_cpu_s_ge_15000": apns["curl"]["per_cpu_s"] >= 15_000,
            "fcm_curl_per_cpu_s_ge_15000": report["fcm"]["medians"]["curl"]["per_cpu_s"] >= 15_000,
            "apns_curl_vs_aioapns_per_cpu_s": round(
                apns["curl"]["per_cpu_s"] / apns["aioapns"]["per_cpu_s"], 2
            ),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--h2load-requests", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"transport-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v["medians"] for k, v in result["providers"].items()}
    print(json.dumps({"summary": summary, "goals": result["goals"], "written": str(out)}))


if __name__ == "__main__":
    main()

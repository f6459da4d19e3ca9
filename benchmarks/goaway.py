"""Answered requests reported lost under GOAWAY + RST_STREAM, by how the server closes.

The h2 fault server (:mod:`pushcore.gateways.h2server`) runs in a process of its own (as a
provider does: in one event loop client and server take turns and the race never shows),
sending GOAWAY after every ``--goaway-after`` streams of a connection and RST_STREAM
(INTERNAL_ERROR) on ``--rst-fraction`` of them.  ``CurlTransport`` sends ``--requests``
requests, ``--in-flight`` at a time over 4 connections.  Per run it counts the requests
the server answered that the transport nevertheless reported as failed -- each one a
duplicate once the sender retries it -- with the server closing at once after its last
answer (``goaway_grace`` 0, what the simulators did before) and with its lingering close
(2 s), interleaved, ``--runs`` seeds each.  Prints one JSON object and writes it (and a
PNG) to ``benchmarks/results/goaway-<date>.{json,png}``.

    .venv/bin/python -m benchmarks.goaway [--runs 5] [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pushcore.gateways.core import SimRequest, SimResponse, TransportControl, TransportFaults
from pushcore.gateways.h2server import H2Server, server_ssl_context
from pushcore.gateways.tls import TlsFiles, ensure_certificates
from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport

RESULTS = Path(__file__).resolve().parent / "results"
GRACES = (0.0, 2.0)


@dataclass(frozen=True)
class _Ok:
    """200 with a small body to every request."""

    def respond(self, request: SimRequest, control: TransportControl) -> SimResponse:
        return SimResponse(200, [("content-type", "text/plain")], b"ok")

    def latency(self, request: SimRequest) -> float:
        return 0.0

    def accepts_connections(self) -> bool:
        return True

    def exempt(self, request: SimRequest) -> bool:
        return False


def _serve(tls: TlsFiles, faults: TransportFaults, pipe: Connection) -> None:
    async def run() -> None:
        context = server_ssl_context(tls.cert_file, tls.key_file)
        server = H2Server(_Ok(), context, faults)
        await server.start("127.0.0.1", 0)
        pipe.send(server.origin)
        done = asyncio.Event()
        asyncio.get_running_loop().add_reader(pipe.fileno(), done.set)
        await done.wait()
        pipe.recv()
        pipe.send((dict(server.stats.answered), dict(server.stats.faults)))
        await server.aclose()

    asyncio.run(run())  # asyncio's own loop: the one the race was seen on


async def _run(tls: TlsFiles, args: argparse.Namespace, grace: float, seed: int) -> dict[str, Any]:
    faults = TransportFaults(
        goaway_after=args.goaway_after,
        goaway_grace=grace,
        rst_fraction=args.rst_fraction,
        seed=seed,
    )
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(tls, faults, theirs), daemon=True)
    process.start()
    loop = asyncio.get_running_loop()
    try:
        origin = await loop.run_in_executor(None, ours.recv)
        transport = CurlTransport(
            ca_file=str(tls.ca_file), max_in_flight=args.in_flight, max_connections_per_origin=4
        )
        requests = [Request(f"{origin}/r/{i}", [], b"x") for i in range(args.requests)]
        started = time.monotonic()
        responses = await transport.send(requests, timeout=120)
        elapsed = time.monotonic() - started
        await transport.aclose()
        ours.send("stats")
        answered, server_faults = await loop.run_in_executor(None, ours.recv)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    lost = [
        r.detail
        for i, r in enumerate(responses)
        if r.failure is not None and answered.get(f"/r/{i}", 0)
    ]
    return {
        "goaway_grace": grace,
        "seed": seed,
        "answered_reported_failed": len(lost),
        "their_errors": dict(Counter(d.split(":")[0] + ":" + d.split(":")[1] for d in lost)),
        "ok": sum(r.status == 200 for r in responses),
        "failures": dict(Counter(r.failure.value for r in responses if r.failure is not None)),
        "goaways": server_faults.get("goaway", 0),
        "resets": server_faults.get("rst_stream", 0),
        "seconds": round(elapsed, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as ca_dir:
        tls = ensure_certificates(ca_dir)
        runs = []
        for seed in range(args.runs):
            for grace in GRACES:  # interleaved: the machine's load hits both alike
                runs.append(await _run(tls, args, grace, seed))
    summary = {}
    for grace in GRACES:
        lost = [r["answered_reported_failed"] for r in runs if r["goaway_grace"] == grace]
        summary[f"grace_{grace:g}s"] = {
            "runs": len(lost),
            "runs_with_loss": sum(1 for n in lost if n),
            "answered_reported_failed_per_run": lost,
            "median": statistics.median(lost),
        }
    return {
        "benchmark": "goaway",
        "date": datetime.date.today().isoformat(),
        "requests_per_run": args.requests,
        "in_flight": args.in_flight,
        "goaway_after": args.goaway_after,
        "rst_fraction": args.rst_fraction,
        "summary": summary,
        "runs": runs,
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for offset, grace in ((-0.2, GRACES[0]), (0.2, GRACES[1])):
        runs = [r for r in result["runs"] if r["goaway_grace"] == grace]
        ax.bar(
            [r["seed"] + offset for r in runs],
            [r["answered_reported_failed"] for r in runs],
            width=0.4,
            label=f"server closes {'at once' if grace == 0 else f'after {grace:g} s grace'}",
        )
    ax.set_xlabel("run (seed)")
    ax.set_ylabel(f"answered requests reported failed (of {result['requests_per_run']})")
    ax.set_title("GOAWAY + RST_STREAM: answers lost to an abrupt close")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="seeds per way of closing")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--in-flight", type=int, default=400)
    parser.add_argument("--goaway-after", type=int, default=60)
    parser.add_argument("--rst-fraction", type=float, default=0.03)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (PNG beside it)")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"goaway-{result['date']}.json"
    png = out.with_suffix(".png")
    _plot(result, png)
    result["written"] = {"json": str(out), "png": str(png)}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"summary": result["summary"], "written": result["written"]}))
    return result


if __name__ == "__main__":
    main()

"""The bare-transport baseline: pushcore's own sender without queue and database.

``CurlTransport`` + providers through ``deliver``, tokens from memory, batches of the
pipeline's batch size interleaved over the platforms, ``--threads`` batches at a time in
each of ``--processes`` spawned processes, each with the workers' in-flight bound and
connections per origin: the ceiling the pipeline's workers are compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import procstat, transport
from benchmarks.fanout import simulators
from benchmarks.fanout.registrations import PROVIDER_OF, RegTuple, registration, sample
from pushcore.config import Settings
from pushcore.fanout.delivery import authorize, deliver
from pushcore.gateways.simulators import Simulators
from pushcore.providers.base import Outcome
from pushcore.transport.curl import CurlTransport

TIMEOUT = 600.0  # the whole baseline, all processes


@dataclass(frozen=True, slots=True)
class BareJob:
    """What one process sends, and with which limits (pickled into a spawned process)."""

    apns_origin: str
    fcm_origin: str
    ca_file: str
    batches: tuple[tuple[RegTuple, ...], ...]
    concurrency: int
    max_in_flight: int
    connections: int


async def measure(
    sims: Simulators, settings: Settings, args: argparse.Namespace, live_rows: Sequence[Any]
) -> dict[str, Any]:
    """Send ``--bare-sample`` of the live registrations; the baseline's part of the JSON."""
    regs = sample(live_rows, args.bare_sample)
    jobs = _jobs(sims, settings, args, regs)
    for sim in sims:
        await sim.reset_stats()
    sim_pids = procstat.tree(simulators.pids(sims))
    sim_cpu = procstat.cpu_seconds(sim_pids)
    parts = await asyncio.to_thread(_run, jobs)
    sim_cpu = procstat.cpu_seconds(sim_pids) - sim_cpu
    wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    delivered = sum(p["delivered"] for p in parts)
    cpu = sum(p["cpu_s"] for p in parts)
    return {
        "what": (
            "CurlTransport + providers via pushcore.fanout.delivery.deliver, tokens "
            f"from memory, batches of {settings.batch_size}, {args.threads} batches at a time "
            f"in each of {args.processes} processes, max_in_flight {settings.max_in_flight} "
            f"and {settings.connections_per_origin} connections per origin per process"
        ),
        "sample": len(regs),
        "delivered": delivered,
        "simulators_accepted": await simulators.accepted(sims),
        "wall_s": round(wall, 2),
        "notifications_per_second": round(delivered / wall),
        "sender_cpu_s_per_1000": round(cpu * 1000 / max(delivered, 1), 4),
        # the same simulators' CPU while they answer the bare sender: compare with the
        # pipeline's simulators figure (how the traffic arrives changes what they cost)
        "simulators_cpu_s_per_1000": round(sim_cpu * 1000 / max(delivered, 1), 4),
    }


def _jobs(
    sims: Simulators, settings: Settings, args: argparse.Namespace, regs: list[RegTuple]
) -> list[BareJob]:
    """One job per worker process, the batches dealt out in turn."""
    by_platform: dict[str, list[RegTuple]] = {p: [] for p in PROVIDER_OF}
    for reg in regs:
        by_platform[reg[0]].append(reg)
    size = settings.batch_size
    per_platform = [
        [tuple(group[i : i + size]) for i in range(0, len(group), size)]
        for group in by_platform.values()
    ]
    # interleaved like the three queues the workers consume together
    batches = [b for group in itertools.zip_longest(*per_platform) for b in group if b]
    return [
        BareJob(
            apns_origin=sims.apns.origin,
            fcm_origin=sims.fcm.origin,
            ca_file=str(sims.ca_file),
            batches=tuple(batches[i :: args.processes]),
            concurrency=args.threads,
            max_in_flight=settings.max_in_flight,
            connections=settings.connections_per_origin,
        )
        for i in range(args.processes)
    ]


def _run(jobs: list[BareJob]) -> list[dict[str, Any]]:
    """Run the jobs in spawned processes; every wait bounded, every process stopped."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(job, barrier, results)) for job in jobs]
    for proc in procs:
        proc.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(out) < len(jobs):
            try:
                out.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                raise SystemExit("bench: the bare-transport baseline timed out") from None
    finally:
        _stop(procs)
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise SystemExit(f"bench: the bare-transport baseline failed: {errors}")
    return out


def _stop(procs: list[Any]) -> None:
    """Join each process; one that does not end is terminated, then killed."""
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(10)


def _child(job: BareJob, barrier: Any, results: Any) -> None:
    """One process of the baseline (spawned; reports through ``results``)."""
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results.put(runner.run(_send(job, barrier)))
    except BaseException as exc:
        results.put({"error": repr(exc)})
        raise


async def _send(job: BareJob, barrier: Any) -> dict[str, Any]:
    providers = transport.make_providers(job.apns_origin, job.fcm_origin)
    sender = CurlTransport(
        ca_file=job.ca_file,
        max_in_flight=job.max_in_flight,
        max_connections_per_origin=job.connections,
    )
    rendered = {name: p.render(transport.NOTE) for name, p in providers.items()}
    try:
        await authorize(providers["fcm"], sender, timeout=30)  # the OAuth token, once
        await asyncio.to_thread(barrier.wait, 60)  # every process starts sending together
        slots = asyncio.Semaphore(job.concurrency)
        delivered = 0

        async def one(batch: tuple[RegTuple, ...]) -> None:
            nonlocal delivered
            provider = providers[PROVIDER_OF[batch[0][0]]]
            regs = [registration(r) for r in batch]
            async with slots:
                results = await deliver(
                    provider, sender, rendered[PROVIDER_OF[batch[0][0]]], regs, timeout=60
                )
            delivered += sum(r.outcome is Outcome.DELIVERED for r in results)

        cpu, start = time.process_time(), time.monotonic()
        await asyncio.gather(*(one(b) for b in job.batches))
        end = time.monotonic()
        return {
            "delivered": delivered,
            "start": start,
            "end": end,
            "cpu_s": time.process_time() - cpu,
        }
    finally:
        await sender.aclose()

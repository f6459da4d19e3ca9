"""The whole-pipeline run: a fresh database and Redis database, the simulators, ``pushcore
api`` and ``pushcore worker`` as processes, an app with a seeded registry; then the measured
broadcast, the correctness checks and the two baselines, in that order, into one report."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks import procstat
from benchmarks.database import fresh_database
from benchmarks.fanout import bare, broadcast, checks, naive, report, statements
from benchmarks.fanout.broadcast import App
from pushcore.config import Settings, load_settings
from pushcore.db.pool import Pool, create_pool
from pushcore.demo import campaign
from pushcore.demo.seed import Seeded, seed
from pushcore.gateways.simulators import Simulators

LOG_DIR = Path(".local/bench")
WORKERS_BOOT_TIMEOUT = 60.0
SETTLE_TIMEOUT = 600.0


# what a benchmark measures once its stack runs: (args, settings, env, pool, sims, children)
Measure = Callable[
    [argparse.Namespace, Settings, dict[str, str], Pool, Simulators, campaign.Processes],
    Awaitable[dict[str, Any]],
]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark as ``args`` asks; every process it started is stopped on the way out."""
    return await with_stack(args, _measure)


async def with_stack(args: argparse.Namespace, measure: Measure) -> dict[str, Any]:
    """Fresh database and Redis database, the granian simulators and a process set for
    ``pushcore api`` and the workers (started by ``measure``), all stopped on the way out
    whatever ``measure`` raises.  Shared by the fan-out and transactional benchmarks."""
    tuning = report.tuning_of(args)
    settings = load_settings(
        environ=tuning,
        database_url=args.database_url,
        redis_url=args.redis_url,
        admin_token="bench-" + secrets.token_urlsafe(16),
        log_level="WARNING",
    )
    await asyncio.to_thread(_fresh_stores, settings)
    pool = await create_pool(settings, max_size=3)
    LOG_DIR.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    children = campaign.Processes(LOG_DIR)
    try:
        async with Simulators.start(engine="granian", ca_dir=campaign.CA_DIR) as sims:
            env = {**campaign._env(settings, sims), **tuning}
            try:
                return await measure(args, settings, env, pool, sims, children)
            finally:
                # before the simulators: granian waits for the workers' open connections
                await asyncio.to_thread(children.stop)
    finally:
        children.stop()  # a no-op when already stopped (also covers a failed start)
        await pool.close()


def _fresh_stores(settings: Settings) -> None:
    """The benchmark's database and Redis database, emptied."""
    import redis

    fresh_database(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


async def _measure(
    args: argparse.Namespace,
    settings: Settings,
    env: dict[str, str],
    pool: Pool,
    sims: Simulators,
    children: campaign.Processes,
) -> dict[str, Any]:
    port = campaign._free_port()
    api_pid, worker_main_pid = _start(args, env, children, port)
    source = await statements.source(pool)
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await campaign._wait_ready(http)
        app, app_id = await _create_app(http, pool, settings, sims)
        seeded, seed_s, settled = await _seed(pool, app_id, args.devices, sims)
        worker_pids = await _worker_pids(worker_main_pid, args.processes)
        sent = await broadcast.measure(
            http,
            pool,
            app,
            sims,
            api_pid,
            worker_pids,
            source,
            interval=args.interval,
            timeout=args.timeout,
        )
    _progress(f"{sent.status} after {sent.wall_s:.1f} s; checking against the simulators")
    correct = await checks.check(pool, app_id, sims, seeded, sent.counts)
    live_rows = await pool.fetch(
        "SELECT id, platform, token, p256dh, auth FROM installations WHERE app_id = $1 ORDER BY id",
        app_id,
    )
    _progress("baselines: bare transport, then the naive sender")
    baselines = {
        "bare_transport": await bare.measure(sims, settings, args, live_rows),
        "naive": await naive.measure(sims, live_rows, args.naive_sample),
    }
    _progress("stopping the API, workers and simulators")
    return report.build(
        args,
        settings,
        seed_s=seed_s,
        settled=settled,
        sent=sent,
        correct=correct,
        baselines=baselines,
    )


def _start(
    args: argparse.Namespace, env: dict[str, str], children: campaign.Processes, port: int
) -> tuple[int, int]:
    """``pushcore api`` and ``pushcore worker``; their process ids (the worker's main one)."""
    children.start("api", ["api", "--port", str(port)], env)
    worker_args = ["--processes", str(args.processes), "--threads", str(args.threads)]
    children.start("worker", ["worker", *worker_args], env)
    api_proc, worker_proc = children.procs
    return api_proc.pid, worker_proc.pid


async def _create_app(
    http: aiohttp.ClientSession, pool: Pool, settings: Settings, sims: Simulators
) -> tuple[App, int]:
    """The app, created through the API with the simulators' credentials; and its row id."""
    credentials = campaign._credentials(sims.fcm.origin)
    app = await campaign._call(
        http, "POST", "/v1/apps", settings.admin_token, {"name": "bench", **credentials}
    )
    app_id: int = await pool.fetchval("SELECT id FROM apps WHERE code = $1", app["app_code"])
    return App(code=app["app_code"], server_key=app["server_key"]), app_id


async def _seed(
    pool: Pool, app_id: int, devices: int, sims: Simulators
) -> tuple[Seeded, float, dict[str, Any]]:
    """The registry, seeded and settled; the seeding's seconds and what settling did."""
    t0 = time.monotonic()
    seeded = await seed(pool, app_id, devices, sims.webpush.origin)
    seed_s = time.monotonic() - t0
    settled = await _settle(pool)
    _progress(f"seeded {seeded.total:,} installations in {seed_s:.1f} s; broadcasting")
    return seeded, seed_s, settled


async def _settle(pool: Pool) -> dict[str, Any]:
    """Pay the bulk load's deferred costs before the send, as a registry that grew over
    months has: VACUUM (autovacuum would otherwise visit the freshly copied million rows
    during the broadcast) and a CHECKPOINT (the COPY's WAL would otherwise trigger one
    mid-send, and full-page writes after it).  Skipped with a note where not allowed."""
    done: dict[str, Any] = {}
    for statement in ("VACUUM (ANALYZE) installations, users", "CHECKPOINT"):
        try:
            await pool.execute(statement, timeout=SETTLE_TIMEOUT)
            done[statement] = True
        except asyncpg.PostgresError as exc:
            done[statement] = f"skipped: {exc}"
    return done


async def _worker_pids(main_pid: int, processes: int) -> set[int]:
    """The worker main process and its worker processes, once all are up."""
    deadline = time.monotonic() + WORKERS_BOOT_TIMEOUT
    while True:
        pids = procstat.tree([main_pid])
        if len(pids) >= processes + 1:
            return pids
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: workers did not start; see {LOG_DIR}/worker.log")
        await asyncio.sleep(0.2)


def _progress(text: str) -> None:
    print(f"fanout: {text}", file=sys.stderr, flush=True)

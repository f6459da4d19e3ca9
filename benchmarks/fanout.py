"""A broadcast to N devices through the whole pipeline, with two baselines beside it.

What runs, as an operator would run it: the granian simulators of APNs, FCM and Web Push,
``pushcore api`` and ``pushcore worker --processes P --threads T`` as separate processes,
on a database and a Redis database of the benchmark's own (both emptied first).  N
installations are seeded with COPY (``pushcore.demo.seed``: 45% iOS, 40% Android, 15% Web,
5% dead tokens by the simulators' rules, users with one to three devices), one broadcast is
sent through the HTTP API and followed until ``done``.

What is reported (JSON, PNG, a short summary):

- wall time to ``done`` (seen by polling, and the message's own created/finished times);
- notifications/s overall and every 0.5 s (the message's counters, read from PostgreSQL
  so that following the send costs the API nothing);
- CPU seconds per 1,000 notifications of each component, from ``/proc`` (workers and their
  children, the API, the granian simulators, the PostgreSQL cluster, redis-server; the last
  two are whole servers: other databases' load on them counts, see
  ``postgresql_other_databases_xacts``);
- worker peak RSS (VmHWM of each worker process) and RSS over time;
- SQL statements per 1,000 notifications: ``pg_stat_statements`` when the extension can be
  used (it needs ``shared_preload_libraries``), else committed transactions of the database
  (``pg_stat_database.xact_commit``; pushcore runs autocommit statements, so one per
  statement, and a transaction block of several counts once); the benchmark's own sampling
  statements are subtracted; overall and steady state (10%-90% of the send);
- correctness from the simulators' per-token table: every live registration accepted
  exactly once, no dead one accepted, and afterwards every dead registration deleted and
  every live one kept.

Baselines in the same run, on the same simulators, with live tokens of the same run:

- ``bare_transport``: the delivery layer alone (``CurlTransport`` + providers through
  ``pushcore.transport.delivery.deliver``), tokens from memory, batches of the pipeline's
  batch size, the workers' in-flight bound and connections per origin, T batches at a time
  in each of P processes: the ceiling of pushcore's own sender without queue and database;
- ``naive``: ``asyncio.gather`` over every token at once, no queue: aioapns for APNs,
  ``httpx.AsyncClient(http2=True)`` for FCM and Web Push, in one process.

    .venv/bin/python -m benchmarks.fanout [--devices 1000000] [--processes 2] [--threads 4]
        [--out benchmarks/results] [--label 1m] [--set PUSHCORE_BATCH_SIZE=1000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import multiprocessing
import os
import platform
import queue
import secrets
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

from benchmarks import delivery_engines, procstat, transport
from benchmarks.database import DEFAULT_DB, fresh_database
from pushcore.config import Settings, load_settings
from pushcore.db.pool import Pool, create_pool
from pushcore.demo import campaign
from pushcore.demo.seed import Seeded, seed, sim_key
from pushcore.gateways.client import h2_request
from pushcore.gateways.core import STATS_PATH
from pushcore.gateways.simulators import GranianSimulator, RunningSimulator, Simulators
from pushcore.providers.base import Outcome, Provider, Registration
from pushcore.transport.base import Request
from pushcore.transport.curl import CurlTransport
from pushcore.transport.delivery import authorize, deliver

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
LOG_DIR = Path(".local/bench")
PROVIDER_OF = {"ios": "apns", "android": "fcm", "web": "webpush"}
FINAL = ("done", "failed", "cancelled")
WORKERS_BOOT_TIMEOUT = 60.0
STATS_TOKENS_TIMEOUT = 300.0
SETTLE_TIMEOUT = 600.0
SMOOTH_SECONDS = 5.0  # the plot's rate window
# the per-token table of one simulator: ~150 bytes of JSON per token, 450,000 APNs
# tokens in a million-device run
STATS_TOKENS_MAX_BYTES = 1024 * 1024 * 1024
BASELINE_TIMEOUT = 600.0
TIMELINE_COLUMNS = ["seconds", "answered", "sql_statements", "worker_rss_max_mb"]


# -- set-up -------------------------------------------------------------------------------


async def _statement_source(pool: Pool) -> str:
    """pg_stat_statements when usable here, else the database's committed transactions."""
    try:
        await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await pool.fetchval("SELECT count(*) FROM pg_stat_statements")
    except asyncpg.PostgresError:
        return "xact_commit"
    return "pg_stat_statements"


def _statements_sql(source: str) -> str:
    if source == "pg_stat_statements":
        return (
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    return "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"


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


def _sim_pids(sims: Simulators) -> list[int]:
    return [
        sim.process.process.pid
        for sim in sims
        if isinstance(sim, GranianSimulator) and sim.process.process is not None
    ]


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


# -- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tuning = dict(item.split("=", 1) for item in args.set)
    settings = load_settings(
        environ=tuning,
        database_url=args.database_url,
        redis_url=args.redis_url,
        admin_token="bench-" + secrets.token_urlsafe(16),
        log_level="WARNING",
    )
    await asyncio.to_thread(fresh_database, settings.database_url)
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()
    pool = await create_pool(settings, max_size=3)
    LOG_DIR.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    children = campaign.Processes(LOG_DIR)
    try:
        async with Simulators.start(engine="granian", ca_dir=campaign.CA_DIR) as sims:
            env = {**campaign._env(settings, sims), **tuning}
            try:
                return await _measure(args, settings, env, pool, sims, children)
            finally:
                # before the simulators: granian waits for the workers' open connections
                await asyncio.to_thread(children.stop)
    finally:
        children.stop()  # a no-op when already stopped (also covers a failed start)
        await pool.close()


async def _measure(
    args: argparse.Namespace,
    settings: Settings,
    env: dict[str, str],
    pool: Pool,
    sims: Simulators,
    children: campaign.Processes,
) -> dict[str, Any]:
    port = campaign._free_port()
    children.start("api", ["api", "--port", str(port)], env)
    worker_args = ["--processes", str(args.processes), "--threads", str(args.threads)]
    children.start("worker", ["worker", *worker_args], env)
    api_proc, worker_proc = children.procs
    source = await _statement_source(pool)
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await campaign._wait_ready(http)
        credentials = campaign._credentials(sims.fcm.origin)
        app = await campaign._call(
            http, "POST", "/v1/apps", settings.admin_token, {"name": "bench", **credentials}
        )
        app_id = await pool.fetchval("SELECT id FROM apps WHERE code = $1", app["app_code"])
        t0 = time.monotonic()
        seeded = await seed(pool, app_id, args.devices, sims.webpush.origin)
        seed_s = time.monotonic() - t0
        settled = await _settle(pool)
        _progress(f"seeded {seeded.total:,} installations in {seed_s:.1f} s; broadcasting")
        worker_pids = await _worker_pids(worker_proc.pid, args.processes)
        for sim in sims:
            await sim.reset_stats()
        await asyncio.sleep(1)  # workers idle: their boot is not part of the send
        groups = {
            "workers": worker_pids,
            "api": procstat.tree([api_proc.pid]),
            "simulators": procstat.tree(_sim_pids(sims)),
            "postgresql": procstat.tree(procstat.named_roots("postgres")),
            "redis": procstat.tree(procstat.named_roots("redis-server")),
        }
        cpu_before = {k: procstat.cpu_seconds(v) for k, v in groups.items()}
        other_xacts_sql = (
            "SELECT coalesce(sum(xact_commit), 0)::bigint FROM pg_stat_database "
            "WHERE datname IS DISTINCT FROM current_database()"
        )
        other_before = await pool.fetchval(other_xacts_sql)
        statements_sql = _statements_sql(source)
        statements_before = await pool.fetchval(statements_sql)
        started = time.monotonic()
        sent = await campaign._call(
            http,
            "POST",
            f"/v1/apps/{app['app_code']}/messages",
            app["server_key"],
            {"target": {"all": True}, "notification": {"title": "Bench", "body": "fan-out"}},
        )
        timeline, row = await _follow(pool, sent["message_id"], statements_sql, worker_pids, args)
        wall = time.monotonic() - started
        # the PostgreSQL tree again: backends started during the run (their CPU so far is
        # theirs; those already gone are in the postmaster's reaped-children CPU)
        groups["postgresql"] = procstat.tree(procstat.named_roots("postgres"))
        cpu = {k: procstat.cpu_seconds(v) - cpu_before[k] for k, v in groups.items()}
        statements = await pool.fetchval(statements_sql) - statements_before - len(timeline) - 1
        other_xacts = await pool.fetchval(other_xacts_sql) - other_before
        peak_rss = {
            str(pid): round(procstat.peak_rss_mb(pid), 1)
            for pid in sorted(procstat.tree(worker_pids))
        }
        report = await campaign._call(
            http,
            "GET",
            f"/v1/apps/{app['app_code']}/messages/{sent['message_id']}",
            app["server_key"],
        )
    counts = report["counts"]
    _progress(f"{report['status']} after {wall:.1f} s; checking against the simulators")
    answered = counts["delivered"] + counts["invalid_removed"] + counts["failed"]
    correct = await _check(pool, app_id, sims, seeded, counts)
    live_rows = await pool.fetch(
        "SELECT id, platform, token, p256dh, auth FROM installations WHERE app_id = $1 ORDER BY id",
        app_id,
    )
    _progress("baselines: bare transport, then the naive sender")
    baselines = await _baselines(sims, settings, args, live_rows)
    _progress("stopping the API, workers and simulators")
    per_k = 1000 / max(answered, 1)
    rate = answered / wall
    sql_steady = _steady_state_statements(timeline, counts["targeted"])
    sql_overall = statements * per_k
    rss_peak = max(peak_rss.values(), default=0.0)
    bare = baselines["bare_transport"]["notifications_per_second"]
    created, finished = row["created_at"], row["finished_at"]
    return {
        "benchmark": "fanout",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "devices": args.devices,
            "processes": args.processes,
            "threads": args.threads,
            "batch_size": settings.batch_size,
            "max_in_flight_per_process": settings.max_in_flight,
            "connections_per_origin": settings.connections_per_origin,
            "tuning": tuning_of(args),
            "sample_interval_s": args.interval,
        },
        "seed_seconds": round(seed_s, 1),
        "settled_before_send": settled,
        "wall_seconds_to_done": round(wall, 2),
        "db_seconds_created_to_finished": (
            round((finished - created).total_seconds(), 2) if finished and created else None
        ),
        "notifications_per_second": round(rate),
        "counts": counts,
        "timeline_columns": TIMELINE_COLUMNS,
        "timeline": timeline,
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_seconds_per_1000": {k: round(v * per_k, 4) for k, v in cpu.items()},
        "worker_peak_rss_mb": rss_peak,
        "worker_peak_rss_mb_per_process": peak_rss,
        "sql_statements": {
            "source": source,
            "measure": (
                "pg_stat_statements calls in the database"
                if source == "pg_stat_statements"
                else "pg_stat_database.xact_commit delta (autocommit: one per statement)"
            ),
            "total": statements,
            "per_1000": round(sql_overall, 2),
            "steady_state_per_1000": sql_steady,
        },
        "postgresql_other_databases_xacts": other_xacts,
        "correct": correct,
        "baselines": baselines,
        "pipeline_vs_bare_transport": round(rate / bare, 3) if bare else None,
        "goals": {
            "broadcast_1m_le_60s": {
                "measured_s": round(wall, 1) if args.devices >= 1_000_000 else None,
                "projected_1m_s_at_this_rate": round(1_000_000 / rate, 1),
                "met": (wall if args.devices >= 1_000_000 else 1_000_000 / rate) <= 60,
            },
            "pipeline_ge_80pct_of_bare": {
                "ratio": round(rate / bare, 3) if bare else None,
                "met": bool(bare) and rate / bare >= 0.8,
            },
            "worker_rss_le_300mb": {"peak_mb": rss_peak, "met": rss_peak <= 300},
            "sql_le_3_per_1000": {
                "steady_state": sql_steady,
                "overall": round(sql_overall, 2),
                "met": sql_steady is not None and sql_steady <= 3,
            },
        },
    }


def _progress(text: str) -> None:
    print(f"fanout: {text}", file=sys.stderr, flush=True)


def tuning_of(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.set)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


async def _follow(
    pool: Pool,
    message_id: str,
    statements_sql: str,
    worker_pids: set[int],
    args: argparse.Namespace,
) -> tuple[list[list[float]], Any]:
    """Sample the message's counters every ``args.interval`` s (fixed ticks) until it is
    final; one statement per sample (subtracted from the SQL count by the caller)."""
    sample_sql = f"""
        SELECT m.status, m.targeted, m.delivered, m.invalid_removed, m.failed, m.retrying,
               m.created_at, m.finished_at, ({statements_sql}) AS statements
        FROM messages m WHERE m.public_id = $1
    """
    started = time.monotonic()
    timeline: list[list[float]] = []
    for tick in itertools.count(1):
        row = await pool.fetchrow(sample_sql, message_id)
        if row is None:
            raise SystemExit(f"bench: message {message_id} not found")
        answered = row["delivered"] + row["invalid_removed"] + row["failed"]
        rss = max((procstat.rss_mb(pid) for pid in worker_pids), default=0.0)
        elapsed = time.monotonic() - started
        timeline.append([round(elapsed, 2), answered, row["statements"], round(rss, 1)])
        pending = row["targeted"] - answered - row["retrying"]
        if row["status"] in FINAL and pending == 0:
            return timeline, row
        if elapsed > args.timeout:
            raise SystemExit(f"bench: not done after {args.timeout} s: {dict(row)}")
        await asyncio.sleep(max(0.0, started + tick * args.interval - time.monotonic()))
    raise AssertionError("unreachable")


def _steady_state_statements(timeline: list[list[float]], targeted: int) -> float | None:
    """Statements per 1,000 notifications between the samples at 10% and 90% of the send,
    minus the sampler's own one statement per sample."""
    inside = [p for p in timeline if 0.1 * targeted <= p[1] <= 0.9 * targeted]
    if len(inside) < 2 or inside[-1][1] == inside[0][1]:
        return None
    first, last = inside[0], inside[-1]
    own = len(inside) - 1
    return round((last[2] - first[2] - own) * 1000 / (last[1] - first[1]), 2)


# -- correctness --------------------------------------------------------------------------


async def _token_table(sim: RunningSimulator) -> dict[str, Any]:
    status, _, body = await h2_request(
        sim.origin,
        sim.ca_file,
        "GET",
        STATS_PATH + "?tokens=1",
        timeout=STATS_TOKENS_TIMEOUT,
        max_response=STATS_TOKENS_MAX_BYTES,
    )
    if status != 200:
        raise RuntimeError(f"{sim.name}: GET {STATS_PATH}?tokens=1 answered {status}")
    stats: dict[str, Any] = json.loads(body)
    return stats


async def _check(
    pool: Pool, app_id: int, sims: Simulators, seeded: Seeded, counts: dict[str, int]
) -> dict[str, Any]:
    """Exactly once from the simulators' per-token counts; dead deleted from the registry."""
    not_once = dead_accepted = untracked = 0
    times: dict[str, int] = {}  # live registrations by how often they were accepted
    for plat, name in PROVIDER_OF.items():
        stats = await _token_table(sims[name])
        tokens = stats.get("tokens", {})
        untracked += stats.get("untracked", 0)
        for t in seeded.live[plat]:
            n = tokens.get(t, {}).get("accepted", 0)
            times[str(n)] = times.get(str(n), 0) + 1
            not_once += n != 1
        dead_accepted += sum(1 for t in seeded.dead[plat] if t in tokens and tokens[t]["accepted"])
    rows = await pool.fetch("SELECT platform, token FROM installations WHERE app_id = $1", app_id)
    left = {(r["platform"], sim_key(r["platform"], r["token"])) for r in rows}
    dead_left = sum(1 for p, keys in seeded.dead.items() for k in keys if (p, k) in left)
    live_lost = sum(1 for p, keys in seeded.live.items() for k in keys if (p, k) not in left)
    live = sum(len(s) for s in seeded.live.values())
    dead = sum(len(s) for s in seeded.dead.values())
    out: dict[str, Any] = {
        "live": live,
        "dead": dead,
        "live_not_accepted_exactly_once": not_once,
        "live_by_times_accepted": dict(sorted(times.items())),
        "dead_accepted": dead_accepted,
        "untracked_by_simulators": untracked,
        "dead_left_in_registry": dead_left,
        "live_lost_from_registry": live_lost,
        "report_delivered_matches": counts["delivered"] == live,
        "report_invalid_removed_matches": counts["invalid_removed"] == dead,
    }
    out["live_delivered_exactly_once"] = not_once == 0 and untracked == 0
    out["dead_deleted"] = dead_left == 0 and live_lost == 0
    out["ok"] = (
        out["live_delivered_exactly_once"]
        and out["dead_deleted"]
        and dead_accepted == 0
        and out["report_delivered_matches"]
        and out["report_invalid_removed_matches"]
    )
    return out


# -- baselines ----------------------------------------------------------------------------

# one registration as plain data (crosses a process boundary): platform, id, token, keys
RegTuple = tuple[str, int, str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class BareJob:
    apns_origin: str
    fcm_origin: str
    ca_file: str
    batches: tuple[tuple[RegTuple, ...], ...]
    concurrency: int
    max_in_flight: int
    connections: int


def _registration(r: RegTuple) -> Registration:
    return Registration(installation_id=r[1], token=r[2], p256dh=r[3], auth=r[4])


def _sample(rows: Sequence[Any], n: int) -> list[RegTuple]:
    """Up to ``n`` rows spread evenly over ``rows`` (keeps the platform mix)."""
    n = min(n, len(rows))
    picked = (rows[i * len(rows) // n] for i in range(n))
    return [(r["platform"], r["id"], r["token"], r["p256dh"], r["auth"]) for r in picked]


def _bare_child(job: BareJob, barrier: Any, results: Any) -> None:
    """One process of the bare-transport baseline (spawned; reports through ``results``)."""
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results.put(runner.run(_bare_send(job, barrier)))
    except BaseException as exc:
        results.put({"error": repr(exc)})
        raise


async def _bare_send(job: BareJob, barrier: Any) -> dict[str, Any]:
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
            regs = [_registration(r) for r in batch]
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


def _run_bare(jobs: list[BareJob]) -> list[dict[str, Any]]:
    """Run the jobs in spawned processes; every wait bounded, every process stopped."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [ctx.Process(target=_bare_child, args=(job, barrier, results)) for job in jobs]
    for proc in procs:
        proc.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + BASELINE_TIMEOUT
        while len(out) < len(jobs):
            try:
                out.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                raise SystemExit("bench: the bare-transport baseline timed out") from None
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise SystemExit(f"bench: the bare-transport baseline failed: {errors}")
    return out


async def _accepted(sims: Simulators) -> int:
    total = 0
    for sim in sims:
        stats = await sim.fetch_stats()
        # FCM's OAuth endpoint answers 200 too ("token"); those are not deliveries
        total += stats["delivered"] - stats["by_reason"].get("token", 0)
    return int(total)


async def _baselines(
    sims: Simulators, settings: Settings, args: argparse.Namespace, live_rows: Sequence[Any]
) -> dict[str, Any]:
    # -- (a) the bare delivery layer, P processes like the workers
    sample = _sample(live_rows, args.bare_sample)
    by_platform: dict[str, list[RegTuple]] = {p: [] for p in PROVIDER_OF}
    for reg in sample:
        by_platform[reg[0]].append(reg)
    size = settings.batch_size
    per_platform = [
        [tuple(regs[i : i + size]) for i in range(0, len(regs), size)]
        for regs in by_platform.values()
    ]
    # interleaved like the three queues the workers consume together
    batches = [b for group in itertools.zip_longest(*per_platform) for b in group if b]
    jobs = [
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
    for sim in sims:
        await sim.reset_stats()
    sim_pids = procstat.tree(_sim_pids(sims))
    sim_cpu = procstat.cpu_seconds(sim_pids)
    parts = await asyncio.to_thread(_run_bare, jobs)
    sim_cpu = procstat.cpu_seconds(sim_pids) - sim_cpu
    bare_wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    bare_delivered = sum(p["delivered"] for p in parts)
    bare_cpu = sum(p["cpu_s"] for p in parts)
    bare_accepted = await _accepted(sims)
    # -- (b) the naive sender, one process, everything at once
    naive_regs = _sample(live_rows, args.naive_sample)
    for sim in sims:
        await sim.reset_stats()
    naive = await _naive(sims, naive_regs)
    naive["simulators_accepted"] = await _accepted(sims)
    return {
        "bare_transport": {
            "what": (
                "CurlTransport + providers via pushcore.transport.delivery.deliver, tokens "
                f"from memory, batches of {size}, {args.threads} batches at a time in each of "
                f"{args.processes} processes, max_in_flight {settings.max_in_flight} and "
                f"{settings.connections_per_origin} connections per origin per process"
            ),
            "sample": len(sample),
            "delivered": bare_delivered,
            "simulators_accepted": bare_accepted,
            "wall_s": round(bare_wall, 2),
            "notifications_per_second": round(bare_delivered / bare_wall),
            "sender_cpu_s_per_1000": round(bare_cpu * 1000 / max(bare_delivered, 1), 4),
            # the same simulators' CPU while they answer the bare sender: compare with the
            # pipeline's simulators figure (how the traffic arrives changes what they cost)
            "simulators_cpu_s_per_1000": round(sim_cpu * 1000 / max(bare_delivered, 1), 4),
        },
        "naive": naive,
    }


async def _naive(sims: Simulators, regs: list[RegTuple]) -> dict[str, Any]:
    """``asyncio.gather`` over every token at once: aioapns for APNs, httpx for the rest."""
    providers = transport._providers(sims)
    probe = CurlTransport(ca_file=str(sims.ca_file), max_in_flight=4)
    try:
        await authorize(providers["fcm"], probe, timeout=30)  # set-up, not timed
    finally:
        await probe.aclose()
    ctx = ssl.create_default_context(cafile=str(sims.ca_file))
    by_name: dict[str, list[Registration]] = {name: [] for name in PROVIDER_OF.values()}
    for reg in regs:
        by_name[PROVIDER_OF[reg[0]]].append(_registration(reg))
    ok = 0
    errors: dict[str, int] = {}

    async def with_httpx(provider: Provider[Any], group: list[Registration]) -> None:
        nonlocal ok
        # no pool timeout: requests wait for the one HTTP/2 connection httpx opens
        timeout = httpx.Timeout(120.0, pool=None)
        async with httpx.AsyncClient(http2=True, verify=ctx, timeout=timeout) as client:
            built = provider.build(provider.render(transport.NOTE), group, time.time())
            answers = await asyncio.gather(
                *(
                    client.post(r.url, content=r.body, headers=list(r.headers))
                    for r in built
                    if isinstance(r, Request)
                ),
                return_exceptions=True,
            )
        for answer in answers:
            if isinstance(answer, BaseException):
                key = type(answer).__name__
            elif answer.status_code in (200, 201):
                ok += 1
                continue
            else:
                key = str(answer.status_code)
            errors[key] = errors.get(key, 0) + 1

    async def with_aioapns(group: list[Registration]) -> None:
        nonlocal ok
        apns = providers["apns"]
        credentials = apns.credentials  # type: ignore[attr-defined]
        setup = delivery_engines.Setup(
            sims,
            credentials,
            credentials.private_key,
            [r.token for r in group],
            max(len(group), 1),  # no bound: one task per token
            len(group),
            120.0,
        )
        outcome = await delivery_engines.run_aioapns(setup)
        ok += outcome.ok
        for key, n in outcome.other.items():
            errors[f"aioapns {key}"] = errors.get(f"aioapns {key}", 0) + n

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(
            with_aioapns(by_name["apns"]),
            with_httpx(providers["fcm"], by_name["fcm"]),
            with_httpx(providers["webpush"], by_name["webpush"]),
        ),
        BASELINE_TIMEOUT,
    )
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {
        "what": "asyncio.gather over every token: aioapns (APNs), httpx HTTP/2 (FCM, Web Push)",
        "sample": len(regs),
        "delivered": ok,
        "errors": errors,
        "wall_s": round(wall, 2),
        "notifications_per_second": round(ok / wall) if wall else 0,
        "sender_cpu_s_per_1000": round(cpu * 1000 / max(ok, 1), 4),
    }


# -- output -------------------------------------------------------------------------------


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, cpu_ax, rss_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    points = result["timeline"]
    # Counters move a whole batch at a time, so the rate between two samples jumps; a
    # window of SMOOTH_SECONDS shows the trend, the raw rate stays faint behind it.
    rates = [
        ((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
        for (t0, n0, *_), (t1, n1, *_) in itertools.pairwise(points)
        if t1 > t0
    ]
    rate_ax.plot([t for t, _ in rates], [r for _, r in rates], color="tab:blue", alpha=0.25)
    step = max(1, round(SMOOTH_SECONDS / result["config"]["sample_interval_s"]))
    smooth = [
        ((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
        for (t0, n0, *_), (t1, n1, *_) in zip(points, points[step:], strict=False)
        if t1 > t0
    ]
    rate_ax.plot(
        [t for t, _ in smooth],
        [r for _, r in smooth],
        color="tab:blue",
        label=f"pipeline ({SMOOTH_SECONDS:g} s window)",
    )
    base = result["baselines"]
    rate_ax.axhline(
        base["bare_transport"]["notifications_per_second"],
        color="tab:green",
        linestyle="--",
        label="bare transport",
    )
    rate_ax.axhline(
        base["naive"]["notifications_per_second"], color="tab:red", linestyle=":", label="naive"
    )
    rate_ax.set_title(
        f"broadcast to {result['config']['devices']:,} devices: {result['wall_seconds_to_done']} s"
    )
    rate_ax.set_xlabel("seconds")
    rate_ax.set_ylabel("notifications/s")
    rate_ax.legend()
    cpu = result["cpu_seconds_per_1000"]
    cpu_ax.bar(list(cpu), list(cpu.values()), color="tab:orange")
    cpu_ax.set_title("CPU seconds per 1,000 notifications")
    rss_ax.plot([p[0] for p in points], [p[3] for p in points])
    rss_ax.set_title(f"largest worker RSS (peak {result['worker_peak_rss_mb']} MB)")
    rss_ax.set_xlabel("seconds")
    rss_ax.set_ylabel("MB")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary(result: dict[str, Any]) -> str:
    base = result["baselines"]
    c = result["correct"]
    cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_seconds_per_1000"].items())
    return (
        f"fanout: {result['config']['devices']:,} devices, done in "
        f"{result['wall_seconds_to_done']} s = {result['notifications_per_second']:,}/s "
        f"(bare transport {base['bare_transport']['notifications_per_second']:,}/s, "
        f"pipeline at {result['pipeline_vs_bare_transport']:.0%}; naive "
        f"{base['naive']['notifications_per_second']:,}/s)\n"
        f"  CPU s per 1,000: {cpu}\n"
        f"  worker peak RSS {result['worker_peak_rss_mb']} MB; SQL statements per 1,000: "
        f"{result['sql_statements']['steady_state_per_1000']} steady, "
        f"{result['sql_statements']['per_1000']} overall ({result['sql_statements']['source']})\n"
        f"  correct: {c['ok']} (live exactly once {c['live_delivered_exactly_once']}, dead "
        f"deleted {c['dead_deleted']})"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--bare-sample", type=int, default=200_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=0.5, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for done, s")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PUSHCORE_NAME=VALUE",
        help="a setting for the API, the workers and the bare baseline (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON and PNG")
    parser.add_argument("--label", default="", help="file name part: fanout-<label>-<date>")
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item or not item.startswith("PUSHCORE_"):
            parser.error(f"--set wants PUSHCORE_NAME=VALUE, got {item!r}")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "-".join(p for p in ("fanout", args.label, datetime.date.today().isoformat()) if p)
    out = args.out / f"{stem}.json"
    result["written"] = {"json": str(out), "png": str(out.with_suffix(".png"))}
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(summary(result), file=sys.stderr)
    print(f"fanout: written {out} and {out.with_suffix('.png')}", file=sys.stderr)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

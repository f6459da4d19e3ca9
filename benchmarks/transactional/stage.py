"""The set-up, with the fan-out benchmark's pieces: a fresh database and Redis database,
the simulators, ``pushcore api`` and ``pushcore worker`` as processes, the app (and with
``--during-broadcast`` the broadcast's app), the seeded registries and the users targeted;
then the measured run, the checks and the report, in that order."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.fanout import pipeline, statements
from benchmarks.fanout.broadcast import App
from benchmarks.transactional import checks, load, measure, report
from pushcore.config import Settings
from pushcore.db.pool import Pool
from pushcore.demo import campaign
from pushcore.demo.seed import SEED_TIMEOUT, Seeded, seed, sim_key
from pushcore.gateways.simulators import Simulators


@dataclass(frozen=True, slots=True)
class SeededApp:
    app: App
    app_id: int
    seeded: Seeded  # which simulator keys of the app are live and dead


@dataclass(frozen=True, slots=True)
class Target:
    """One user sent to, and the registrations the message should reach."""

    user: str
    live: frozenset[tuple[str, str]]  # (platform, simulator key)
    dead: frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Stage:
    """Everything the measured run works with."""

    settings: Settings
    pool: Pool
    sims: Simulators
    http: aiohttp.ClientSession
    port: int
    api_pid: int
    worker_pids: frozenset[int]
    statement_source: str
    tx: SeededApp
    broadcast: SeededApp | None
    targets: list[Target]  # the measured messages' users
    warm_targets: list[Target]  # the warm-up's
    seed_s: float
    settled: dict[str, Any]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark as ``args`` asks; every process it started is stopped on the way out."""
    return await pipeline.with_stack(args, _staged)


async def _staged(
    args: argparse.Namespace,
    settings: Settings,
    env: dict[str, str],
    pool: Pool,
    sims: Simulators,
    children: campaign.Processes,
) -> dict[str, Any]:
    port = campaign._free_port()
    api_pid, worker_main_pid = pipeline._start(args, env, children, port)
    source = await statements.source(pool)
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await campaign._wait_ready(http)
        tx_app, tx_id = await pipeline._create_app(http, pool, settings, sims)
        if args.batch and (status := await load.batch_route_missing(http, tx_app)):
            return report.skipped(
                args,
                f"POST /v1/apps/{{app_code}}/messages:batch answered {status} (no such route"
                " in this pushcore): --batch not run",
            )
        b_app = (
            await pipeline._create_app(http, pool, settings, sims)
            if args.during_broadcast
            else None
        )
        t0 = time.monotonic()
        tx, broadcast = await _seed_apps(pool, (tx_app, tx_id), b_app, args, sims)
        seed_s = time.monotonic() - t0
        settled = await pipeline._settle(pool)
        targets = await _targets(pool, tx, args.messages + args.warmup)
        progress(
            f"seeded {tx.seeded.total:,} + {broadcast.seeded.total if broadcast else 0:,} "
            f"installations in {seed_s:.1f} s; {len(targets):,} users to send to"
        )
        stage = Stage(
            settings=settings,
            pool=pool,
            sims=sims,
            http=http,
            port=port,
            api_pid=api_pid,
            worker_pids=frozenset(await pipeline._worker_pids(worker_main_pid, args.processes)),
            statement_source=source,
            tx=tx,
            broadcast=broadcast,
            targets=targets[: args.messages],
            warm_targets=targets[args.messages :],
            seed_s=seed_s,
            settled=settled,
        )
        measured = await measure.measure(stage, args)
    progress("checking against the simulators and the registry")
    rows = await checks.messages_of(pool, tx.app_id)
    correct = await checks.check(stage, rows, measured)
    b_correct = await checks.broadcast_check(stage, measured.broadcast)
    progress("stopping the API, workers and simulators")
    return report.build(args, stage, measured, rows, correct, b_correct)


async def _seed_apps(
    pool: Pool,
    tx_app: tuple[App, int],
    b_app: tuple[App, int] | None,
    args: argparse.Namespace,
    sims: Simulators,
) -> tuple[SeededApp, SeededApp | None]:
    """The transactional app's ``--devices``; the broadcast app's ``--during-broadcast``:
    ``--devices`` more are seeded, then the ones whose tokens the first app has too are
    deleted (``seed`` derives a token from the device's number, the same in both apps, and
    the simulators count per token)."""
    origin = sims.webpush.origin
    tx = SeededApp(*tx_app, await seed(pool, tx_app[1], args.devices, origin))
    if b_app is None:
        return tx, None
    b_seeded = await seed(pool, b_app[1], args.devices + args.during_broadcast, origin)
    deleted = await pool.fetchval(
        """
        WITH d AS (
            DELETE FROM installations b USING installations t
            WHERE b.app_id = $1 AND t.app_id = $2 AND b.platform = t.platform
              AND b.token = t.token
            RETURNING 1
        ) SELECT count(*) FROM d
        """,
        b_app[1],
        tx_app[1],
        timeout=SEED_TIMEOUT,
    )
    if deleted != tx.seeded.total:
        raise SystemExit(f"bench: {deleted} shared tokens deleted, expected {tx.seeded.total}")
    for kind in ("live", "dead"):
        mine, theirs = getattr(b_seeded, kind), getattr(tx.seeded, kind)
        for platform in mine:
            mine[platform] -= theirs[platform]
    return tx, SeededApp(*b_app, b_seeded)


async def _targets(pool: Pool, tx: SeededApp, messages: int) -> list[Target]:
    """``messages`` users with installations, spread evenly over them, with their
    registrations (live or dead by the seeding's fate)."""
    rows = await pool.fetch(
        """
        SELECT u.external_id, array_agg(i.platform ORDER BY i.id) AS platforms,
               array_agg(i.token ORDER BY i.id) AS tokens
        FROM users u JOIN installations i ON i.user_id = u.id
        WHERE u.app_id = $1 AND i.push_enabled
        GROUP BY u.id ORDER BY u.id
        """,
        tx.app_id,
    )
    if len(rows) < messages:
        raise SystemExit(
            f"bench: {messages} messages (--messages + --warmup) but only {len(rows)} users "
            "have installations "
            f"(about 0.9 per 2 devices): raise --devices"
        )
    targets = []
    for row in (rows[k * len(rows) // messages] for k in range(messages)):
        keys = [(p, sim_key(p, t)) for p, t in zip(row["platforms"], row["tokens"], strict=True)]
        live = frozenset(k for k in keys if k[1] in tx.seeded.live[k[0]])
        targets.append(Target(row["external_id"], live, frozenset(keys) - live))
    return targets


def progress(text: str) -> None:
    print(f"transactional: {text}", file=sys.stderr, flush=True)

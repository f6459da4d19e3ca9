"""A broadcast to N devices through the whole pipeline, with the bare transport beside it.

Seeds N installations (COPY; the demo's mix: 45% iOS, 40% Android, 15% Web, 5% dead,
users with several devices), starts the granian simulators, ``pushcore api`` and
``pushcore worker`` as real processes, sends one broadcast through the HTTP API and waits
for ``done``.  Reports wall time, notifications/s overall and over time, CPU seconds per
1,000 notifications for each component (workers, API, PostgreSQL, Redis, simulators),
worker peak RSS, SQL statements per 1,000 notifications (committed transactions of the
database: every pushcore statement is its own transaction, except personalize), and checks
that every live registration was delivered exactly once and every dead one deleted.  In the
same run, on the same simulators, two baselines: the bare delivery layer
(``CurlTransport`` + providers from memory) and a naive sender (``asyncio.gather`` over
httpx).  Writes ``benchmarks/results/fanout-<date>.json`` and ``.png``.

    .venv/bin/python -m benchmarks.fanout [--devices 1000000] [--processes 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import procstat, transport
from pushcore.config import Settings, load_settings
from pushcore.db.migrate import apply_migrations
from pushcore.db.pool import create_pool
from pushcore.demo import campaign
from pushcore.demo.seed import seed
from pushcore.gateways.simulators import GranianSimulator, Simulators
from pushcore.transport.curl import CurlTransport
from pushcore.transport.delivery import authorize

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench"


def _sim_pids(sims: Simulators) -> list[int]:
    pids = []
    for sim in sims:
        if isinstance(sim, GranianSimulator) and sim.process.process is not None:
            pids.append(sim.process.process.pid)
    return pids


async def _xacts(pool: Any) -> int:
    return int(
        await pool.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(
        environ={},
        database_url=args.database_url,
        redis_url=args.redis_url,
        admin_token="bench-" + secrets.token_urlsafe(16),
    )
    await asyncio.to_thread(apply_migrations, settings.database_url)
    pool = await create_pool(settings, max_size=2)
    await pool.execute("TRUNCATE apps, users, installations, messages, batches, events CASCADE")
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.close()
    log_dir = Path(".local/bench")
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    children = campaign.Processes(log_dir)
    try:
        async with Simulators.start(engine="granian", ca_dir=campaign.CA_DIR) as sims:
            return await _measure(args, settings, pool, sims, children)
    finally:
        children.stop()
        await pool.close()


async def _measure(
    args: argparse.Namespace,
    settings: Settings,
    pool: Any,
    sims: Simulators,
    children: campaign.Processes,
) -> dict[str, Any]:
    env = campaign._env(settings, sims)
    env["PUSHCORE_LOG_LEVEL"] = "WARNING"
    port = campaign._free_port()
    children.start("api", ["api", "--port", str(port)], env)
    children.start(
        "worker",
        [
            "worker",
            "--processes",
            str(args.processes),
            "--threads",
            str(args.threads),
            "--metrics-port",
            "0",
        ],
        env,
    )
    api_proc, worker_proc = children.procs
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await campaign._wait_ready(http)
        app = await campaign._call(
            http,
            "POST",
            "/v1/apps",
            settings.admin_token,
            {"name": "bench", **campaign._credentials(sims.fcm.origin)},
        )
        app_id = await pool.fetchval("SELECT id FROM apps WHERE code = $1", app["app_code"])
        t0 = time.monotonic()
        seeded = await seed(pool, app_id, args.devices, sims.webpush.origin)
        seed_s = time.monotonic() - t0
        for sim in sims:
            await sim.reset_stats()
        await asyncio.sleep(2)  # workers booted and idle: their CPU so far is not the send's
        groups = {
            "workers": procstat.tree([worker_proc.pid]),
            "api": procstat.tree([api_proc.pid]),
            "simulators": procstat.tree(_sim_pids(sims)),
            "postgresql": procstat.named("postgres"),
            "redis": procstat.named("redis-server"),
        }
        cpu_before = {k: procstat.cpu_seconds(v) for k, v in groups.items()}
        xacts_before = await _xacts(pool)
        started = time.monotonic()
        sent = await campaign._call(
            http,
            "POST",
            f"/v1/apps/{app['app_code']}/messages",
            app["server_key"],
            {"target": {"all": True}, "notification": {"title": "Bench"}},
        )
        timeline = []
        while True:
            msg = await campaign._call(
                http,
                "GET",
                f"/v1/apps/{app['app_code']}/messages/{sent['message_id']}",
                app["server_key"],
            )
            c = msg["counts"]
            timeline.append(
                (
                    round(time.monotonic() - started, 2),
                    c["delivered"] + c["invalid_removed"] + c["failed"],
                )
            )
            if msg["status"] in ("done", "failed", "cancelled") and c["pending"] == 0:
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"bench: not done after {args.timeout} s: {msg}")
            await asyncio.sleep(0.5)
        wall = time.monotonic() - started
        groups["postgresql"] = procstat.named("postgres")  # backends come and go
        cpu = {k: procstat.cpu_seconds(v) - cpu_before.get(k, 0.0) for k, v in groups.items()}
        xacts = await _xacts(pool) - xacts_before
        rss = [procstat.peak_rss_mb(p) for p in procstat.tree([worker_proc.pid])]
    answered = c["delivered"] + c["invalid_removed"]
    live = sum(len(s) for s in seeded.live.values())
    dead = sum(len(s) for s in seeded.dead.values())
    exact = await _exactly_once(sims, seeded)
    remaining = await pool.fetchval("SELECT count(*) FROM installations WHERE app_id = $1", app_id)
    baseline = await _baselines(sims, args)
    per_k = 1000 / max(answered, 1)
    return {
        "benchmark": "fanout",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {
            "devices": args.devices,
            "processes": args.processes,
            "threads": args.threads,
            "batch_size": settings.batch_size,
            "cpus": os.cpu_count(),
        },
        "seed_seconds": round(seed_s, 1),
        "wall_seconds_to_done": round(wall, 2),
        "notifications_per_second": round(answered / wall),
        "counts": c,
        "timeline": timeline,
        "cpu_seconds_per_1000": {k: round(v * per_k, 4) for k, v in cpu.items()},
        "worker_peak_rss_mb": round(max(rss, default=0.0), 1),
        "sql_statements_per_1000": round(xacts * per_k, 2),
        "sql_statements_measure": "pg_stat_database.xact_commit delta (autocommit statements)",
        "correct": {
            "live_delivered_exactly_once": exact,
            "live": live,
            "dead": dead,
            "dead_deleted": remaining == live,
            "delivered_matches": c["delivered"] == live,
            "invalid_removed_matches": c["invalid_removed"] == dead,
        },
        "baselines": baseline,
        "pipeline_vs_bare_transport": round(
            (answered / wall) / baseline["bare_transport_per_second"], 3
        ),
    }


async def _exactly_once(sims: Simulators, seeded: Any) -> bool:
    """Every live registration accepted exactly once, from the simulators' aggregate
    counts (a per-token table of a million entries is too large to fetch): only live
    tokens can be accepted, so as many acceptances as live registrations and no token
    accepted twice means each was accepted once."""
    names = {"ios": sims.apns, "android": sims.fcm, "web": sims.webpush}
    for platform, sim in names.items():
        stats = await sim.fetch_stats()
        # FCM's OAuth token endpoint answers 200 too ("token"); those are not deliveries
        delivered = stats["delivered"] - stats["by_reason"].get("token", 0)
        if stats["duplicates"] != 0 or delivered != len(seeded.live[platform]):
            return False
    return True


async def _baselines(sims: Simulators, args: argparse.Namespace) -> dict[str, Any]:
    """Bare transport and naive sender, same simulators, in the demo's platform mix."""
    providers = transport._providers(sims)
    probe = CurlTransport(ca_file=str(sims.ca_file), max_in_flight=4)
    await authorize(providers["fcm"], probe, timeout=30)
    await probe.aclose()
    opts = argparse.Namespace(in_flight=args.in_flight, batch=500)
    mix = {"apns": 0.45, "fcm": 0.40, "webpush": 0.15}
    out: dict[str, Any] = {}
    for label, sample, runner in (
        ("bare_transport", args.baseline_sample, transport.run_curl),
        ("naive_httpx", args.naive_sample, transport.run_httpx),
    ):
        total, seconds = 0, 0.0
        for name, share in mix.items():
            regs = transport._registrations(name, int(sample * share), sims.webpush.origin)
            t = time.monotonic()
            total += await runner(providers[name], regs, opts, str(sims.ca_file))
            seconds += time.monotonic() - t
        out[f"{label}_per_second"] = round(total / seconds)
        out[f"{label}_sample"] = sample
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    points = result["timeline"]
    rates = [
        (t1, (n1 - n0) / (t1 - t0)) for (t0, n0), (t1, n1) in itertools.pairwise(points) if t1 > t0
    ]
    left.plot([t for t, _ in rates], [r for _, r in rates])
    left.set_title(f"broadcast to {result['config']['devices']:,} devices")
    left.set_xlabel("seconds")
    left.set_ylabel("notifications/s")
    cpu = result["cpu_seconds_per_1000"]
    right.bar(list(cpu), list(cpu.values()))
    right.set_title("CPU seconds per 1,000 notifications")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--baseline-sample", type=int, default=50_000)
    parser.add_argument("--naive-sample", type=int, default=5_000)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (PNG beside it)")
    args = parser.parse_args(argv)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"fanout-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    c = result["correct"]
    print(
        f"fanout: {result['config']['devices']:,} devices done in "
        f"{result['wall_seconds_to_done']} s ({result['notifications_per_second']:,}/s; bare "
        f"transport {result['baselines']['bare_transport_per_second']:,}/s, naive "
        f"{result['baselines']['naive_httpx_per_second']:,}/s); exactly once: "
        f"{c['live_delivered_exactly_once']}, dead deleted: {c['dead_deleted']}; "
        f"written {out} and {out.with_suffix('.png')}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

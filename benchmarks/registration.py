"""The registration API under load: requests/s and latency percentiles per route.

Starts ``pushcore api --workers N`` as its own processes and drives it from this process at
a fixed concurrency for a fixed time with the SDK's mix: register (new installations),
token update, personalize and depersonalize.  The load generator is this process
(``--concurrency`` simulated devices, each on its own keep-alive connection and waiting for
its answer before its next call; the lean client of :mod:`benchmarks.loadgen`), separate
from the API's processes; on a 2-core machine both share the cores, which the figures
include, and the JSON says how much CPU each took.  Reports requests/s overall and per
route, p50/p95/p99 latency per route, errors, and the goal (>= 3,000 requests/s at p99
<= 50 ms).  Writes
``<out>/registration-<date>.json`` and ``.png`` (default ``benchmarks/results``).

    .venv/bin/python -m benchmarks.registration [--seconds 20] [--concurrency 32] [--workers 2]
        [--out DIR] [--label NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop

from benchmarks import loadgen, procstat
from benchmarks.database import DEFAULT_DB, fresh_database
from pushcore.config import load_settings
from pushcore.demo import campaign

RESULTS = Path(__file__).resolve().parent / "results"
LOG_DIR = Path(".local/bench")
GOAL_RPS = 3000
GOAL_P99_MS = 50.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def drive(base: str, admin: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(
        base_url=base, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        app = await campaign._call(http, "POST", "/v1/apps", admin, {"name": "load"})
        code, key = app["app_code"], app["server_key"]
        parts = urlsplit(base)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        deadline = time.monotonic() + seconds

        async def device(n: int) -> None:
            # one simulated device: its own keep-alive connection, one call at a time
            conn = await loadgen.Connection.open(host, port)
            rng = random.Random(n)

            async def call(route: str, method: str, path: str, token: str | None, body: Any) -> Any:
                nonlocal conn
                t = time.perf_counter()
                try:
                    status, answer = await conn.call(method, path, token, body, timeout=30)
                except loadgen.LoadgenError as exc:
                    # counted, and the device goes on with a new connection
                    conn.close()
                    conn = await loadgen.Connection.open(host, port)
                    key = f"{route}: {exc}"
                    errors[key] = errors.get(key, 0) + 1
                    raise
                latencies.setdefault(route, []).append(time.perf_counter() - t)
                if status >= 400:
                    errors[route] = errors.get(route, 0) + 1
                return answer

            try:
                while time.monotonic() < deadline:
                    with contextlib.suppress(loadgen.LoadgenError):
                        await flow(call, rng)
            finally:
                conn.close()

        async def flow(call: Callable[..., Awaitable[Any]], rng: random.Random) -> None:
            """One device's life: register, 1-3 token updates, personalize, depersonalize."""
            inst = await call(
                "register",
                "POST",
                f"/v1/apps/{code}/installations",
                None,
                {"platform": "ios", "push_token": secrets.token_hex(32)},
            )
            iid, secret = inst["installation_id"], inst["installation_secret"]
            for _ in range(rng.randint(1, 3)):
                await call(
                    "token_update",
                    "PATCH",
                    f"/v1/installations/{iid}",
                    secret,
                    {"push_token": secrets.token_hex(32)},
                )
            await call(
                "personalize",
                "PUT",
                f"/v1/apps/{code}/installations/{iid}/user",
                key,
                {"external_user_id": f"u{rng.randint(1, 10**6)}"},
            )
            await call("depersonalize", "DELETE", f"/v1/installations/{iid}/user", secret, None)

        started = time.monotonic()
        await asyncio.gather(*(device(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    total = sum(len(v) for v in latencies.values())
    return {
        "seconds": round(elapsed, 2),
        "requests": total,
        "requests_per_second": round(total / elapsed),
        "errors": errors,
        "routes": {
            route: {
                "requests": len(v),
                "per_second": round(len(v) / elapsed),
                "p50_ms": round(_percentile(v, 0.50), 2),
                "p95_ms": round(_percentile(v, 0.95), 2),
                "p99_ms": round(_percentile(v, 0.99), 2),
                "mean_ms": round(statistics.fmean(v) * 1000, 2),
            }
            for route, v in latencies.items()
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin = "bench-" + secrets.token_urlsafe(16)
    settings = load_settings(environ={}, database_url=args.database_url, admin_token=admin)
    await asyncio.to_thread(fresh_database, settings.database_url)
    LOG_DIR.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    children = campaign.Processes(LOG_DIR)
    port = campaign._free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(
        PUSHCORE_DATABASE_URL=settings.database_url,
        PUSHCORE_ADMIN_TOKEN=admin,
        PUSHCORE_LOG_LEVEL="WARNING",
        PUSHCORE_DB_POOL_MAX=str(args.pool),
    )
    children.start("api", ["api", "--port", str(port), "--workers", str(args.workers)], env)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base_url=base) as http:
            await campaign._wait_ready(http)
        api_pids = procstat.tree([children.procs[0].pid])
        groups: dict[str, Callable[[], float]] = {
            "api": lambda: procstat.cpu_seconds(api_pids),
            "postgresql": lambda: procstat.cpu_seconds(
                procstat.tree(procstat.named_roots("postgres"))
            ),
            "load_generator": lambda: sum(os.times()[:2]),
        }
        before = {name: read() for name, read in groups.items()}
        measured = await drive(base, admin, args.seconds, args.concurrency)
        cpu = {name: read() - before[name] for name, read in groups.items()}
    finally:
        await asyncio.to_thread(children.stop)
    worst_p99 = max((r["p99_ms"] for r in measured["routes"].values()), default=0.0)
    per_1000 = {k: round(v * 1000 / max(measured["requests"], 1), 3) for k, v in cpu.items()}
    # What the API and PostgreSQL alone could serve on all the cores, were the load
    # generator elsewhere: an estimate from CPU time, not a measurement.
    server_ms = per_1000["api"] + per_1000["postgresql"]
    measured["cpu_seconds_per_1000_requests"] = per_1000
    measured["server_only_estimate_rps"] = round((os.cpu_count() or 1) * 1000 / server_ms)
    return {
        "benchmark": "registration",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {
            "api_workers": args.workers,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "db_pool_max": args.pool,
            "load_generator": "one process (benchmarks.loadgen), a connection per device",
        },
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": list(os.getloadavg())},
        **measured,
        "goals": {
            "ge_3000_rps_at_p99_le_50ms": {
                "requests_per_second": measured["requests_per_second"],
                "worst_route_p99_ms": worst_p99,
                "met": measured["requests_per_second"] >= GOAL_RPS and worst_p99 <= GOAL_P99_MS,
            }
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = result["routes"]
    names = list(routes)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(
            [n + i * 0.25 for n in range(len(names))],
            [routes[r][q] for r in names],
            width=0.25,
            label=q,
        )
    ax.set_xticks([n + 0.25 for n in range(len(names))], names)
    ax.set_ylabel("ms")
    ax.set_title(f"registration API: {result['requests_per_second']:,} requests/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON and PNG")
    parser.add_argument("--label", default="", help="file name part: registration-<label>-<date>")
    args = parser.parse_args(argv)
    # the load generator on uvloop too: it shares the cores with what it measures
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    parts = ("registration", args.label, datetime.date.today().isoformat())
    out = args.out / ("-".join(p for p in parts if p) + ".json")
    result["written"] = {"json": str(out), "png": str(out.with_suffix(".png"))}
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    worst = ", ".join(f"{k} p99 {v['p99_ms']} ms" for k, v in result["routes"].items())
    print(
        f"registration: {result['requests_per_second']:,} requests/s at concurrency "
        f"{args.concurrency} ({worst}; errors {result['errors'] or 'none'})\n"
        f"registration: CPU s per 1,000 requests {result['cpu_seconds_per_1000_requests']}; "
        f"API + PostgreSQL alone on all cores: ~{result['server_only_estimate_rps']:,}/s "
        "(estimate)\n"
        f"registration: written {out} and {out.with_suffix('.png')}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

"""The registration API under load: requests/s and latency percentiles per route.

Starts ``pushcore api --workers N`` as its own processes and drives it from this process at
a fixed concurrency for a fixed time with the SDK's mix: register (new installations),
token update, personalize and depersonalize.  Reports requests/s overall and per route and
p50/p95/p99 latency per route.  Writes ``benchmarks/results/registration-<date>.json`` and
``.png``.

    .venv/bin/python -m benchmarks.registration [--seconds 20] [--concurrency 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from pushcore.config import load_settings
from pushcore.db.migrate import apply_migrations
from pushcore.demo import campaign

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def drive(base: str, admin: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(
        base_url=base,
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as http:
        app = await campaign._call(http, "POST", "/v1/apps", admin, {"name": "load"})
        code, key = app["app_code"], app["server_key"]
        deadline = time.monotonic() + seconds

        async def call(route: str, method: str, path: str, token: str | None, body: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            t = time.perf_counter()
            async with http.request(method, path, json=body, headers=headers) as resp:
                answer = await resp.json()
                ok = resp.status < 400
            latencies.setdefault(route, []).append(time.perf_counter() - t)
            if not ok:
                errors[route] = errors.get(route, 0) + 1
            return answer

        async def device(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < deadline:
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
    await asyncio.to_thread(apply_migrations, settings.database_url)
    log_dir = Path(".local/bench")
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    children = campaign.Processes(log_dir)
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
        measured = await drive(base, admin, args.seconds, args.concurrency)
    finally:
        children.stop()
    return {
        "benchmark": "registration",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {
            "api_workers": args.workers,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "db_pool_max": args.pool,
            "load_generator": "one aiohttp process, separate from the API",
        },
        **measured,
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (PNG beside it)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"registration-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(
        f"registration: {result['requests_per_second']:,} requests/s; written {out}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

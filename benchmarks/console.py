"""The web console's pages on a large app: how long each takes to answer.

Seeds an app of ``--devices`` installations (the demo's mix: half as many users, tags
``news``/``sports``, some primaries) into a database of its own, sends a few small
messages (the transactional lane: no workers needed), starts ``pushcore api`` as its own
process, signs in with the app's server key through the console's form and fetches every
page ``--rounds`` times over one keep-alive connection, one request at a time.  The
overview's and the tags' aggregates are cached for 30 s per API process, so the first
view of each is reported apart from the cached ones, and the aggregate statements are
also timed on their own (what a view costs every 30 s).  Writes
``<out>/console-<date>.json`` and ``.png`` (default ``benchmarks/results``).

    .venv/bin/python -m benchmarks.console [--devices 100000] [--rounds 30] [--out DIR]
        [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from benchmarks.database import fresh_database
from pushcore.config import load_settings
from pushcore.db import console as console_queries
from pushcore.db.pool import create_pool
from pushcore.demo import campaign
from pushcore.demo.seed import seed

RESULTS = Path(__file__).resolve().parent / "results"
LOG_DIR = Path(".local/bench-console")
# a database of this benchmark's own (several benchmarks may run on one machine)
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench_console"
GOAL_MS = 1000.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def _timed(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> float:
    started = time.perf_counter()
    async with http.request(method, path, **kw) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SystemExit(f"bench: {method} {path} answered {resp.status}: {body[:300]!r}")
    return time.perf_counter() - started


async def _sign_in(http: aiohttp.ClientSession, key: str, code: str) -> str:
    """Sign in; the session's CSRF token.  The redirect to the overview is not followed,
    so that the first view measured is the one that computes its aggregates."""
    async with http.get("/console/login") as resp:
        token = _CSRF.search(await resp.text())
    assert token
    async with http.post(
        "/console/login",
        data={"credential": key, "csrf_token": token.group(1)},
        allow_redirects=False,
    ) as resp:
        if resp.status != 303:
            raise SystemExit(f"bench: sign-in answered {resp.status}")
    async with http.get(f"/console/apps/{code}/compose") as resp:
        page = await resp.text()
    found = _CSRF.search(page)
    assert found
    return found.group(1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin = "bench-" + secrets.token_urlsafe(24)
    settings = load_settings(environ={}, database_url=args.database_url, admin_token=admin)
    await asyncio.to_thread(fresh_database, settings.database_url)
    LOG_DIR.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(PUSHCORE_DATABASE_URL=args.database_url, PUSHCORE_ADMIN_TOKEN=admin)
    env["PUSHCORE_LOG_LEVEL"] = "WARNING"
    port = campaign._free_port()
    children = campaign.Processes(LOG_DIR)
    children.start("api", ["api", "--port", str(port)], env)
    pool = await create_pool(settings, max_size=2)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(
            base_url=base, timeout=aiohttp.ClientTimeout(total=120)
        ) as http:
            await campaign._wait_ready(http)
            app = await campaign._call(
                http, "POST", "/v1/apps", admin,
                {"name": "Console bench", **campaign._credentials("https://127.0.0.1:9")},
            )  # fmt: skip
            code, key = app["app_code"], app["server_key"]
            app_id = await pool.fetchval("SELECT id FROM apps WHERE code = $1", code)
            seeded_at = time.monotonic()
            await seed(pool, app_id, args.devices, "https://127.0.0.1:9")
            await pool.execute("VACUUM ANALYZE installations")
            seeding = time.monotonic() - seeded_at
            server = {"Authorization": f"Bearer {key}"}
            message_id = ""
            for n in range(20):  # small sends: the lane plans them when accepted
                body = {
                    "target": {"external_user_ids": [f"user-{n * 50 + i}" for i in range(1, 51)]},
                    "notification": {"title": f"Bench {n}"},
                }
                async with http.post(f"/v1/apps/{code}/messages", json=body, headers=server) as r:
                    message_id = (await r.json())["message_id"]
            console = aiohttp.ClientSession(
                base_url=base,
                timeout=aiohttp.ClientTimeout(total=120),
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            )
            async with console:
                csrf = await _sign_in(console, key, code)
                a = f"/console/apps/{code}"
                # a user with installations, from the middle of the registry
                picked = await pool.fetchrow(
                    "SELECT u.external_id, u.email, i.public_id::text AS inst"
                    " FROM installations i JOIN users u ON u.id = i.user_id"
                    " WHERE i.app_id = $1 ORDER BY i.id OFFSET $2 LIMIT 1",
                    app_id,
                    args.devices // 3,
                )
                if picked is None:
                    raise SystemExit("bench: no personalized installation was seeded")
                user, inst = picked["external_id"], picked["inst"]
                gets = {
                    "overview": f"{a}/",
                    "audience (tags)": f"{a}/audience",
                    "lookup by email": f"{a}/audience?by=email&q={picked['email']}",
                    "user": f"{a}/users/{user}",
                    "installation": f"{a}/installations/{inst}",
                    "compose": f"{a}/compose",
                    "messages": f"{a}/messages",
                    "message": f"{a}/messages/{message_id}",
                    "progress (poll)": f"{a}/messages/{message_id}/progress",
                    "settings": f"{a}/settings",
                }
                first = {name: await _timed(console, "GET", path) for name, path in gets.items()}
                times: dict[str, list[float]] = {name: [] for name in gets}
                estimates = {
                    "estimate: all": {"target_kind": "all"},
                    "estimate: tag sports": {"target_kind": "tags", "target_values": "sports"},
                    "estimate: 1,000 emails": {
                        "target_kind": "emails",
                        "target_values": "\n".join(f"user{i}@example.com" for i in range(1000)),
                    },
                }
                for name in estimates:
                    times[name] = []
                hx = {"HX-Request": "true"}
                for _ in range(args.rounds):
                    for name, path in gets.items():
                        times[name].append(await _timed(console, "GET", path))
                    for name, form in estimates.items():
                        data = {**form, "action": "estimate", "csrf_token": csrf}
                        times[name].append(
                            await _timed(console, "POST", f"{a}/compose", data=data, headers=hx)
                        )
            aggregates: dict[str, list[float]] = {"installation counts": [], "tag counts": []}
            for _ in range(args.rounds):
                started = time.perf_counter()
                await console_queries.installation_counts(pool, app_id, 60)
                aggregates["installation counts"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await console_queries.tag_counts(pool, app_id)
                aggregates["tag counts"].append(time.perf_counter() - started)
    finally:
        await pool.close()
        await asyncio.to_thread(children.stop)
    pages: dict[str, dict[str, Any]] = {
        name: {**_ms(v), "first_ms": round(first[name] * 1000, 1) if name in first else None}
        for name, v in times.items()
    }
    worst: float = max(max(float(v["p95_ms"]), float(v["first_ms"] or 0)) for v in pages.values())
    return {
        "benchmark": "console",
        "date": datetime.date.today().isoformat(),
        "devices": args.devices,
        "rounds": args.rounds,
        "seeding_seconds": round(seeding, 1),
        "pages": pages,
        "aggregate_statements": {name: _ms(v) for name, v in aggregates.items()},
        "goal": {"page_ms_below": GOAL_MS, "worst_ms": worst, "met": worst < GOAL_MS},
        "setup": "pushcore api (1 process) and PostgreSQL on the same 2 cores; one client, "
        "one request at a time over keep-alive",
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["pages"])
    p50 = [result["pages"][n]["p50_ms"] for n in names]
    p95 = [result["pages"][n]["p95_ms"] for n in names]
    first = [result["pages"][n]["first_ms"] or 0 for n in names]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    y = range(len(names))
    ax.barh([i + 0.27 for i in y], first, height=0.27, label="first view", color="#9a6700")
    ax.barh(list(y), p95, height=0.27, label="p95", color="#0a58ca")
    ax.barh([i - 0.27 for i in y], p50, height=0.27, label="p50", color="#1a7f37")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.set_title(f"Console pages on a {result['devices']:,}-installation app")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="benchmarks.console", description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"console-{args.label + '-' if args.label else ''}{result['date']}"
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, png_path)
    result["written"] = {"json": str(json_path), "png": str(png_path)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

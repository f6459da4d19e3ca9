"""``python -m benchmarks.localtime [--devices N] [--rounds R]``: what local-time delivery
costs the planner and the reaper, beside a plain broadcast of the same registry.

In this process, against PostgreSQL only (no broker, no workers, no simulators: planning
and releasing are ledger work): N seeded installations, 90% of them with one of 24
registered time zones (whole, half and three-quarter hour offsets) and the rest without;
then R rounds, alternated, of planning a plain ``all`` broadcast and the same broadcast
with ``send_at_local`` (every page grouped by due time, every batch held), each planned by
the planner's own function with an enqueuer that only counts.  Then the reaper's release
pass over the held batches of the local-time messages (a second pool whose schedule clock is a
day ahead, so that every batch is due).

Writes ``benchmarks/results/localtime-<date>.json`` and ``.png``; the JSON is also the
last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import stackcli
from benchmarks.database import fresh_database
from pushcore.config import Settings, load_settings
from pushcore.db import apps as app_queries
from pushcore.db import messages as message_queries
from pushcore.db import reaping
from pushcore.db.pool import Pool, create_pool
from pushcore.demo.seed import seed
from pushcore.fanout import planning
from pushcore.fanout.queue import BatchJob

DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench_localtime"
ZONES = [
    "Pacific/Kiritimati", "Pacific/Auckland", "Australia/Sydney", "Australia/Eucla",
    "Asia/Tokyo", "Asia/Shanghai", "Asia/Bangkok", "Asia/Dhaka", "Asia/Kathmandu",
    "Asia/Kolkata", "Asia/Karachi", "Asia/Dubai", "Europe/Moscow", "Europe/Berlin",
    "Europe/Lisbon", "Atlantic/Azores", "America/Sao_Paulo", "America/St_Johns",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "Pacific/Honolulu", "Pacific/Pago_Pago",
]  # fmt: skip


class CountingEnqueuer:
    def __init__(self) -> None:
        self.jobs = 0

    async def plan(self, message_id: int) -> None:
        pass

    async def batches(self, jobs: Sequence[BatchJob]) -> None:
        self.jobs += len(jobs)

    async def aclose(self) -> None:
        pass


async def _registry(pool: Pool, devices: int) -> int:
    app = await app_queries.create_app(
        pool, code="localtime-bench", name="localtime bench", identity_verification=False,
        identity_secret="s", credentials={}, key_id="k", key_hash=b"h",
    )  # fmt: skip
    app_id = int(app["id"])
    await seed(pool, app_id, devices, "https://127.0.0.1:1")
    # 90% registered a zone, spread round-robin over ZONES; the rest use the default zone
    await pool.execute(
        """
        UPDATE installations SET device = jsonb_build_object('time_zone', ($2::text[])[id % 24 + 1])
        WHERE app_id = $1 AND id % 10 <> 0
        """,
        app_id,
        ZONES,
    )
    await pool.execute("VACUUM ANALYZE installations")
    return app_id


async def _plan_one(pool: Pool, settings: Settings, app_id: int, local: bool) -> dict[str, Any]:
    request: dict[str, Any] = {"target": {"all": True}, "notification": {"title": "Hi"}}
    local_from = None
    if local:
        wall = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(tzinfo=None)
        request |= {"send_at_local": wall.isoformat(), "default_time_zone": "Europe/Lisbon"}
        local_from = settings.now()
    row, _ = await message_queries.create(
        pool, app_id=app_id, request=request, notification={"title": "Hi"},
        platforms=["ios", "android", "web"], primary_only=False, send_at=None,
        ttl_seconds=3600, idempotency_key=None, local_from=local_from,
    )  # fmt: skip
    enqueuer = CountingEnqueuer()
    cpu, wall_start = time.process_time(), time.perf_counter()
    status = await planning.plan(pool, settings, enqueuer, int(row["id"]))
    seconds = time.perf_counter() - wall_start
    stats = await pool.fetchrow(
        """
        SELECT count(*) AS batches, count(*) FILTER (WHERE held) AS held,
               avg(cardinality(installation_ids))::float8 AS mean_size,
               count(DISTINCT due_at) AS due_times
        FROM batches WHERE message_id = $1
        """,
        row["id"],
    )
    assert stats is not None
    m = await pool.fetchrow("SELECT targeted, waiting FROM messages WHERE id = $1", row["id"])
    assert m is not None
    return {
        "message_id": int(row["id"]),
        "status": status,
        "seconds": round(seconds, 3),
        "planner_cpu_seconds": round(time.process_time() - cpu, 3),
        "targeted": int(m["targeted"]),
        "waiting": int(m["waiting"]),
        "batches": int(stats["batches"]),
        "held": int(stats["held"]),
        "mean_batch_size": round(float(stats["mean_size"] or 0), 1),
        "due_times": int(stats["due_times"]),
        "enqueued": enqueuer.jobs,
        "per_1000_ms": round(seconds * 1000 / max(1, int(m["targeted"])) * 1000, 2),
    }


async def _release(settings: Settings, message_id: int) -> dict[str, Any]:
    ahead = dataclasses.replace(settings, clock_offset_seconds=3 * 86_400.0)
    pool = await create_pool(ahead, max_size=2)
    try:
        released, passes = 0, 0
        start = time.perf_counter()
        while rows := await reaping.release_held(pool, 10_000):
            released += len(rows)
            passes += 1
        seconds = time.perf_counter() - start
        left = await pool.fetchrow("SELECT waiting, status FROM messages WHERE id = $1", message_id)
        assert left is not None
        return {
            "released_batches": released,
            "passes": passes,
            "seconds": round(seconds, 3),
            "per_1000_batches_ms": round(seconds * 1000 / max(1, released) * 1000, 1),
            "waiting_after": int(left["waiting"]),
        }
    finally:
        await pool.close()


async def run(devices: int, rounds: int, database_url: str = DB) -> dict[str, Any]:
    fresh_database(database_url)
    settings = load_settings(environ={}, database_url=database_url, batch_size=500)
    pool = await create_pool(settings, max_size=4)
    try:
        app_id = await _registry(pool, devices)
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "local": []}
        last_local = 0
        for _ in range(rounds):
            for kind in ("plain", "local"):
                result = await _plan_one(pool, settings, app_id, kind == "local")
                runs[kind].append(result)
                if kind == "local":
                    last_local = result["message_id"]
        release = await _release(settings, last_local)
    finally:
        await pool.close()
    medians = {
        kind: {
            key: statistics.median(r[key] for r in rs)
            for key in ("seconds", "planner_cpu_seconds", "per_1000_ms", "batches")
        }
        for kind, rs in runs.items()
    }
    return {
        "benchmark": "localtime",
        "devices": devices,
        "rounds": rounds,
        "zones": len(ZONES) + 1,
        "batch_size": settings.batch_size,
        "runs": runs,
        "medians": medians,
        "local_over_plain": round(medians["local"]["seconds"] / medians["plain"]["seconds"], 3),
        "release": release,
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    kinds = ["plain", "local"]
    for i, kind in enumerate(kinds):
        xs = [i] * len(result["runs"][kind])
        left.scatter(xs, [r["seconds"] for r in result["runs"][kind]], color="C0")
    left.bar(range(2), [result["medians"][k]["seconds"] for k in kinds], alpha=0.4)
    left.set_xticks(range(2), ["plain broadcast", "send_at_local"])
    left.set_ylabel("planning time (s)")
    left.set_title(f"planning {result['devices']:,} devices, {result['zones']} zones")
    right.bar(range(2), [result["medians"][k]["batches"] for k in kinds], color="C1")
    right.set_xticks(range(2), ["plain broadcast", "send_at_local"])
    right.set_ylabel("batches written")
    right.set_title(
        f"release pass: {result['release']['released_batches']} batches "
        f"in {result['release']['seconds']} s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _summary(result: dict[str, Any]) -> str:
    m = result["medians"]
    return (
        f"planning {result['devices']:,} devices over {result['zones']} zones (medians of "
        f"{result['rounds']}): plain {m['plain']['seconds']} s ({m['plain']['batches']} batches), "
        f"send_at_local {m['local']['seconds']} s ({m['local']['batches']} batches), "
        f"x{result['local_over_plain']}"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.localtime")
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="")
    parser.add_argument("--database-url", default=DB, help="emptied first: must name a bench db")
    parser.add_argument(
        "--out", type=Path, default=stackcli.RESULTS, help="directory of the results"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.devices, args.rounds, args.database_url))
    stackcli.report("localtime", result, args, summary=_summary, plot=_plot)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

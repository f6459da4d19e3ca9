"""The read load: ``concurrency`` clients, each on its own keep-alive connection
(``benchmarks.loadgen``: its own CPU is small next to what it measures), calling the
device routes of random personalized installations, one route after the other."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from benchmarks.loadgen import Connection, LoadgenError

TIMEOUT = 30.0
SEEN_PER_CALL = 5


async def run(
    port: int, devices: list[str], secret: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    """``GET …/inbox`` for ``seconds``, then ``POST …/inbox/seen`` (ids the reads saw) for
    as long; per route: requests/s, latency percentiles, errors."""
    connections = [await Connection.open("127.0.0.1", port) for _ in range(concurrency)]
    try:
        pages: dict[str, list[str]] = {}

        async def read(conn: Connection, rng: random.Random) -> int:
            device = rng.choice(devices)
            status, body = await conn.call(
                "GET", f"/v1/installations/{device}/inbox?limit=20", secret, None, TIMEOUT
            )
            if status == 200:
                pages[device] = [m["message_id"] for m in body["messages"]]
            return status

        async def seen(conn: Connection, rng: random.Random) -> int:
            device = rng.choice(readable)
            ids = rng.sample(pages[device], min(SEEN_PER_CALL, len(pages[device])))
            status, _ = await conn.call(
                "POST",
                f"/v1/installations/{device}/inbox/seen",
                secret,
                {"message_ids": ids},
                TIMEOUT,
            )
            return status

        out = {"get_inbox": await _phase(connections, read, seconds)}
        readable = [d for d, ids in pages.items() if ids]
        if not readable:
            raise SystemExit("bench: no inbox read returned messages")
        out["post_seen"] = await _phase(connections, seen, seconds)
        return out
    finally:
        for conn in connections:
            conn.close()


async def _phase(connections: list[Connection], call: Any, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    stop = time.monotonic() + seconds

    async def client(conn: Connection, k: int) -> None:
        nonlocal errors
        rng = random.Random(k)
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                status = await call(conn, rng)
            except LoadgenError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client(c, k) for k, c in enumerate(connections)))
    wall = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": _ms(latencies, 0.50),
        "p90_ms": _ms(latencies, 0.90),
        "p99_ms": _ms(latencies, 0.99),
        "max_ms": _ms(latencies, 1.0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "latencies_ms": [round(x * 1000, 2) for x in latencies[:: max(1, len(latencies) // 2000)]],
    }


def _ms(sorted_latencies: list[float], q: float) -> float | None:
    if not sorted_latencies:
        return None
    index = min(len(sorted_latencies) - 1, int(q * len(sorted_latencies)))
    return round(sorted_latencies[index] * 1000, 2)

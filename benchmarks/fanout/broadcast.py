"""The measured send: one broadcast through the HTTP API, followed until it is final, with
the CPU of every component, the SQL statements and the workers' memory read around it."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import procstat
from benchmarks.fanout import simulators, statements
from pushcore.db.pool import Pool
from pushcore.demo import campaign
from pushcore.gateways.simulators import Simulators

FINAL = ("done", "failed", "cancelled")
TIMELINE_COLUMNS = ["seconds", "answered", "sql_statements", "worker_rss_max_mb"]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """What was measured of one broadcast."""

    wall_s: float  # from the send request to the sample that saw it final
    created_at: datetime.datetime | None  # the message's own times, from PostgreSQL
    finished_at: datetime.datetime | None
    status: str
    counts: dict[str, int]
    timeline: list[list[float]]  # rows of TIMELINE_COLUMNS
    cpu_seconds: dict[str, float]  # per component
    statement_source: str
    statements: int  # the pipeline's own, the benchmark's sampling subtracted
    other_databases_xacts: int
    worker_peak_rss_mb: dict[str, float]  # per worker process id


@dataclass(frozen=True, slots=True)
class App:
    """The app the broadcast goes to, as created through the API."""

    code: str
    server_key: str


async def measure(
    http: aiohttp.ClientSession,
    pool: Pool,
    app: App,
    sims: Simulators,
    api_pid: int,
    worker_pids: set[int],
    source: str,
    *,
    interval: float,
    timeout: float,
    body: dict[str, Any] | None = None,
) -> Broadcast:
    """Broadcast to every installation of ``app`` (``body``: the send request, a fixed
    notification by default) and follow it until it is final."""
    for sim in sims:
        await sim.reset_stats()
    await asyncio.sleep(1)  # workers idle: their boot is not part of the send
    groups = _process_groups(api_pid, worker_pids, sims)
    cpu_before = {k: procstat.cpu_seconds(v) for k, v in groups.items()}
    other_before = await pool.fetchval(statements.OTHER_XACTS_SQL)
    count_sql = statements.count_sql(source)
    statements_before = await pool.fetchval(count_sql)
    started = time.monotonic()
    message_id = await _send_to_all(http, app, body or FIXED)
    timeline, row = await _follow(pool, message_id, count_sql, worker_pids, interval, timeout)
    wall = time.monotonic() - started
    # the PostgreSQL tree again: backends started during the run (their CPU so far is
    # theirs; those already gone are in the postmaster's reaped-children CPU)
    groups["postgresql"] = procstat.tree(procstat.named_roots("postgres"))
    cpu = {k: procstat.cpu_seconds(v) - cpu_before[k] for k, v in groups.items()}
    # minus the sampler's statements (one per sample) and the reading of statements_before
    own = len(timeline) + 1
    statements_run = await pool.fetchval(count_sql) - statements_before - own
    other_xacts = await pool.fetchval(statements.OTHER_XACTS_SQL) - other_before
    peak_rss = {
        str(pid): round(procstat.peak_rss_mb(pid), 1) for pid in sorted(procstat.tree(worker_pids))
    }
    report = await campaign._call(
        http, "GET", f"/v1/apps/{app.code}/messages/{message_id}", app.server_key
    )
    return Broadcast(
        wall_s=wall,
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        status=report["status"],
        counts=report["counts"],
        timeline=timeline,
        cpu_seconds=cpu,
        statement_source=source,
        statements=statements_run,
        other_databases_xacts=other_xacts,
        worker_peak_rss_mb=peak_rss,
    )


def _process_groups(api_pid: int, worker_pids: set[int], sims: Simulators) -> dict[str, set[int]]:
    """The processes of each component, whose CPU is read before and after the send."""
    return {
        "workers": worker_pids,
        "api": procstat.tree([api_pid]),
        "simulators": procstat.tree(simulators.pids(sims)),
        "postgresql": procstat.tree(procstat.named_roots("postgres")),
        "redis": procstat.tree(procstat.named_roots("redis-server")),
    }


FIXED: dict[str, Any] = {
    "target": {"all": True},
    "notification": {"title": "Bench", "body": "fan-out"},
}


async def _send_to_all(http: aiohttp.ClientSession, app: App, body: dict[str, Any]) -> str:
    sent = await campaign._call(http, "POST", f"/v1/apps/{app.code}/messages", app.server_key, body)
    message_id: str = sent["message_id"]
    return message_id


async def _follow(
    pool: Pool,
    message_id: str,
    count_sql: str,
    worker_pids: set[int],
    interval: float,
    timeout: float,
) -> tuple[list[list[float]], Any]:
    """Sample the message's counters every ``interval`` s (fixed ticks) until it is final;
    one statement per sample (subtracted from the SQL count by the caller)."""
    sample_sql = f"""
        SELECT m.status, m.targeted, m.delivered, m.invalid_removed, m.failed, m.retrying,
               m.created_at, m.finished_at, ({count_sql}) AS statements
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
        if elapsed > timeout:
            raise SystemExit(f"bench: not done after {timeout} s: {dict(row)}")
        await asyncio.sleep(max(0.0, started + tick * interval - time.monotonic()))
    raise AssertionError("unreachable")

"""The measured run: the broadcast (with ``--during-broadcast``) until it is ``sending`` and
``--broadcast-lead`` s more, then the transactional load until every accepted message is
final, with the CPU of every component and the SQL statements read around the load; then
the broadcast until it is final (or ``--timeout``)."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks import procstat
from benchmarks.fanout import broadcast, statements
from benchmarks.transactional import load
from benchmarks.transactional.timeline import Sample, Timeline
from pushcore.demo import campaign

if TYPE_CHECKING:
    from benchmarks.transactional.stage import Stage

IDLE_BEFORE_S = 1.0  # workers idle after their boot and the seeding: neither is measured
# PostgreSQL 15 sends a backend's counts (pg_stat_database.xact_commit) to the shared stats
# at most once a second, and an idle backend's last ones only after 10 s
# (PGSTAT_IDLE_INTERVAL): the count is read this long after the load, or the API's and
# workers' last second would be missing (pg_stat_statements counts at once).
STATS_FLUSH_S = 11.0
WARM_UP_POLL_S = 0.1
FINAL_SQL = "SELECT count(*) FROM messages WHERE app_id = $1 AND status = ANY($2::text[])"


@dataclass(frozen=True, slots=True)
class BroadcastRun:
    """What was seen of the broadcast; times in s since the run's start."""

    message_id: str
    sending_at: float  # the first sample that saw it sending (or already final)
    final_at: float | None  # the first sample that saw it final; None: not within --timeout
    report: dict[str, Any]  # the API's message at the end (status, counts, times)


@dataclass(frozen=True, slots=True)
class Measured:
    submitted: load.Submitted
    warm_up: load.Submitted  # its times count from the warm-up's own start
    samples: list[Sample]
    load_window: tuple[float, float]  # first request .. the sample that saw all final
    cpu_seconds: dict[str, float]  # per component, over the load window
    statements: int  # over the load window, the sampler's and the reads' own subtracted
    other_databases_xacts: int
    broadcast: BroadcastRun | None


@dataclass(frozen=True, slots=True)
class _Window:
    """The load's span, and the CPU and SQL spent in it."""

    start: float
    end: float
    cpu_seconds: dict[str, float]
    statements: int
    other_xacts: int


async def measure(stage: Stage, args: argparse.Namespace) -> Measured:
    """The warm-up, the broadcast (if any), the load; the sampler runs from the broadcast's
    send (or the load's start) until the broadcast is final (or the load is)."""
    for sim in stage.sims:
        await sim.reset_stats()
    warm = await _warm_up(stage, args)
    # the warm-up's commits reach pg_stat_database late too (see STATS_FLUSH_S)
    flush = bool(stage.warm_targets) and stage.statement_source == "xact_commit"
    await asyncio.sleep(STATS_FLUSH_S if flush else IDLE_BEFORE_S)
    t0 = time.monotonic()
    b_id = await _start_broadcast(stage) if stage.broadcast else None
    submitted = load.Submitted()
    timeline = Timeline(
        stage.pool,
        stage.tx.app_id,
        b_id,
        statements.count_sql(stage.statement_source),
        submitted,
        interval=args.interval,
        t0=t0,
        max_seconds=3 * args.timeout + args.broadcast_lead,
        finished_before=warm.accepted,
    )
    timeline.start()
    try:
        sending_at = await _until_sending(timeline, args.timeout) if b_id else 0.0
        if b_id:
            await asyncio.sleep(args.broadcast_lead)
        window = await _load(stage, args, timeline, submitted, t0)
        final_at = await _until_final(timeline, args.timeout) if b_id else None
    finally:
        await timeline.stop()
    run = None
    if b_id is not None:
        assert stage.broadcast is not None
        app = stage.broadcast.app
        path = f"/v1/apps/{app.code}/messages/{b_id}"
        report = await campaign._call(stage.http, "GET", path, app.server_key)
        run = BroadcastRun(b_id, sending_at, final_at, report)
    return Measured(
        submitted=submitted,
        warm_up=warm,
        samples=timeline.samples,
        load_window=(window.start, window.end),
        cpu_seconds=window.cpu_seconds,
        statements=window.statements,
        other_databases_xacts=window.other_xacts,
        broadcast=run,
    )


async def _warm_up(stage: Stage, args: argparse.Namespace) -> load.Submitted:
    """``--warmup`` messages to users of their own, before anything is measured, waited
    for until final: a worker's first lane claims open its HTTP/2 connections (and get
    FCM's OAuth token), which is a worker's start, not a transactional send."""
    warm = load.Submitted()
    users = [t.user for t in stage.warm_targets]
    if not users:
        return warm
    work = load.calls(users, args.batch)
    concurrency = min(args.concurrency, len(work))
    port, app = stage.port, stage.tx.app
    t0 = time.monotonic()
    await load.drive("127.0.0.1", port, app, work, concurrency=concurrency, submitted=warm, t0=t0)
    for _ in range(math.ceil(args.timeout / WARM_UP_POLL_S) + 1):
        final = await stage.pool.fetchval(FINAL_SQL, stage.tx.app_id, list(broadcast.FINAL))
        if final >= warm.accepted:
            return warm
        await asyncio.sleep(WARM_UP_POLL_S)
    raise SystemExit(f"bench: the warm-up's messages not all final after {args.timeout} s")


async def _start_broadcast(stage: Stage) -> str:
    assert stage.broadcast is not None
    app = stage.broadcast.app
    body = {"target": {"all": True}, "notification": {"title": "Big sale", "body": "Today"}}
    sent = await campaign._call(
        stage.http, "POST", f"/v1/apps/{app.code}/messages", app.server_key, body
    )
    message_id: str = sent["message_id"]
    return message_id


async def _until_sending(timeline: Timeline, timeout: float) -> float:
    try:
        seen = await timeline.wait_for(
            lambda s: s.broadcast_status == "sending" or s.broadcast_final, timeout
        )
    except TimeoutError:
        raise SystemExit(f"bench: the broadcast was not sending after {timeout} s") from None
    return seen.seconds


async def _until_final(timeline: Timeline, timeout: float) -> float | None:
    try:
        return (await timeline.wait_for(lambda s: s.broadcast_final, timeout)).seconds
    except TimeoutError:
        return None  # reported as not finished


async def _load(
    stage: Stage,
    args: argparse.Namespace,
    timeline: Timeline,
    submitted: load.Submitted,
    t0: float,
) -> _Window:
    """The transactional load, from the first request until a sample sees every accepted
    message final, with CPU and statements read at both ends."""
    work = load.calls([t.user for t in stage.targets], args.batch)
    groups = broadcast._process_groups(stage.api_pid, set(stage.worker_pids), stage.sims)
    cpu_before = {k: procstat.cpu_seconds(v) for k, v in groups.items()}
    before = await _counts(stage, timeline)
    start = timeline.now()
    await load.drive(
        "127.0.0.1",
        stage.port,
        stage.tx.app,
        work,
        concurrency=args.concurrency,
        submitted=submitted,
        t0=t0,
    )
    try:
        last = await timeline.wait_for(lambda s: s.finished >= submitted.accepted, args.timeout)
    except TimeoutError:
        raise SystemExit(f"bench: messages not all final {args.timeout} s after the load") from None
    # the PostgreSQL tree again: backends started during the run (their CPU so far is
    # theirs; those already gone are in the postmaster's reaped-children CPU)
    groups["postgresql"] = procstat.tree(procstat.named_roots("postgres"))
    cpu = {k: procstat.cpu_seconds(v) - cpu_before[k] for k, v in groups.items()}
    if stage.statement_source == "xact_commit":
        await asyncio.sleep(STATS_FLUSH_S)
    after = await _counts(stage, timeline)
    # minus the sampler's statements (one per sample), the first reading of the count and
    # the second reading of the other databases' (see _counts)
    own = after.samples - before.samples + 2
    statements_run = after.statements - before.statements - own
    return _Window(start, last.seconds, cpu, statements_run, after.other - before.other)


@dataclass(frozen=True, slots=True)
class _Counts:
    statements: int
    other: int  # transactions of the server's other databases
    samples: int  # taken so far (each is one statement)


async def _counts(stage: Stage, timeline: Timeline) -> _Counts:
    """Two statements: the other databases' transactions, then this one's count."""
    samples = len(timeline.samples)
    count_sql = statements.count_sql(stage.statement_source)
    other = await stage.pool.fetchval(statements.OTHER_XACTS_SQL)
    return _Counts(await stage.pool.fetchval(count_sql), other, samples)

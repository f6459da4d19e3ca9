"""``python -m benchmarks.ratelimit [--devices N] [--rate R]``: the whole pipeline (granian
simulators, ``pushcore api``, ``pushcore worker --processes 2 --threads 4``, as real
processes on this machine), a seeded registry of N installations (iOS, Android, Web; 5%
dead), and one broadcast with ``rate_per_minute: R``, followed until done.

Sends are counted as answered in the ledger (delivered + removed + failed), sampled every
0.5 s; the figures are the sends per 10-second window from the send request on, against
the target ``R / 6`` per window, and the total time against ``N / R`` minutes.  Goal (issue
#16): every window but the first within ±10% of the target (the last, partial window is
shown but not judged), total time within ±10%.

Writes ``benchmarks/results/ratelimit[-<label>]-<date>.json`` and ``.png``; the JSON is
also the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import stackcli
from benchmarks.database import DEFAULT_DB
from benchmarks.fanout import broadcast, pipeline, statements
from pushcore.config import Settings
from pushcore.db.pool import Pool
from pushcore.demo import campaign
from pushcore.demo.seed import seed
from pushcore.gateways.simulators import Simulators

DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
WINDOW_S = 10.0
TOLERANCE = 0.10


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = stackcli.parse(_parser(), argv)
    result = stackcli.run(pipeline.with_stack(args, _measure))
    stackcli.report("ratelimit", result, args, summary=_summary, plot=_plot)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ratelimit", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=120_000)
    parser.add_argument("--rate", type=int, default=60_000, help="rate_per_minute")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--interval", type=float, default=0.5, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for done, s")
    stackcli.add_stack_arguments(parser, DEFAULT_DB, DEFAULT_REDIS, "the API and the workers")
    parser.add_argument("--label", default="", help="file name part: ratelimit-<label>-<date>")
    return parser


async def _measure(
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
        app, app_id = await pipeline._create_app(http, pool, settings, sims)
        seeded = await seed(pool, app_id, args.devices, sims.webpush.origin)
        await pipeline._settle(pool)
        print(f"ratelimit: seeded {seeded.total:,}", file=sys.stderr, flush=True)
        worker_pids = await pipeline._worker_pids(worker_main_pid, args.processes)
        body = {**broadcast.FIXED, "rate_per_minute": args.rate}
        samples: list[tuple[float, int]] = []
        sampler = asyncio.get_running_loop().create_task(
            _sample_simulators(sims, args.interval, samples)
        )
        try:
            sent = await broadcast.measure(
                http,
                pool,
                app,
                sims,
                api_pid,
                worker_pids,
                source,
                interval=args.interval,
                timeout=args.timeout,
                body=body,
            )
            ended = time.monotonic()
        finally:
            sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        stats = await asyncio.gather(*(sim.fetch_stats() for sim in sims))  # the last answers
        samples.append((time.monotonic(), sum(int(s["requests"]) for s in stats)))
    # the send request went out ``wall_s`` before the end (broadcast.measure's own clock)
    start = ended - sent.wall_s
    provider = [[round(t - start, 2), n] for t, n in samples if t >= start]
    return _report(args, settings, sent, provider)


async def _sample_simulators(
    sims: Simulators, interval: float, samples: list[tuple[float, int]]
) -> None:
    """Requests the three simulators have answered, every ``interval`` s: the sends as
    the providers see them (the ledger counts them at write-back, a batch at a time)."""
    while True:
        stats = await asyncio.gather(*(sim.fetch_stats() for sim in sims))
        samples.append((time.monotonic(), sum(int(s["requests"]) for s in stats)))
        await asyncio.sleep(interval)


def windows(timeline: list[list[float]], span: float) -> list[dict[str, float]]:
    """Sends per ``span``-second window from time 0 on, the count at each window edge
    interpolated linearly between the two samples around it (samples every 0.5 s would
    otherwise move an edge by up to half a second: 5% of a 10 s window)."""

    def at(t: float) -> float:
        before = [(s, n) for s, n, *_ in timeline if s <= t]
        after = [(s, n) for s, n, *_ in timeline if s > t]
        if not before:
            return 0.0
        (s0, n0), (s1, n1) = before[-1], (after[0] if after else before[-1])
        return n0 if s1 <= s0 else n0 + (n1 - n0) * (t - s0) / (s1 - s0)

    end = timeline[-1][0]
    out, start = [], 0.0
    while start < end:
        stop = min(start + span, end)
        sends = round(at(stop) - at(start))
        out.append({"start_s": start, "end_s": round(stop, 2), "sends": sends})
        start += span
    return out


def _report(
    args: argparse.Namespace,
    settings: Settings,
    sent: broadcast.Broadcast,
    provider: list[list[float]],
) -> dict[str, Any]:
    target = args.rate * WINDOW_S / 60
    # judged on the sends the simulators saw, from the send request on; the ledger's
    # write-backs beside them
    provider = [[0.0, 0], *provider]
    all_windows = windows(provider, WINDOW_S)
    ledger_windows = windows(sent.timeline, WINDOW_S)
    # judged: every full window after the first
    judged = [w for w in all_windows[1:] if w["end_s"] - w["start_s"] >= WINDOW_S - 1e-9]
    for w in (*all_windows, *ledger_windows):
        w["vs_target"] = round(w["sends"] / target - 1, 4) if target else 0.0
    answered = sent.counts["delivered"] + sent.counts["invalid_removed"] + sent.counts["failed"]
    expected_s = answered / args.rate * 60
    total = sent.timeline[-1][0]
    return {
        "benchmark": "ratelimit",
        "date": datetime.date.today().isoformat(),
        "config": {
            "devices": args.devices,
            "rate_per_minute": args.rate,
            "processes": args.processes,
            "threads": args.threads,
            "sample_interval_s": args.interval,
            "batch_size": settings.batch_size,
            "throttle_batch_seconds": settings.throttle_batch_seconds,
            "settings": dict(item.split("=", 1) for item in args.set),
        },
        "status": sent.status,
        "counts": sent.counts,
        "target_per_window": target,
        "window_seconds": WINDOW_S,
        "windows": all_windows,
        "windows_source": "requests answered by the simulators, sampled every interval",
        "ledger_windows": ledger_windows,
        "worst_judged_window_vs_target": max((abs(w["vs_target"]) for w in judged), default=None),
        "total_seconds": total,
        "expected_seconds": round(expected_s, 1),
        "total_vs_expected": round(total / expected_s - 1, 4) if expected_s else None,
        "goal": {
            "windows_within_10_percent": all(abs(w["vs_target"]) <= TOLERANCE for w in judged),
            "total_within_10_percent": abs(total / expected_s - 1) <= TOLERANCE,
        },
        "sql_statements": sent.statements,
        "statements_per_batch_note": "claim (reserve), claim (send), finish per batch",
        "cpu_seconds": {k: round(v, 2) for k, v in sent.cpu_seconds.items()},
        "cpu_seconds_per_1000": {
            k: round(v / answered * 1000, 4) for k, v in sent.cpu_seconds.items() if answered
        },
        # the PostgreSQL server is shared: transactions of other databases during the run
        "other_databases_xacts": sent.other_databases_xacts,
        "worker_peak_rss_mb": sent.worker_peak_rss_mb,
        "timeline_columns": broadcast.TIMELINE_COLUMNS,
        "timeline": sent.timeline,
        "provider_timeline_columns": ["seconds", "requests"],
        "provider_timeline": provider,
    }


def _summary(result: dict[str, Any]) -> str:
    lines = [
        f"ratelimit: {result['config']['devices']:,} devices at "
        f"{result['config']['rate_per_minute']:,}/min: {result['status']} in "
        f"{result['total_seconds']} s (expected {result['expected_seconds']} s, "
        f"{result['total_vs_expected']:+.1%})",
        f"  per {result['window_seconds']:g} s window (target {result['target_per_window']:,.0f}):",
    ]
    for w in result["windows"]:
        lines.append(
            f"    {w['start_s']:6.0f}-{w['end_s']:<6} {w['sends']:8,.0f}  {w['vs_target']:+.1%}"
        )
    lines.append(f"  goal: {result['goal']}")
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    per_second = result["config"]["rate_per_minute"] / 60
    points = result["provider_timeline"]
    step = max(1, round(2.0 / result["config"]["sample_interval_s"]))  # a 2 s window
    smooth = [
        ((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
        for (t0, n0, *_), (t1, n1, *_) in zip(points, points[step:], strict=False)
        if t1 > t0
    ]
    ax.plot([t for t, _ in smooth], [r for _, r in smooth], color="tab:blue", alpha=0.4,
            label="sends/s at the simulators (2 s window)")  # fmt: skip
    for w in result["windows"]:
        span = w["end_s"] - w["start_s"]
        if span > 0:
            ax.hlines(w["sends"] / span, w["start_s"], w["end_s"], color="tab:blue", linewidth=3)
    ax.plot([], [], color="tab:blue", linewidth=3, label="sends/s per 10 s window")
    ax.axhline(per_second, color="tab:green", linestyle="--", label="target")
    for k in (1 - TOLERANCE, 1 + TOLERANCE):
        ax.axhline(per_second * k, color="tab:green", linestyle=":", linewidth=0.8)
    ax.set_title(
        f"{result['config']['devices']:,} devices at rate_per_minute "
        f"{result['config']['rate_per_minute']:,}: {result['total_seconds']} s "
        f"(expected {result['expected_seconds']} s)"
    )
    ax.set_xlabel("seconds since the send request")
    ax.set_ylabel("notifications/s")
    ax.set_ylim(0, per_second * 1.6)
    ax.legend(loc="lower center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

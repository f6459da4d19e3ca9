"""The run's JSON document (figures, checks, baselines, goals) and its few-line summary."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from typing import Any

from benchmarks.fanout import statements
from benchmarks.fanout.broadcast import TIMELINE_COLUMNS, Broadcast
from pushcore.config import Settings


def tuning_of(args: argparse.Namespace) -> dict[str, str]:
    """The ``--set`` settings, by name."""
    return dict(item.split("=", 1) for item in args.set)


def build(
    args: argparse.Namespace,
    settings: Settings,
    *,
    seed_s: float,
    settled: dict[str, Any],
    sent: Broadcast,
    correct: dict[str, Any],
    baselines: dict[str, Any],
) -> dict[str, Any]:
    counts = sent.counts
    answered = counts["delivered"] + counts["invalid_removed"] + counts["failed"]
    per_k = 1000 / max(answered, 1)
    rate = answered / sent.wall_s
    sql_steady = statements.steady_state_per_1000(sent.timeline, counts["targeted"])
    rss_peak = max(sent.worker_peak_rss_mb.values(), default=0.0)
    bare = baselines["bare_transport"]["notifications_per_second"]
    created, finished = sent.created_at, sent.finished_at
    return {
        "benchmark": "fanout",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": _config(args, settings),
        "seed_seconds": round(seed_s, 1),
        "settled_before_send": settled,
        "wall_seconds_to_done": round(sent.wall_s, 2),
        "db_seconds_created_to_finished": (
            round((finished - created).total_seconds(), 2) if finished and created else None
        ),
        "notifications_per_second": round(rate),
        "counts": counts,
        "timeline_columns": TIMELINE_COLUMNS,
        "timeline": sent.timeline,
        "cpu_seconds": {k: round(v, 2) for k, v in sent.cpu_seconds.items()},
        "cpu_seconds_per_1000": {k: round(v * per_k, 4) for k, v in sent.cpu_seconds.items()},
        "worker_peak_rss_mb": rss_peak,
        "worker_peak_rss_mb_per_process": sent.worker_peak_rss_mb,
        "sql_statements": {
            "source": sent.statement_source,
            "measure": statements.measure_text(sent.statement_source),
            "total": sent.statements,
            "per_1000": round(sent.statements * per_k, 2),
            "steady_state_per_1000": sql_steady,
        },
        "postgresql_other_databases_xacts": sent.other_databases_xacts,
        "correct": correct,
        "baselines": baselines,
        "pipeline_vs_bare_transport": round(rate / bare, 3) if bare else None,
        "goals": _goals(
            args.devices,
            wall=sent.wall_s,
            rate=rate,
            bare=bare,
            rss_peak=rss_peak,
            sql_steady=sql_steady,
            sql_overall=sent.statements * per_k,
        ),
    }


def _config(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {
        "devices": args.devices,
        "processes": args.processes,
        "threads": args.threads,
        "batch_size": settings.batch_size,
        "max_in_flight_per_process": settings.max_in_flight,
        "connections_per_origin": settings.connections_per_origin,
        "tuning": tuning_of(args),
        "sample_interval_s": args.interval,
    }


def _goals(
    devices: int,
    *,
    wall: float,
    rate: float,
    bare: float,
    rss_peak: float,
    sql_steady: float | None,
    sql_overall: float,
) -> dict[str, Any]:
    """The goals of the design brief, each with the figure it is judged by."""
    # below a million devices the goal is judged by the time this rate would take
    measured = devices >= 1_000_000
    return {
        "broadcast_1m_le_60s": {
            "measured_s": round(wall, 1) if measured else None,
            "projected_1m_s_at_this_rate": round(1_000_000 / rate, 1),
            "met": (wall if measured else 1_000_000 / rate) <= 60,
        },
        "pipeline_ge_80pct_of_bare": {
            "ratio": round(rate / bare, 3) if bare else None,
            "met": bool(bare) and rate / bare >= 0.8,
        },
        "worker_rss_le_300mb": {"peak_mb": rss_peak, "met": rss_peak <= 300},
        "sql_le_3_per_1000": {
            "steady_state": sql_steady,
            "overall": round(sql_overall, 2),
            "met": sql_steady is not None and sql_steady <= 3,
        },
    }


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def summary(result: dict[str, Any]) -> str:
    base = result["baselines"]
    c = result["correct"]
    cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_seconds_per_1000"].items())
    return (
        f"fanout: {result['config']['devices']:,} devices, done in "
        f"{result['wall_seconds_to_done']} s = {result['notifications_per_second']:,}/s "
        f"(bare transport {base['bare_transport']['notifications_per_second']:,}/s, "
        f"pipeline at {result['pipeline_vs_bare_transport']:.0%}; naive "
        f"{base['naive']['notifications_per_second']:,}/s)\n"
        f"  CPU s per 1,000: {cpu}\n"
        f"  worker peak RSS {result['worker_peak_rss_mb']} MB; SQL statements per 1,000: "
        f"{result['sql_statements']['steady_state_per_1000']} steady, "
        f"{result['sql_statements']['per_1000']} overall ({result['sql_statements']['source']})\n"
        f"  correct: {c['ok']} (live exactly once {c['live_delivered_exactly_once']}, dead "
        f"deleted {c['dead_deleted']})"
    )

"""The run's JSON document (figures, timeline, checks, goals) and its few-line summary."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from benchmarks.fanout import report as fanout_report
from benchmarks.fanout import statements
from benchmarks.registration import _percentile
from benchmarks.transactional import load
from benchmarks.transactional.measure import STATS_FLUSH_S
from benchmarks.transactional.timeline import COLUMNS, Sample
from pushcore.db.pool import Record

if TYPE_CHECKING:
    from benchmarks.transactional.measure import BroadcastRun, Measured
    from benchmarks.transactional.stage import Stage

GOAL_PER_SECOND = 2000
GOAL_SUBMIT_P99_MS = 50.0
GOAL_FINISHED_P99_MS = 1000.0
HISTOGRAM_BINS = 40


def skipped(args: argparse.Namespace, why: str) -> dict[str, Any]:
    """The document of a run that did not happen, and why."""
    return {"benchmark": "transactional", "skipped": why, "config": _config_of_args(args)}


def build(
    args: argparse.Namespace,
    stage: Stage,
    measured: Measured,
    rows: list[Record],
    correct: dict[str, Any],
    broadcast_correct: dict[str, Any] | None,
) -> dict[str, Any]:
    sub = measured.submitted
    submit = _submit(sub, args.batch)
    warm_users = {t.user for t in stage.warm_targets}
    warm = [r for r in rows if r["external_user_id"] in warm_users]
    rows = [r for r in rows if r["external_user_id"] not in warm_users]
    e2e = _end_to_end(rows)
    latency = _latency([r["created_to_finished_s"] for r in rows if r["finished_at"]])
    per = 1 / max(sub.accepted, 1)
    during = _during_broadcast(args, measured, rows) if measured.broadcast else None
    if during is not None:
        during["correct"] = broadcast_correct
    return {
        "benchmark": "transactional",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": fanout_report._machine(),
        "config": {**_config_of_args(args), "batch_size": stage.settings.batch_size},
        "users_with_installations_targeted": len(stage.targets),
        "warm_up": {
            "messages": len(warm),
            "created_to_finished_ms": percentiles_ms(
                [r["created_to_finished_s"] for r in warm if r["finished_at"]]
            ),
        },
        "seed_seconds": round(stage.seed_s, 1),
        "settled_before_send": stage.settled,
        "submit": submit,
        "end_to_end": e2e,
        "created_to_finished_ms": latency,
        "load_window_s": [round(t, 2) for t in measured.load_window],
        "cpu_seconds": {k: round(v, 2) for k, v in measured.cpu_seconds.items()},
        "cpu_seconds_per_message": {k: round(v * per, 5) for k, v in measured.cpu_seconds.items()},
        "sql_statements": {
            "source": stage.statement_source,
            "measure": statements.measure_text(stage.statement_source),
            "total": measured.statements,
            "per_message": round(measured.statements * per, 2),
            # xact_commit is read this long after the window (PostgreSQL flushes an idle
            # backend's counts late), so the idle system's statements of those seconds count
            "read_after_window_s": STATS_FLUSH_S if stage.statement_source == "xact_commit" else 0,
        },
        "postgresql_other_databases_xacts": measured.other_databases_xacts,
        "includes_broadcast_work": during is not None,
        "timeline_columns": COLUMNS,
        "timeline": [s.row() for s in measured.samples],
        "during_broadcast": during,
        "correct": correct,
        "goals": _goals(submit, e2e, latency, during),
    }


def _config_of_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "devices": args.devices,
        "messages": args.messages,
        "warmup_messages": args.warmup,
        "concurrency": args.concurrency,
        "batch": args.batch or None,
        "during_broadcast": args.during_broadcast,
        "broadcast_lead_s": args.broadcast_lead,
        "processes": args.processes,
        "threads": args.threads,
        "tuning": fanout_report.tuning_of(args),
        "sample_interval_s": args.interval,
    }


def percentiles_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max and mean of seconds, in ms (None of nothing)."""
    if not values_s:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(_percentile(list(values_s), 0.50), 1),
        "p90": round(_percentile(list(values_s), 0.90), 1),
        "p99": round(_percentile(list(values_s), 0.99), 1),
        "max": round(max(values_s) * 1000, 1),
        "mean": round(sum(values_s) * 1000 / len(values_s), 1),
    }


def _submit(sub: load.Submitted, batch: int) -> dict[str, Any]:
    # per message: each accepted message's latency is that of the call that carried it
    per_message = [a.latency for a in sub.answered for _ in range(a.accepted)]
    span = (sub.last_answer or 0.0) - (sub.first_sent or 0.0)
    return {
        "accepted": sub.accepted,
        "calls": len(sub.answered),
        "errors": sub.errors,
        "seconds": round(span, 2),
        "accepted_per_second": round(sub.accepted / span) if span > 0 else None,
        "latency_ms": percentiles_ms(per_message),
        "latency_of": (
            f"a call of up to {batch} messages (each message's is its call's)"
            if batch
            else "a request of one message"
        ),
    }


def _end_to_end(rows: list[Record]) -> dict[str, Any]:
    """First message created to last one finished, by PostgreSQL's clock."""
    done = [r for r in rows if r["finished_at"] is not None]
    if not done:
        return {"messages_done": 0, "seconds": None, "messages_per_second": None}
    first = min(r["created_at"] for r in rows)
    last = max(r["finished_at"] for r in done)
    seconds = (last - first).total_seconds()
    return {
        "messages_done": sum(1 for r in rows if r["status"] == "done"),
        "first_created_to_last_finished_s": round(seconds, 2),
        "messages_per_second": round(len(done) / seconds) if seconds > 0 else None,
    }


def _latency(values_s: list[float]) -> dict[str, Any]:
    """Percentiles and a histogram of created -> finished (ms)."""
    out: dict[str, Any] = percentiles_ms(values_s)
    top = max(values_s, default=0.0) * 1000
    width = top / HISTOGRAM_BINS if top > 0 else 1.0
    counts = [0] * HISTOGRAM_BINS
    for v in values_s:
        counts[min(HISTOGRAM_BINS - 1, int(v * 1000 / width))] += 1
    out["histogram"] = {"bin_ms": round(width, 2), "counts": counts}
    return out


def rate(samples: list[Sample], start: float, end: float) -> float | None:
    """The broadcast's notifications/s between the first and last samples in [start, end]."""
    inside = [s for s in samples if start <= s.seconds <= end]
    if len(inside) < 2 or inside[-1].seconds <= inside[0].seconds:
        return None
    first, last = inside[0], inside[-1]
    return round(
        (last.broadcast_answered - first.broadcast_answered) / (last.seconds - first.seconds)
    )


def _during_broadcast(
    args: argparse.Namespace, measured: Measured, rows: list[Record]
) -> dict[str, Any]:
    run = measured.broadcast
    assert run is not None
    load_start, load_end = measured.load_window
    overlap_end = load_end if run.final_at is None else min(load_end, run.final_at)
    before = rate(measured.samples, run.sending_at, load_start)
    during = rate(measured.samples, load_start, overlap_end)
    answered = _answered_at(measured.samples, overlap_end) - _answered_at(
        measured.samples, load_start
    )
    return {
        "devices": args.during_broadcast,
        "message_id": run.message_id,
        "status": run.report["status"],
        "counts": run.report["counts"],
        "sending_seen_at_s": round(run.sending_at, 2),
        "finished_seen_at_s": None if run.final_at is None else round(run.final_at, 2),
        "finished": run.final_at is not None,
        "finished_during_load": run.final_at is not None and run.final_at <= load_end,
        "db_seconds_created_to_finished": _db_seconds(run.report),
        "notifications_per_second_before_load": before,
        "notifications_per_second_during_load": during,
        "during_vs_before": round(during / before, 3) if before and during is not None else None,
        "answered_during_load": answered,
        "transactional_while_sending": _while_sending(run, measured, rows),
    }


def _answered_at(samples: list[Sample], at: float) -> int:
    """The broadcast's answered count in the last sample at or before ``at``."""
    seen = [s.broadcast_answered for s in samples if s.seconds <= at]
    return seen[-1] if seen else 0


def _db_seconds(report: dict[str, Any]) -> float | None:
    created, finished = report.get("created_at"), report.get("finished_at")
    if not created or not finished:
        return None
    span = datetime.datetime.fromisoformat(finished) - datetime.datetime.fromisoformat(created)
    return round(span.total_seconds(), 2)


def _while_sending(run: BroadcastRun, measured: Measured, rows: list[Record]) -> dict[str, Any]:
    """The transactional figures of what went while the broadcast was unfinished: messages
    created before its finished_at (PostgreSQL), calls sent before a sample saw it final."""
    end = run.report.get("finished_at")
    cutoff = datetime.datetime.fromisoformat(end) if end else None
    inside = [r for r in rows if r["finished_at"] and (cutoff is None or r["created_at"] < cutoff)]
    calls = [
        a.latency
        for a in measured.submitted.answered
        if run.final_at is None or a.sent_at < run.final_at
        for _ in range(a.accepted)
    ]
    return {
        "messages": len(inside),
        "of_messages": len(rows),
        "created_to_finished_ms": percentiles_ms([r["created_to_finished_s"] for r in inside]),
        "submit_latency_ms": percentiles_ms(calls),
    }


def _goals(
    submit: dict[str, Any],
    e2e: dict[str, Any],
    latency: dict[str, Any],
    during: dict[str, Any] | None,
) -> dict[str, Any]:
    """The design brief's goals, each with the figure it is judged by."""
    rate_ = e2e["messages_per_second"]
    submit_p99, finished_p99 = submit["latency_ms"]["p99"], latency["p99"]
    goals: dict[str, Any] = {
        "end_to_end_ge_2000_per_s": {
            "messages_per_second": rate_,
            "met": rate_ is not None and rate_ >= GOAL_PER_SECOND,
        },
        "submit_p99_le_50ms": {"p99_ms": submit_p99, "met": _le(submit_p99, GOAL_SUBMIT_P99_MS)},
        "created_to_finished_p99_le_1s": {
            "p99_ms": finished_p99,
            "met": _le(finished_p99, GOAL_FINISHED_P99_MS),
        },
    }
    if during is None:
        goals["same_p99_during_broadcast"] = {"met": None, "why": "run with --during-broadcast"}
        return goals
    inside = during["transactional_while_sending"]
    s99, f99 = inside["submit_latency_ms"]["p99"], inside["created_to_finished_ms"]["p99"]
    goals["same_p99_during_broadcast"] = {
        "messages_while_sending": inside["messages"],
        "submit_p99_ms": s99,
        "created_to_finished_p99_ms": f99,
        "met": _le(s99, GOAL_SUBMIT_P99_MS) and _le(f99, GOAL_FINISHED_P99_MS),
    }
    return goals


def _le(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


def summary(result: dict[str, Any]) -> str:
    cfg, sub, e2e = result["config"], result["submit"], result["end_to_end"]
    lat, slat = result["created_to_finished_ms"], sub["latency_ms"]
    cpu = ", ".join(f"{k} {v * 1000:.2f}" for k, v in result["cpu_seconds_per_message"].items())
    mode = f"in calls of {cfg['batch']}" if cfg["batch"] else "one per request"
    lines = [
        f"transactional: {sub['accepted']:,} of {cfg['messages']:,} messages accepted ({mode}, "
        f"{cfg['concurrency']} clients): submit {sub['accepted_per_second']}/s, p50/p90/p99 "
        f"{slat['p50']}/{slat['p90']}/{slat['p99']} ms; end to end {e2e['messages_per_second']}/s; "
        f"created->finished p50/p90/p99 {lat['p50']}/{lat['p90']}/{lat['p99']} ms",
        f"  CPU ms per message: {cpu}; SQL statements per message "
        f"{result['sql_statements']['per_message']} ({result['sql_statements']['source']})",
    ]
    during = result["during_broadcast"]
    if during is not None:
        inside = during["transactional_while_sending"]
        lines.append(
            f"  during a broadcast to {during['devices']:,}: it went "
            f"{during['notifications_per_second_before_load']}/s before the load, "
            f"{during['notifications_per_second_during_load']}/s during it; finished "
            f"{during['finished']} (during the load {during['finished_during_load']}); "
            f"{inside['messages']:,} messages created while it was sending: created->finished "
            f"p99 {inside['created_to_finished_ms']['p99']} ms"
        )
    c = result["correct"]
    b_ok = "" if during is None else f"; broadcast correct {(during['correct'] or {}).get('ok')}"
    goals = ", ".join(
        f"{k} {'met' if g['met'] else 'missed' if g['met'] is False else '-'}"
        for k, g in result["goals"].items()
    )
    lines.append(f"  correct: {c['ok']}{b_ok}; goals: {goals}")
    return "\n".join(lines)

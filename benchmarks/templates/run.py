"""``python -m benchmarks.templates [--devices N] [--rounds R]``: the whole pipeline (granian
simulators, ``pushcore api``, ``pushcore worker --processes 2 --threads 4``, all as real
processes on the same machine), a seeded registry whose users have a first name and a city
and whose installations registered a language (en-US, fr-FR, pt-BR, de-DE, pt-PT); one
warm-up broadcast with fixed content (it also deletes the 5% dead registrations), then R
rounds of the templated broadcast and the fixed one, alternated.  Then the render cost per
recipient on its own: the worker's own function over a sample of the registry's
recipients, in this process.  With ``--recipients N`` (0 to skip), two more sends to the
first N users: a plain ``external_user_ids`` send and a ``recipients`` send with an order
number and an item count per user rendered into the body.

Writes ``benchmarks/results/templates[-<label>]-<date>.json`` and ``.png``; the JSON is
also the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from benchmarks import stackcli
from benchmarks.database import DEFAULT_DB
from benchmarks.fanout import broadcast, pipeline, statements
from benchmarks.fanout.broadcast import FIXED, Broadcast
from pushcore.config import Settings
from pushcore.db import batches as batches_queries
from pushcore.db.pool import Pool
from pushcore.db.recipients import RECIPIENT_JSON
from pushcore.demo import campaign
from pushcore.demo.seed import seed
from pushcore.fanout.render import Programs, render_batch, stored_notification
from pushcore.fanout.request import SendRequest
from pushcore.gateways.simulators import Simulators
from pushcore.providers import registry
from pushcore.providers.base import Registration

DEFAULT_REDIS = "redis://127.0.0.1:6379/5"

# two user attributes, three localizations (and the default for en-US and de-DE)
TEMPLATED: dict[str, Any] = {
    "target": {"all": True},
    "notification": {
        "title": "Hi {{ user.attributes.first_name | default: 'there' }}",
        "body": "News from {{ user.attributes.city | default: 'your city' }}",
    },
    "localizations": {
        "fr": {
            "title": "Salut {{ user.attributes.first_name | default: 'toi' }}",
            "body": "Nouvelles de {{ user.attributes.city | default: 'ta ville' }}",
        },
        "pt": {
            "title": "Olá {{ user.attributes.first_name | default: 'você' }}",
            "body": "Notícias de {{ user.attributes.city | default: 'sua cidade' }}",
        },
        "pt-BR": {"title": "Oi {{ user.attributes.first_name | default: 'você' }}"},
    },
}
# the same with the badge from the user's unread count, stored in the inboxes (so each
# recipient's count is loaded by the batch claim, and counts the message itself)
TEMPLATED_INBOX: dict[str, Any] = {
    **TEMPLATED,
    "notification": {**TEMPLATED["notification"], "badge": "{{ inbox.unread }}"},
    "inbox": True,
}
# inbox content every user holds before the runs with --inbox: this many broadcasts (one
# row each, the user's entry written when it reads) and one message stored per user
INBOX_BROADCASTS = 3
GOAL_RATIO = 0.70  # templated at least 70% of the fixed broadcast's rate


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = stackcli.parse(_parser(), argv)
    result = stackcli.run(pipeline.with_stack(args, _measure))
    stackcli.report("templates", result, args, summary=_summary, plot=_plot)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.templates")
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2, help="templated/fixed pairs")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--render-sample", type=int, default=20_000)
    parser.add_argument(
        "--inbox",
        action="store_true",
        help="also the templated broadcast with badge {{ inbox.unread }}, and the batch-load "
        "cost per recipient with and without the unread counts",
    )
    parser.add_argument(
        "--recipients", type=int, default=100_000, help="users of the recipients send (0: none)"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for done, s")
    stackcli.add_stack_arguments(parser, DEFAULT_DB, DEFAULT_REDIS, "the API and the workers")
    parser.add_argument("--label", default="", help="file name part: templates-<label>-<date>")
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
        started = time.monotonic()
        seeded = await seed(pool, app_id, args.devices, sims.webpush.origin)
        await _personalize(pool, app_id)
        await pipeline._settle(pool)
        _progress(f"seeded {seeded.total:,} in {time.monotonic() - started:.1f} s")
        worker_pids = await pipeline._worker_pids(worker_main_pid, args.processes)

        async def one(kind: str, body: dict[str, Any]) -> dict[str, Any]:
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
            figures = _figures(kind, sent)
            _progress(f"{kind}: {figures['notifications_per_second']:,}/s")
            return figures

        warmup = await one("warm-up (fixed)", FIXED)
        kinds = [("templated", TEMPLATED), ("fixed", FIXED)]
        if args.inbox:
            await _fill_inboxes(http, app, pool, seeded.users)
            kinds.append((INBOX_KIND, TEMPLATED_INBOX))
        runs = [await one(kind, body) for _ in range(args.rounds) for kind, body in kinds]
        users = min(args.recipients, seeded.users)
        lists = (
            [
                await one(kind, body)
                for kind, body in (
                    ("users (plain)", _user_send(users, with_data=False)),
                    ("recipients (per-user data)", _user_send(users, with_data=True)),
                )
            ]
            if users
            else []
        )
    render = await _render_cost(pool, app_id, settings, args.render_sample)
    result = _report(args, warmup, runs, render)
    if args.inbox:
        result["batch_load"] = await _load_cost(pool, app_id)
    result["user_lists"] = {"users": users, "runs": lists}
    result["correct"] = result["correct"] and all(
        r["status"] == "done" and r["counts"]["failed"] == 0 for r in lists
    )
    return result


INBOX_KIND = "templated + inbox.unread"
RATE = "notifications_per_second"


async def _fill_inboxes(
    http: aiohttp.ClientSession, app: broadcast.App, pool: Pool, users: int
) -> None:
    """Every user holds INBOX_BROADCASTS unread broadcasts and one message of its own
    (inbox only: nothing is pushed), so that each unread count has rows to read."""
    path = f"/v1/apps/{app.code}/messages"
    note = {"notification": {"title": "Note"}, "push": False, "inbox": True}
    sends = [{**note, "target": {"all": True}} for _ in range(INBOX_BROADCASTS)]
    ids = [f"user-{n}" for n in range(1, users + 1)]
    for start in range(0, len(ids), 100_000):
        sends.append({**note, "target": {"external_user_ids": ids[start : start + 100_000]}})
    for body in sends:
        sent = await campaign._call(http, "POST", path, app.server_key, body)
        message_id = uuid.UUID(sent["message_id"])
        for _ in range(3000):  # planned within 10 minutes, or the run goes on without
            status = await pool.fetchval(
                "SELECT status FROM messages WHERE public_id = $1", message_id
            )
            if status in ("done", "failed"):
                break
            await asyncio.sleep(0.2)


async def _load_cost(pool: Pool, app_id: int, rounds: int = 3) -> dict[str, Any]:
    """µs per recipient of the batch claim's load statement (``batches.load``: the same
    statement without the claim), over every batch of the last templated broadcast and of
    the last one whose templates read ``inbox.unread``, alternated, best of ``rounds``."""
    found: dict[str, Any] = {}
    for kind, unread in (("templated", False), (INBOX_KIND, True)):
        found[kind] = await pool.fetch(
            """
            SELECT b.id, cardinality(b.installation_ids) AS n FROM batches b
            WHERE b.message_id = (
                SELECT max(m.id) FROM messages m WHERE m.app_id = $1
                  AND m.notification ? 'templated'
                  AND (m.notification -> 'templated' ? 'unread') = $2)
            """,
            app_id,
            unread,
        )
    best: dict[str, float] = {}
    for _ in range(rounds):
        for kind, batches in found.items():
            t0 = time.perf_counter()
            for batch in batches:
                await batches_queries.load(pool, batch["id"])
            took = time.perf_counter() - t0
            best[kind] = min(best.get(kind, took), took)
    out: dict[str, Any] = {"rounds": rounds, "inbox_broadcasts": INBOX_BROADCASTS}
    for kind, batches in found.items():
        n = sum(b["n"] for b in batches)
        out[kind] = {
            "batches": len(batches),
            "recipients": n,
            "us_per_recipient": round(best[kind] / max(n, 1) * 1e6, 2),
        }
    return out


def _user_send(users: int, *, with_data: bool) -> dict[str, Any]:
    """A send to ``user-1`` … ``user-<users>`` (the seed's external ids)."""
    ids = [f"user-{n}" for n in range(1, users + 1)]
    if not with_data:
        return {
            "target": {"external_user_ids": ids},
            "notification": {"title": "Your order", "body": "has shipped"},
        }
    return {
        "target": {
            "recipients": [
                {"external_user_id": u, "data": {"order": f"A-{n}", "items": n % 7 + 1}}
                for n, u in enumerate(ids)
            ]
        },
        "notification": {
            "title": "Your order",
            "body": "{{ recipient.data.order }} ({{ recipient.data.items }} items) has shipped",
        },
    }


async def _personalize(pool: Pool, app_id: int) -> None:
    """Users get a first name and a city, installations a language and an app version."""
    await pool.execute(
        """
        UPDATE users SET attributes = jsonb_build_object(
            'first_name', 'Name' || id,
            'city', (ARRAY['Lisbon', 'Paris', 'Berlin', 'Recife'])[1 + id % 4])
        WHERE app_id = $1
        """,
        app_id,
        timeout=600,
    )
    await pool.execute(
        """
        UPDATE installations SET device = jsonb_build_object(
            'language', (ARRAY['en-US', 'fr-FR', 'pt-BR', 'de-DE', 'pt-PT'])[1 + id % 5],
            'app_version', '7.' || (id % 10))
        WHERE app_id = $1
        """,
        app_id,
        timeout=600,
    )


def _figures(kind: str, sent: Broadcast) -> dict[str, Any]:
    counts = sent.counts
    answered = counts["delivered"] + counts["invalid_removed"] + counts["failed"]
    per_k = 1000 / max(answered, 1)
    return {
        "kind": kind,
        "status": sent.status,
        "counts": counts,
        "wall_seconds_to_done": round(sent.wall_s, 2),
        "notifications_per_second": round(answered / sent.wall_s),
        "cpu_seconds_per_1000": {k: round(v * per_k, 4) for k, v in sent.cpu_seconds.items()},
        "sql_statements_per_1000": round(sent.statements * per_k, 2),
    }


async def _render_cost(pool: Pool, app_id: int, settings: Settings, sample: int) -> dict[str, Any]:
    """µs per recipient of the worker's per-recipient rendering (templates, the provider's
    payload), over ``sample`` iOS recipients of the registry, in this process."""
    rows = await pool.fetch(
        f"""
        SELECT i.id, i.token, {RECIPIENT_JSON} AS recipient
        FROM installations i LEFT JOIN users u ON u.id = i.user_id
        WHERE i.app_id = $1 AND i.platform = 'ios' ORDER BY i.id LIMIT $2
        """,
        app_id,
        sample,
    )
    stored = await pool.fetchval(
        "SELECT credentials FROM app_credentials WHERE app_id = $1 AND platform = 'ios'", app_id
    )
    provider = registry.spec("ios").make_provider(stored, settings)
    notification = stored_notification(msgspec.convert(TEMPLATED, SendRequest))
    program = Programs().get(0, notification)
    registrations = [Registration(installation_id=r["id"], token=r["token"]) for r in rows]
    recipients = [r["recipient"] for r in rows]
    t0 = time.process_time()
    done = render_batch(
        program,
        provider,
        notification,
        registrations,
        recipients,
        render_seconds=settings.template_render_seconds,
    )
    cpu = time.process_time() - t0
    fixed = msgspec.convert(FIXED["notification"], registry.Notification)
    t0 = time.process_time()
    for _ in range(1000):
        provider.render(fixed)
    fixed_cpu = (time.process_time() - t0) / 1000
    return {
        "recipients": len(rows),
        "rendered": len(done.registrations),
        "failed": done.failed,
        "distinct_payloads": len({id(p) for p in done.payloads.payloads}),
        "templated_us_per_recipient": round(cpu / max(len(rows), 1) * 1e6, 1),
        "fixed_us_per_message": round(fixed_cpu * 1e6, 1),
    }


def _report(
    args: argparse.Namespace,
    warmup: dict[str, Any],
    runs: list[dict[str, Any]],
    render: dict[str, Any],
) -> dict[str, Any]:
    def median(kind: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["kind"] == kind))

    def worker_cpu(kind: str) -> float:
        return float(
            statistics.median(
                r["cpu_seconds_per_1000"]["workers"] for r in runs if r["kind"] == kind
            )
        )

    templated = median("templated", "notifications_per_second")
    fixed = median("fixed", "notifications_per_second")
    return {
        "benchmark": "templates",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {
            "devices": args.devices,
            "rounds": args.rounds,
            "processes": args.processes,
            "threads": args.threads,
            "set": args.set,
        },
        "warmup": warmup,
        "runs": runs,
        "median": {
            "templated_notifications_per_second": templated,
            "fixed_notifications_per_second": fixed,
            "templated_over_fixed": round(templated / fixed, 3),
            **(
                {
                    "inbox_unread_notifications_per_second": median(
                        INBOX_KIND, "notifications_per_second"
                    )
                }
                if any(r["kind"] == INBOX_KIND for r in runs)
                else {}
            ),
            "worker_cpu_seconds_per_1000": {
                "templated": worker_cpu("templated"),
                "fixed": worker_cpu("fixed"),
            },
        },
        "render": render,
        "goal": {
            "templated_over_fixed_at_least": GOAL_RATIO,
            "met": templated / fixed >= GOAL_RATIO,
        },
        "correct": all(r["status"] == "done" and r["counts"]["failed"] == 0 for r in runs),
    }


def _summary(result: dict[str, Any]) -> str:
    m = result["median"]
    return (
        (
            f"templates: {result['config']['devices']:,} devices, medians of "
            f"{result['config']['rounds']}: templated"
            f" {m['templated_notifications_per_second']:,.0f}/s,"
            f" fixed {m['fixed_notifications_per_second']:,.0f}/s"
            f" ({m['templated_over_fixed']:.0%}); worker CPU-s per 1,000"
            f" {m['worker_cpu_seconds_per_1000']['templated']} vs"
            f" {m['worker_cpu_seconds_per_1000']['fixed']}; render"
            f" {result['render']['templated_us_per_recipient']} µs per recipient"
        )
        + "".join(
            f"\ntemplates: batch load {kind}: {v['us_per_recipient']} µs per recipient"
            for kind, v in result.get("batch_load", {}).items()
            if isinstance(v, dict)
        )
        + "".join(
            f"\ntemplates: {r['kind']} to {result['user_lists']['users']:,} users:"
            f" {r['wall_seconds_to_done']} s to done, {r['sql_statements_per_1000']} SQL per 1,000"
            for r in result["user_lists"]["runs"]
        )
    )


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    labels = [f"{i + 1}. {r['kind']}" for i, r in enumerate(runs)]
    colors = ["tab:orange" if r["kind"] == "templated" else "tab:blue" for r in runs]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    rate.bar(labels, [r["notifications_per_second"] for r in runs], color=colors)
    rate.set_ylabel("notifications/s")
    rate.set_title(f"{result['config']['devices']:,}-device broadcast, in run order")
    cpu.bar(labels, [r["cpu_seconds_per_1000"]["workers"] for r in runs], color=colors)
    cpu.set_ylabel("worker CPU-s per 1,000")
    cpu.set_title(f"render {result['render']['templated_us_per_recipient']} µs per recipient")
    for axis in (rate, cpu):
        axis.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _progress(text: str) -> None:
    print(f"templates: {text}", file=sys.stderr, flush=True)

"""The run's correctness.  Transactional (the measured messages and the warm-up's): every
targeted live registration accepted exactly once and none of the app's others accepted
(the simulators' per-token tables), every targeted dead registration deleted and every
live one kept (the registry), every message ``done`` with the counts its user's
registrations make.  The broadcast: the fan-out benchmark's check, when it finished."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from benchmarks.fanout import checks as fanout_checks
from benchmarks.fanout.registrations import PROVIDER_OF
from benchmarks.transactional import load
from pushcore.db.pool import Pool, Record
from pushcore.demo.seed import sim_key

if TYPE_CHECKING:
    from benchmarks.transactional.measure import BroadcastRun, Measured
    from benchmarks.transactional.stage import Stage, Target

MESSAGES_SQL = """
    SELECT request -> 'target' -> 'external_user_ids' ->> 0 AS external_user_id, status,
           targeted, delivered, invalid_removed, failed, retrying, created_at, finished_at,
           extract(epoch FROM finished_at - created_at)::float8 AS created_to_finished_s
    FROM messages WHERE app_id = $1 ORDER BY id
"""


async def messages_of(pool: Pool, app_id: int) -> list[Record]:
    """Every message of the app, with the user it went to and its own times."""
    return list(await pool.fetch(MESSAGES_SQL, app_id))


async def check(stage: Stage, rows: list[Record], measured: Measured) -> dict[str, Any]:
    """The measured messages and the warm-up's together: both were sent after the
    simulators' counts were reset."""
    tables = {p: await fanout_checks._token_table(stage.sims[n]) for p, n in PROVIDER_OF.items()}
    targets = stage.targets + stage.warm_targets
    out = _accepted(stage, targets, tables)
    out.update(await _registry(stage, targets))
    out.update(_messages(targets, rows, [measured.submitted, measured.warm_up]))
    out["ok"] = (
        out["targeted_live_not_accepted_exactly_once"] == 0
        and out["untargeted_live_accepted"] == 0
        and out["targeted_dead_accepted"] == 0
        and out["untracked_by_simulators"] == 0
        and out["targeted_dead_left_in_registry"] == 0
        and out["live_lost_from_registry"] == 0
        and out["every_message_done"]
        and out["counts_add_up"]
        and out["all_requested_accepted"]
    )
    return out


def _accepted(
    stage: Stage, targets: list[Target], tables: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the simulators' per-token tables say of the app's registrations."""
    targeted_live = {k for t in targets for k in t.live}
    targeted_dead = {k for t in targets for k in t.dead}
    by_times: Counter[str] = Counter()
    untargeted = dead = 0
    for platform, table in tables.items():
        tokens = table.get("tokens", {})
        for key in stage.tx.seeded.live[platform]:
            n = tokens.get(key, {}).get("accepted", 0)
            if (platform, key) in targeted_live:
                by_times[str(n)] += 1
            else:
                untargeted += n > 0
        dead += sum(
            1 for p, k in targeted_dead if p == platform and tokens.get(k, {}).get("accepted")
        )
    return {
        "targeted_live": len(targeted_live),
        "targeted_dead": len(targeted_dead),
        "targeted_live_by_times_accepted": dict(sorted(by_times.items())),
        "targeted_live_not_accepted_exactly_once": len(targeted_live) - by_times["1"],
        "untargeted_live_accepted": untargeted,
        "targeted_dead_accepted": dead,
        "untracked_by_simulators": sum(t.get("untracked", 0) for t in tables.values()),
    }


async def _registry(stage: Stage, targets: list[Target]) -> dict[str, int]:
    """Targeted dead registrations still there, live ones of the app gone."""
    rows = await stage.pool.fetch(
        "SELECT platform, token FROM installations WHERE app_id = $1", stage.tx.app_id
    )
    left = {(r["platform"], sim_key(r["platform"], r["token"])) for r in rows}
    live = stage.tx.seeded.live
    return {
        "targeted_dead_left_in_registry": sum(
            1 for t in stage.targets for k in t.dead if k in left
        ),
        "live_lost_from_registry": sum(
            1 for p, keys in live.items() for k in keys if (p, k) not in left
        ),
    }


def _messages(
    targets: list[Target], rows: list[Record], submitted: list[load.Submitted]
) -> dict[str, Any]:
    """Each user's message: one, done, with the counts its registrations make."""
    by_user = Counter(r["external_user_id"] for r in rows)
    expected = {t.user: t for t in targets}
    requested = len(targets)
    accepted = sum(s.accepted for s in submitted)
    ids = [i for s in submitted for i in s.message_ids]
    errors: Counter[str] = Counter()
    for s in submitted:
        errors.update(s.errors)
    wrong = 0
    for r in rows:
        t = expected.get(r["external_user_id"])
        answered = r["delivered"] + r["invalid_removed"] + r["failed"] + r["retrying"]
        wrong += (
            t is None
            or r["targeted"] != len(t.live) + len(t.dead)
            or (r["delivered"], r["invalid_removed"]) != (len(t.live), len(t.dead))
            or answered != r["targeted"]
        )
    statuses = Counter(r["status"] for r in rows)
    ids_match = len(ids) == len(set(ids)) == len(rows)
    return {
        "messages_requested": requested,  # the measured ones and the warm-up's
        "messages_accepted": accepted,
        "messages_in_database": len(rows),
        "message_statuses": dict(statuses),
        "users_with_more_than_one_message": sum(1 for n in by_user.values() if n > 1),
        "messages_with_wrong_counts": wrong,
        "submit_errors": dict(errors),
        "all_requested_accepted": accepted == requested and not errors,
        "every_message_done": statuses["done"] == len(rows) == requested,
        "counts_add_up": wrong == 0 and ids_match and max(by_user.values(), default=0) <= 1,
    }


async def broadcast_check(stage: Stage, run: BroadcastRun | None) -> dict[str, Any] | None:
    """The fan-out benchmark's check of the broadcast; None without one, a note when it
    did not finish (exactly once cannot be judged then)."""
    if run is None or stage.broadcast is None:
        return None
    if run.final_at is None:
        return {"ok": False, "checked": False, "why": "the broadcast did not finish"}
    b = stage.broadcast
    result = await fanout_checks.check(
        stage.pool, b.app_id, stage.sims, b.seeded, run.report["counts"]
    )
    result["checked"] = True
    return result

"""The broadcast's correctness: every live registration accepted exactly once and no dead
one accepted (the simulators' per-token tables), every dead registration deleted and every
live one kept (the registry), and the message's report agreeing with both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from benchmarks.fanout.registrations import PROVIDER_OF
from pushcore.db.pool import Pool
from pushcore.demo.seed import Seeded, sim_key
from pushcore.gateways.client import h2_request
from pushcore.gateways.core import STATS_PATH
from pushcore.gateways.simulators import RunningSimulator, Simulators

STATS_TOKENS_TIMEOUT = 300.0
# the per-token table of one simulator: ~150 bytes of JSON per token, 450,000 APNs
# tokens in a million-device run
STATS_TOKENS_MAX_BYTES = 1024 * 1024 * 1024


@dataclass
class _Accepted:
    """What the simulators' per-token tables say of the seeded registrations."""

    live_not_once: int = 0
    dead_accepted: int = 0
    untracked: int = 0
    live_by_times: dict[str, int] = field(default_factory=dict)


async def check(
    pool: Pool, app_id: int, sims: Simulators, seeded: Seeded, counts: dict[str, int]
) -> dict[str, Any]:
    """Exactly once from the simulators' per-token counts; dead deleted from the registry."""
    seen = await _accepted(sims, seeded)
    dead_left, live_lost = await _left_in_registry(pool, app_id, seeded)
    live = sum(len(s) for s in seeded.live.values())
    dead = sum(len(s) for s in seeded.dead.values())
    out: dict[str, Any] = {
        "live": live,
        "dead": dead,
        "live_not_accepted_exactly_once": seen.live_not_once,
        "live_by_times_accepted": dict(sorted(seen.live_by_times.items())),
        "dead_accepted": seen.dead_accepted,
        "untracked_by_simulators": seen.untracked,
        "dead_left_in_registry": dead_left,
        "live_lost_from_registry": live_lost,
        "report_delivered_matches": counts["delivered"] == live,
        "report_invalid_removed_matches": counts["invalid_removed"] == dead,
    }
    out["live_delivered_exactly_once"] = seen.live_not_once == 0 and seen.untracked == 0
    out["dead_deleted"] = dead_left == 0 and live_lost == 0
    out["ok"] = (
        out["live_delivered_exactly_once"]
        and out["dead_deleted"]
        and seen.dead_accepted == 0
        and out["report_delivered_matches"]
        and out["report_invalid_removed_matches"]
    )
    return out


async def _accepted(sims: Simulators, seeded: Seeded) -> _Accepted:
    seen = _Accepted()
    for plat, name in PROVIDER_OF.items():
        stats = await _token_table(sims[name])
        tokens = stats.get("tokens", {})
        seen.untracked += stats.get("untracked", 0)
        for t in seeded.live[plat]:
            n = tokens.get(t, {}).get("accepted", 0)
            seen.live_by_times[str(n)] = seen.live_by_times.get(str(n), 0) + 1
            seen.live_not_once += n != 1
        seen.dead_accepted += sum(
            1 for t in seeded.dead[plat] if t in tokens and tokens[t]["accepted"]
        )
    return seen


async def _left_in_registry(pool: Pool, app_id: int, seeded: Seeded) -> tuple[int, int]:
    """Dead registrations still there, live ones gone."""
    rows = await pool.fetch("SELECT platform, token FROM installations WHERE app_id = $1", app_id)
    left = {(r["platform"], sim_key(r["platform"], r["token"])) for r in rows}
    dead_left = sum(1 for p, keys in seeded.dead.items() for k in keys if (p, k) in left)
    live_lost = sum(1 for p, keys in seeded.live.items() for k in keys if (p, k) not in left)
    return dead_left, live_lost


async def _token_table(sim: RunningSimulator) -> dict[str, Any]:
    status, _, body = await h2_request(
        sim.origin,
        sim.ca_file,
        "GET",
        STATS_PATH + "?tokens=1",
        timeout=STATS_TOKENS_TIMEOUT,
        max_response=STATS_TOKENS_MAX_BYTES,
    )
    if status != 200:
        raise RuntimeError(f"{sim.name}: GET {STATS_PATH}?tokens=1 answered {status}")
    stats: dict[str, Any] = json.loads(body)
    return stats

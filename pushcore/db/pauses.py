"""Provider-wide pauses on a storm: many batches of one app and platform failing mostly
with retryable errors (503, 429, lost connections) within a short window pause that
platform's sends for the app in every worker, instead of each batch burning its attempts
alone.  The pause is a row of ``provider_pauses``, read by the claim statements in
:mod:`pushcore.db.batches` (a paused batch is simply not claimed).

Counting happens only for failing batches, so a healthy provider costs no statement here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pushcore.db.pool import Pool


@dataclass(frozen=True, slots=True)
class StormState:
    window_started: datetime.datetime
    failures: int
    paused_until: datetime.datetime | None


def storm_step(
    state: StormState, now: datetime.datetime, *, window: float, batches: int, pause: float
) -> tuple[StormState, bool]:
    """One more failing batch: the new state, and whether it starts a pause.  Pure.

    Batches finishing during a pause were in flight when it began: not counted.  The
    ``batches``-th failure within ``window`` seconds of the first starts a pause of
    ``pause`` seconds; the count then restarts at ``batches - 1`` in a window that opens
    when the pause ends, so the first batch that fails so after it pauses again at once
    (one batch probes the provider, not ``batches`` of them)."""
    if state.paused_until is not None and state.paused_until > now:
        return state, False
    span = datetime.timedelta(seconds=window)
    if state.window_started <= now < state.window_started + span:
        failures, started = state.failures + 1, state.window_started
    else:
        failures, started = 1, now
    if failures >= batches:
        until = now + datetime.timedelta(seconds=pause)
        return StormState(until, batches - 1, until), True
    return StormState(started, failures, state.paused_until), False


async def record_storm(
    pool: Pool, app_id: int, platform: str, *, window: float, batches: int, pause: float
) -> bool:
    """Count one failing batch of ``app_id``/``platform``; True when it started a pause.
    Concurrent workers serialize on the row lock."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO provider_pauses (app_id, platform) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            app_id,
            platform,
        )
        row = await conn.fetchrow(
            "SELECT window_started, failures, paused_until, now() AS now "
            "FROM provider_pauses WHERE app_id = $1 AND platform = $2 FOR UPDATE",
            app_id,
            platform,
        )
        assert row is not None  # inserted above, and apps are never deleted mid-send
        state = StormState(row["window_started"], row["failures"], row["paused_until"])
        new, started = storm_step(state, row["now"], window=window, batches=batches, pause=pause)
        if new != state:
            await conn.execute(
                "UPDATE provider_pauses SET window_started = $3, failures = $4, "
                "paused_until = $5, pauses = pauses + $6 WHERE app_id = $1 AND platform = $2",
                app_id,
                platform,
                new.window_started,
                new.failures,
                new.paused_until,
                int(started),
            )
    return started


async def postpone_if_paused(
    pool: Pool, batch_id: int, *, spread: float
) -> tuple[str, float] | None:
    """After a claim that got nothing: if the batch waits because its app's provider is
    paused, move its ``not_before`` past the pause's end (so the reaper does not enqueue it
    again meanwhile) and return its platform and the seconds until then; None otherwise.

    Each batch comes back at a random point within ``spread`` seconds after the pause:
    were they all due at its end, they would all be claimed at once, all fail, and the
    provider would see the whole backlog again before the first failure paused it anew."""
    row = await pool.fetchrow(
        """
        UPDATE batches b
        SET not_before = p.paused_until + random() * make_interval(secs => $2),
            enqueued_at = now()
        FROM provider_pauses p
        WHERE b.id = $1 AND b.state = 'queued' AND p.app_id = b.app_id
          AND p.platform = b.platform AND p.paused_until > now()
        RETURNING b.platform, extract(epoch FROM b.not_before - now())::float8 AS delay
        """,
        batch_id,
        spread,
    )
    return None if row is None else (row["platform"], row["delay"])


async def pause_for(pool: Pool, app_id: int, platform: str, seconds: float) -> bool:
    """A provider's 429 with Retry-After: pause ``app_id``'s sends to ``platform`` for
    ``seconds`` in every worker at once (the claim statements skip paused batches).  Only
    lengthens a pause (a new one counts in ``pauses``); True when it started or lengthened
    one.  The storm counter is left alone: it still counts
    failing batches, and a pause it starts may end later than this one."""
    row = await pool.fetchval(
        """
        INSERT INTO provider_pauses AS p (app_id, platform, paused_until, pauses)
        VALUES ($1, $2, now() + make_interval(secs => $3), 1)
        ON CONFLICT (app_id, platform) DO UPDATE
            SET paused_until = EXCLUDED.paused_until,
                pauses = p.pauses + (p.paused_until IS NULL OR p.paused_until <= now())::int
            WHERE p.paused_until IS NULL OR p.paused_until < EXCLUDED.paused_until
        RETURNING true
        """,
        app_id,
        platform,
        seconds,
    )
    return bool(row)

"""The reaper's cluster-wide pass clock (``reaper_passes``), on the real database: however
many worker processes run the reaper loop, a pass runs once per interval between them."""

from __future__ import annotations

import asyncio
import secrets

from pushcore.config import Settings
from pushcore.db import reaping
from pushcore.db.pool import Pool, create_pool


async def _claim(pool: Pool, name: str, every: float) -> bool:
    # what the reaper loop does: the lock, then the clock, in one transaction
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", reaping.REAPER_LOCK):
            return False
        return await reaping.claim_pass(conn, name, every)


async def test_a_pass_is_claimed_once_per_interval(settings: Settings) -> None:
    pool = await create_pool(settings, max_size=6)
    name = f"test-{secrets.token_hex(4)}"  # the workers of other tests use reap and prune
    try:
        await pool.execute("INSERT INTO reaper_passes (name) VALUES ($1)", name)
        assert await _claim(pool, name, 60)
        assert not await _claim(pool, name, 60)  # ran just now
        assert not await _claim(pool, "no-such-pass", 0.001)

        # five "processes" each trying every 20 ms for 1.2 s, with a 0.5 s interval: two or
        # three passes between them (without the clock: one per try that got the lock)
        passes = 0

        async def process() -> None:
            nonlocal passes
            for _ in range(60):
                passes += await _claim(pool, name, 0.5)
                await asyncio.sleep(0.02)

        await pool.execute("UPDATE reaper_passes SET ran_at = '-infinity' WHERE name = $1", name)
        await asyncio.gather(*(process() for _ in range(5)))
        assert 2 <= passes <= 4, passes
    finally:
        await pool.execute("DELETE FROM reaper_passes WHERE name = $1", name)
        await pool.close()

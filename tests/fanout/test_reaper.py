"""The reaper's statements on the real database: its cluster-wide pass clock
(``reaper_passes``), and its scan of stuck batches racing a worker's claim."""

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
    ran_ago = "UPDATE reaper_passes SET ran_at = now() - make_interval(secs => $2) WHERE name = $1"
    try:
        await pool.execute("INSERT INTO reaper_passes (name) VALUES ($1)", name)
        assert await _claim(pool, name, 60)
        assert not await _claim(pool, name, 60)  # ran just now
        assert not await _claim(pool, "no-such-pass", 0.001)
        # due once 90% of the interval has gone by (processes wake at slightly different times)
        await pool.execute(ran_ago, name, 50)
        assert not await _claim(pool, name, 60)
        await pool.execute(ran_ago, name, 55)
        assert await _claim(pool, name, 60)

        # five "processes" trying over and over while the pass is due: one pass between
        # them (without the clock: one per try that got the lock)
        passes = 0

        async def process() -> None:
            nonlocal passes
            for _ in range(20):
                claimed = await _claim(pool, name, 60)  # not `passes += await`: it
                passes += claimed  # would read passes before the await and lose counts
                await asyncio.sleep(0)

        await pool.execute("UPDATE reaper_passes SET ran_at = '-infinity' WHERE name = $1", name)
        await asyncio.gather(*(process() for _ in range(5)))
        assert passes == 1
    finally:
        await pool.execute("DELETE FROM reaper_passes WHERE name = $1", name)
        await pool.close()


async def test_a_batch_claimed_during_the_scan_is_left_alone(settings: Settings) -> None:
    """The scan reads a batch as queued too long; before its update lands, a worker claims
    the batch.  The update must see the claim and leave the batch alone (not turn it back
    into a queued batch that a second worker would send again)."""
    pool = await create_pool(settings, max_size=4)
    app_id = None
    try:
        app_id = await pool.fetchval(
            "INSERT INTO apps (code, name, identity_secret) VALUES ($1, 'reaper', 's') "
            "RETURNING id",
            f"app_{secrets.token_hex(6)}",
        )
        message_id = await pool.fetchval(
            "INSERT INTO messages (app_id, status, request, notification, platforms) "
            "VALUES ($1, 'sending', '{}', '{}', '{ios}') RETURNING id",
            app_id,
        )
        batch_id = await pool.fetchval(
            "INSERT INTO batches (message_id, app_id, platform, installation_ids, enqueued_at)"
            " VALUES ($1, $2, 'ios', '{1}', now() - interval '1 hour') RETURNING id",
            message_id,
            app_id,
        )
        async with pool.acquire() as worker:
            claim = worker.transaction()
            await claim.start()
            # the worker's claim, not yet committed: it holds the row
            await worker.execute(
                "UPDATE batches SET state = 'sending', claims = claims + 1, "
                "lease_until = now() + interval '2 minutes' WHERE id = $1",
                batch_id,
            )
            scan = asyncio.create_task(reaping.stuck_batches(pool, 30, 10_000))
            # the scan has read the batch as queued and now waits for the row lock
            for _ in range(100):
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE '%WITH stuck AS%'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting, "the scan never waited for the claimed row"
            await claim.commit()
        handed_out = await scan
        assert batch_id not in [r["id"] for r in handed_out]
        row = await pool.fetchrow("SELECT state, claims FROM batches WHERE id = $1", batch_id)
        assert row is not None
        assert (row["state"], row["claims"]) == ("sending", 1)
    finally:
        await pool.execute("DELETE FROM apps WHERE id = $1", app_id)
        await pool.close()

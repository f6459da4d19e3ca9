"""The overview's registrations removed by reason: a provider's dead answer (counted on the
message), the stale prune and uninstalls (counted by the deleting statements)."""

from __future__ import annotations

import re

import asyncpg

from pushcore.db.maintenance import prune_stale
from tests.console.conftest import Client, Seeded
from tests.console.helpers import page, sign_in
from tests.registry.helpers import bearer


def _removed(text: str, reason: str, window: str) -> int:
    found = re.search(rf'id="removed-{reason}-{window}">([\d,]+)<', text)
    assert found, f"no {reason} {window} count"
    return int(found.group(1).replace(",", ""))


async def test_removed_by_reason(seeded: Seeded, api: Client, database_url: str) -> None:
    news = seeded.news
    # an uninstall through the device API
    gone = await api.delete(
        f"/v1/installations/{news[0].installation_id}", headers=bearer(news[0].secret)
    )
    assert gone.status == 204
    # two tokens not refreshed for 90 days, pruned (as the workers' daily pass does)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE installations SET token_updated_at = now() - interval '90 days'"
            " WHERE public_id = ANY($1::uuid[])",
            [news[1].installation_id, news[2].installation_id],
        )
    finally:
        await conn.close()
    from pushcore.config import load_settings
    from pushcore.db.pool import create_pool

    pool = await create_pool(load_settings(environ={}, database_url=database_url), max_size=1)
    try:
        assert await prune_stale(pool, 60) >= 2  # other tests' stale rows may go too
    finally:
        await pool.close()
    await sign_in(api, seeded.server_key)
    text = await page(api, f"/console/apps/{seeded.code}/")
    assert _removed(text, "uninstalled", "day") == 1
    assert _removed(text, "uninstalled", "week") == 1
    assert _removed(text, "stale", "day") == 2
    assert _removed(text, "dead", "week") == 0  # nothing sent yet

"""Per-recipient results through the real pipeline: API → workers → simulators → the
finish statement's results rows → ``GET …/messages/{id}/results``."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest

from pushcore.client import PushcoreClient
from pushcore.config import Settings
from pushcore.db import results as result_queries
from pushcore.db.pool import create_pool
from pushcore.gateways.core import Faults
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign
from tests.registry.helpers import ADMIN, Client, bearer, json

pytestmark = pytest.mark.slow


async def _page(c: Campaign, message_id: str, status: int = 200, **query: str) -> Any:
    """One page of the results route, answering ``status``."""
    return await json(
        await c.client.get(
            f"/v1/apps/{c.code}/messages/{message_id}/results", params=query, headers=c.server
        ),
        status,
    )


async def _all(c: Campaign, message_id: str, **query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await _page(c, message_id, 200, limit="3", cursor=cursor, **query)
        found += page["results"]
        assert len(page["results"]) <= 3
        if page["next_cursor"] is None:
            return found
        cursor = page["next_cursor"]


async def test_results_name_each_recipients_fate_and_page(
    sim_ca_dir: Path, api: Client, launch: Launch
) -> None:
    # Web Push answers 503 to everything: those end failed after PUSHCORE_MAX_ATTEMPTS
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, faults={"webpush": Faults(error_every=1, error_status=503)}
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        ios = [await c.register("ios", i, live=i % 3 != 0) for i in range(12)]
        android = [await c.register("android", i) for i in range(5)]
        web = [await c.register("web", i) for i in range(4)]
        await c.personalize(ios[0], "ann")  # dead and personalized: removed, user kept
        await c.personalize(android[0], "bob")
        await launch(sims, PUSHCORE_MAX_ATTEMPTS="2", PUSHCORE_RETRY_BASE_SECONDS="0.1")
        sent = await c.send(target={"all": True})
        msg = await c.wait(sent["message_id"])
        assert msg["status"] == "done", msg

        everything = await _all(c, sent["message_id"])
        by_id = {r["installation_id"]: r for r in everything}
        assert len(everything) == len(by_id) == 21  # each recipient once, across pages
        for d in ios:
            r = by_id[d.installation_id]
            expected = ("delivered", "ok") if d.live else ("invalid", "Unregistered")
            assert (r["platform"], r["outcome"], r["reason"], r["attempts"]) == (
                "ios",
                *expected,
                1,
            )
        assert by_id[ios[0].installation_id]["external_user_id"] == "ann"
        assert by_id[android[0].installation_id]["external_user_id"] == "bob"
        assert by_id[android[1].installation_id]["external_user_id"] is None
        for d in web:
            r = by_id[d.installation_id]
            assert (r["outcome"], r["attempts"]) == ("failed", 2), r
            assert r["reason"].startswith("retries_exhausted:"), r
        counts = msg["counts"]
        tally = {o: sum(r["outcome"] == o for r in everything) for o in ("delivered", "failed")}
        assert (counts["delivered"], counts["failed"]) == (tally["delivered"], tally["failed"])

        invalid = await _all(c, sent["message_id"], outcome="invalid")
        dead = {d.installation_id for d in ios if not d.live}
        assert {r["installation_id"] for r in invalid} == dead
        assert counts["invalid_removed"] == len(dead)
        failed = await _all(c, sent["message_id"], outcome="failed")
        assert {r["installation_id"] for r in failed} == {d.installation_id for d in web}

        # the Python client pages the same way
        base = str(api.make_url("")).rstrip("/")
        async with PushcoreClient(base, c.code, c.server_key) as push:
            seen = [r async for r in push.results(sent["message_id"], page_size=2)]
            assert seen == everything
            dead_seen = [r async for r in push.results(sent["message_id"], outcome="invalid")]
            assert dead_seen == invalid


async def test_results_bad_input_and_isolation(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    await c.register("ios", 1)
    await launch(sims)
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    mid = sent["message_id"]
    bad = base64.urlsafe_b64encode(b"1.x").decode()
    for query, field in [
        ({"outcome": "retry"}, "outcome"),
        ({"outcome": ""}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "not base64!"}, "cursor"),
        ({"cursor": bad}, "cursor"),
    ]:
        body = await _page(c, mid, 422, **query)
        assert body["error"]["field"] == field, (query, body)
    assert len((await _page(c, mid, limit="1000"))["results"]) == 1
    await _page(c, "00000000-0000-0000-0000-000000000000", 404)
    await _page(c, "not-a-uuid", 404)
    resp = await api.get(f"/v1/apps/{c.code}/messages/{mid}/results")
    assert resp.status == 401
    other = await json(await api.post("/v1/apps", json={"name": "other"}, headers=ADMIN), 201)
    resp = await api.get(
        f"/v1/apps/{c.code}/messages/{mid}/results", headers=bearer(other["server_key"])
    )
    assert resp.status == 404
    resp = await api.get(
        f"/v1/apps/{other['app_code']}/messages/{mid}/results",
        headers=bearer(other["server_key"]),
    )
    assert resp.status == 404  # another app's message


async def test_results_are_pruned_after_the_retention(
    api: Client, sims: Simulators, launch: Launch, fanout_settings: Settings
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    for i in range(3):
        await c.register("android", i)
    await launch(sims)
    old = (await c.send(target={"all": True}))["message_id"]
    await c.wait(old)
    new = (await c.send(target={"all": True}))["message_id"]
    await c.wait(new)
    pool = await create_pool(fanout_settings)
    try:
        await pool.execute(
            """UPDATE batch_results SET created_at = now() - interval '31 days'
               WHERE message_id = (SELECT id FROM messages WHERE public_id = $1)""",
            uuid.UUID(old),
        )
        assert await result_queries.prune(pool, 30, chunk=1) == 1
    finally:
        await pool.close()
    assert (await _page(c, old))["results"] == []
    assert len((await _page(c, new))["results"]) == 3


async def test_cancelled_batches_have_results(api: Client, sims: Simulators) -> None:
    # no worker: the lane's batches, written at submit, are still queued when cancelled
    c = Campaign(api, sims)
    await c.create_app()
    devices = [await c.register("ios", i) for i in range(3)]
    sent = await c.send(target={"installation_ids": [d.installation_id for d in devices]})
    await json(
        await api.delete(f"/v1/apps/{c.code}/messages/{sent['message_id']}", headers=c.server),
        200,
    )
    page = await _page(c, sent["message_id"], outcome="failed")
    assert sorted((r["installation_id"], r["reason"]) for r in page["results"]) == sorted(
        (d.installation_id, "cancelled") for d in devices
    )
    assert page["next_cursor"] is None

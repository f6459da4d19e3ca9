"""Raw-token sends end to end: addresses the sender keeps itself, sent like any message,
dead ones counted ``invalid`` and deleted from the registry only where registered there
too; and the bad-input table of the ``tokens`` target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pushcore.gateways import fates
from pushcore.gateways.core import Faults
from pushcore.gateways.fates import Fate
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign
from tests.registry.helpers import ADMIN, Client, bearer, ec_pem, json

pytestmark = pytest.mark.slow


def _web(sub: fates.WebPushSubscription) -> dict[str, Any]:
    return {
        "platform": "web",
        "web_subscription": {
            "endpoint": sub.endpoint,
            "keys": {"p256dh": sub.p256dh, "auth": sub.auth},
        },
    }


async def test_raw_tokens_with_mixed_fates(sim_ca_dir: Path, api: Client, launch: Launch) -> None:
    # Web Push answers 503 to everything: raw-token retries carry their addresses along
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, faults={"webpush": Faults(error_every=1, error_status=503)}
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        registered_dead = await c.register("ios", 100, live=False)
        registered_live = await c.register("ios", 101)
        ios_live = [fates.apns_token(i, Fate.LIVE, seed=9) for i in range(5)]
        ios_dead = [fates.apns_token(i, Fate.DEAD, seed=9) for i in range(10, 13)]
        fcm_live = [fates.fcm_token(i, Fate.LIVE, seed=9) for i in range(4)]
        fcm_bad = [fates.fcm_token(i, Fate.INVALID, seed=9) for i in range(10, 12)]
        web = [fates.webpush_subscription(i, seed=9, origin=sims.webpush.origin) for i in range(3)]
        tokens: list[dict[str, Any]] = [
            *({"platform": "ios", "token": t} for t in ios_live + ios_dead),
            {"platform": "ios", "token": ios_live[0].upper()},  # the same token again
            {"platform": "ios", "token": registered_dead.token},
            {"platform": "ios", "token": registered_live.token},
            *({"platform": "android", "token": t} for t in fcm_live + fcm_bad),
            *(_web(s) for s in web),
        ]
        await launch(sims, PUSHCORE_MAX_ATTEMPTS="2", PUSHCORE_BATCH_SIZE="4")
        sent = await c.send(target={"tokens": tokens})
        msg = await c.wait(sent["message_id"])
        assert msg["status"] == "done", msg
        counts = msg["counts"]
        assert counts["targeted"] == 19
        assert (counts["delivered"], counts["invalid"], counts["invalid_removed"]) == (10, 6, 0)
        assert counts["failed"] == 3
        # the registry: only the registered dead token is gone
        assert not await c.exists(registered_dead)
        assert await c.exists(registered_live)
        for t in ios_live:
            assert sims.apns.counters.accepted(t) == 1
        for s in web:
            assert sims.webpush.counters.received(s.endpoint.rsplit("/", 1)[1]) == 2

        page = await json(
            await api.get(
                f"/v1/apps/{c.code}/messages/{sent['message_id']}/results",
                params={"limit": "1000"},
                headers=c.server,
            ),
            200,
        )
        by_suffix = {r["token_suffix"]: r for r in page["results"]}
        assert len(page["results"]) == len(by_suffix) == 19
        assert all(r["installation_id"] is None for r in page["results"])
        for t in ios_dead + fcm_bad + [registered_dead.token]:
            assert by_suffix[t[-8:]]["outcome"] == "invalid", by_suffix[t[-8:]]
        for t in ios_live + fcm_live + [registered_live.token]:
            assert by_suffix[t[-8:]]["outcome"] == "delivered"
        for s in web:
            r = by_suffix[s.endpoint[-8:]]
            assert (r["outcome"], r["attempts"], r["platform"]) == ("failed", 2, "web"), r


async def test_raw_token_bad_input(api: Client, sims: Simulators) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    live = fates.apns_token(1)
    sub = _web(fates.webpush_subscription(1, origin=sims.webpush.origin))
    keys = sub["web_subscription"]["keys"]

    def sub_with(**change: Any) -> dict[str, Any]:
        return {"platform": "web", "web_subscription": {**sub["web_subscription"], **change}}

    cases: list[tuple[dict[str, Any], str]] = [
        ({"target": {"tokens": []}}, "target.tokens"),
        ({"target": {"tokens": [{"platform": "ios", "token": live}] * 10_001}}, "target.tokens"),
        ({"target": {"tokens": [{"platform": "ios", "token": "zz"}]}}, "target.tokens[0].token"),
        ({"target": {"tokens": [{"platform": "ios"}]}}, "target.tokens[0].token"),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live}, {"platform": "ios"}]}},
            "target.tokens[1].token",
        ),
        (
            {"target": {"tokens": [{"platform": "android", "token": "a b"}]}},
            "target.tokens[0].token",
        ),
        (
            {"target": {"tokens": [{"platform": "ios", "token": "x" * 4097}]}},
            "target.tokens[0].token",
        ),
        ({"target": {"tokens": [{"platform": "bb", "token": live}]}}, "target.tokens[0].platform"),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live, "x": 1}]}},
            "target.tokens[0].x",
        ),
        (
            {
                "target": {
                    "tokens": [
                        {
                            "platform": "ios",
                            "token": live,
                            **{k: v for k, v in sub.items() if k != "platform"},
                        }
                    ]
                }
            },
            "target.tokens[0].token",
        ),
        (
            {"target": {"tokens": [{"platform": "web", "token": live}]}},
            "target.tokens[0].web_subscription",
        ),
        (
            {"target": {"tokens": [sub_with(endpoint="http://example.com/push/1")]}},
            "target.tokens[0].web_subscription.endpoint",
        ),
        # the one endpoint policy of registrations: no internal addresses, known hosts only
        (
            {"target": {"tokens": [sub_with(endpoint="https://169.254.169.254/latest")]}},
            "target.tokens[0].web_subscription.endpoint",
        ),
        (
            {"target": {"tokens": [sub_with(endpoint="https://push.example.net/p/1")]}},
            "target.tokens[0].web_subscription.endpoint",
        ),
        (
            {"target": {"tokens": [sub_with(endpoint="https://0xa9fea9fe/p")]}},
            "target.tokens[0].web_subscription.endpoint",
        ),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live}]}, "inbox": True},
            "inbox",
        ),
        (
            {
                "target": {"tokens": [{"platform": "ios", "token": live}]},
                "notification": {"title": "Hi {{ user.external_id }}"},
            },
            "notification",
        ),
        (
            {"target": {"tokens": [sub_with(keys={**keys, "p256dh": "AAAA"})]}},
            "target.tokens[0].web_subscription.keys.p256dh",
        ),
        (
            {"target": {"tokens": [sub_with(keys={**keys, "auth": "AAAA"})]}},
            "target.tokens[0].web_subscription.keys.auth",
        ),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live}]}, "platforms": ["android"]},
            "target.tokens[0].platform",
        ),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live}]}, "primary_only": True},
            "primary_only",
        ),
        (
            {"target": {"tokens": [{"platform": "ios", "token": live}], "all": True}},
            "target",
        ),
    ]
    for body, field in cases:
        answer = await c.send(422, **body)
        assert answer["error"]["field"] == field, (body if len(str(body)) < 500 else field, answer)
    # an app without credentials for a platform refuses its raw tokens
    body = {
        "name": "web only",
        "webpush": {"vapid_private_key": ec_pem(), "subject": "mailto:a@b.c"},
    }
    bare = await json(await api.post("/v1/apps", json=body, headers=ADMIN), 201)
    resp = await api.post(
        f"/v1/apps/{bare['app_code']}/messages",
        json={"target": {"tokens": [sub, {"platform": "ios", "token": live}]},
              "notification": {"title": "t"}},
        headers=bearer(bare["server_key"]),
    )  # fmt: skip
    answer = await json(resp, 422)
    assert answer["error"]["field"] == "target.tokens[1].platform", answer

"""Rate limits without workers: the bad-input tables of ``rate_per_minute`` and
``quotas``, what a rate does to a small list send (the planner, not the lane), and the
spacing rule's guarantees checked on a simulated schedule (pure)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from pushcore.fanout import throttle
from pushcore.gateways.simulators import Simulators
from tests.fanout.harness import Campaign
from tests.registry.helpers import ADMIN, Client, json

NOTE = {"title": "Hi"}

RATE_CASES: list[Any] = [0, -1, 10_000_001, 2**63, "600", 600.0, 1.5, True, [600], {"n": 1}]


@pytest.fixture
async def campaign(api: Client, sims: Simulators) -> Campaign:
    c = Campaign(api, sims)
    await c.create_app()
    return c


@pytest.mark.parametrize("rate", RATE_CASES)
async def test_rate_per_minute_bad_input(api: Client, campaign: Campaign, rate: Any) -> None:
    body = {"target": {"all": True}, "notification": NOTE, "rate_per_minute": rate}
    resp = await api.post(f"/v1/apps/{campaign.code}/messages", json=body, headers=campaign.server)
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == "rate_per_minute", answer


@pytest.mark.parametrize("rate", [1, 10_000_000, None])
async def test_rate_per_minute_bounds_are_accepted(
    api: Client, campaign: Campaign, rate: int | None
) -> None:
    body = {"target": {"all": True}, "notification": NOTE, "rate_per_minute": rate}
    resp = await api.post(f"/v1/apps/{campaign.code}/messages", json=body, headers=campaign.server)
    assert resp.status == 202, await resp.text()


async def test_a_small_list_send_with_a_rate_goes_through_the_planner(
    api: Client, campaign: Campaign
) -> None:
    """The lane plans at submit (202 says ``sending``); with a rate the same send is
    queued for the planner, whose batches take the rate's permits."""
    await campaign.personalize(await campaign.register("android", 1), "u1")
    lane = await campaign.send(target={"external_user_ids": ["u1"]})
    assert lane["status"] == "sending", lane
    throttled = await campaign.send(target={"external_user_ids": ["u1"]}, rate_per_minute=60)
    assert throttled["status"] == "queued", throttled


QUOTA_CASES: list[tuple[Any, str]] = [
    ({"fcm": {"per_minute": 0}}, "quotas.fcm.per_minute"),
    ({"fcm": {"per_minute": -1}}, "quotas.fcm.per_minute"),
    ({"fcm": {"per_minute": 10_000_001}}, "quotas.fcm.per_minute"),
    ({"fcm": {"per_minute": "600"}}, "quotas.fcm.per_minute"),
    ({"fcm": {"per_minute": 600.0}}, "quotas.fcm.per_minute"),
    ({"fcm": {"per_minute": True}}, "quotas.fcm.per_minute"),
    ({"apns": {"per_minute": 2.5}}, "quotas.apns.per_minute"),
    ({"webpush": {}}, "quotas.webpush.per_minute"),
    ({"fcm": {"per_minute": 5, "burst": 1}}, "quotas.fcm.burst"),
    ({"fcm": 600}, "quotas.fcm"),
    ({"gcm": {"per_minute": 600}}, "quotas.gcm"),
    ({"android": {"per_minute": 600}}, "quotas.android"),
    ([], "quotas"),
    (600, "quotas"),
]


@pytest.mark.parametrize(("quotas", "field"), QUOTA_CASES)
async def test_quotas_bad_input(api: Client, campaign: Campaign, quotas: Any, field: str) -> None:
    resp = await api.patch(f"/v1/apps/{campaign.code}", json={"quotas": quotas}, headers=ADMIN)
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == field, answer
    shown = await json(await api.get(f"/v1/apps/{campaign.code}", headers=ADMIN), 200)
    assert shown["quotas"] == {}  # nothing stored


async def test_quotas_set_change_and_unset(api: Client, campaign: Campaign) -> None:
    url = f"/v1/apps/{campaign.code}"

    async def patch(body: dict[str, Any]) -> Any:
        return (await json(await api.patch(url, json=body, headers=ADMIN), 200))["quotas"]

    assert await patch({"quotas": {"fcm": {"per_minute": 600_000}}}) == {
        "fcm": {"per_minute": 600_000}
    }
    # a provider left out keeps its quota; the credentials are untouched
    assert await patch({"quotas": {"apns": {"per_minute": 1}}}) == {
        "fcm": {"per_minute": 600_000},
        "apns": {"per_minute": 1},
    }
    assert await patch({"name": "renamed"}) == {
        "fcm": {"per_minute": 600_000},
        "apns": {"per_minute": 1},
    }
    shown = await json(await api.get(url, headers=campaign.server), 200)  # the app's own key
    assert shown["fcm"] is not None
    assert shown["quotas"]["apns"] == {"per_minute": 1}
    assert await patch({"quotas": {"apns": None}}) == {"fcm": {"per_minute": 600_000}}
    assert await patch({"quotas": {"fcm": {"per_minute": 10_000_000}}}) == {
        "fcm": {"per_minute": 10_000_000}
    }
    assert await patch({"quotas": None}) == {}
    # only the admin changes quotas
    resp = await api.patch(url, json={"quotas": None}, headers=campaign.server)
    assert resp.status == 401


# --- the spacing rule (pure) -----------------------------------------------------------------


def test_throttled_batch_sizes() -> None:
    assert throttle.batch_size(60_000, batch_seconds=0.1, cap=1000) == 100
    assert throttle.batch_size(1, batch_seconds=0.1, cap=1000) == 1
    assert throttle.batch_size(10_000_000, batch_seconds=0.1, cap=1000) == 1000
    assert throttle.planned_batch(1000, None, [], batch_seconds=0.1) == 1000
    assert throttle.planned_batch(1000, 60_000, [600], batch_seconds=0.1) == 1
    assert throttle.planned_batch(1000, None, [600_000], batch_seconds=0.1) == 1000
    assert throttle.spacing(60_000, 100, 1.0) == 61 / 59_901


LATE = 1.0  # PUSHCORE_THROTTLE_LATE_SECONDS


def _schedule(rate: int, sizes: list[int], batch: int) -> list[tuple[int, int]]:
    """The slots (µs) of batches all asking at time 0, by send_permit's rule: each starts at
    the bucket's tat, which then moves on by size * spacing rounded up to a µs."""
    spacing = throttle.spacing(rate, batch, LATE)
    tat, out = 0, []
    for n in sizes:
        out.append((tat, n))
        tat += math.ceil(n * spacing * 1e6)
    return out


@pytest.mark.parametrize("rate", [1, 7, 59, 60, 61, 600, 6_000, 60_000, 600_001, 10_000_000])
def test_no_60_second_window_gets_more_than_the_rate(rate: int) -> None:
    """Batches sent anywhere from their slot to LATE seconds after it (later ones take a
    new slot): every 60-second window (half-open) of send times gets at most the rate,
    every second at most twice the per-second rate plus one batch; and the rate is nearly
    reached."""
    rng = random.Random(rate)
    batch = throttle.batch_size(rate, batch_seconds=0.1, cap=1000)
    # full batches, and smaller ones (retries, a message's last batch) mixed in
    sizes = [batch if rng.random() < 0.7 else rng.randint(1, batch) for _ in range(300)]
    late_us = int(LATE * 1e6)
    slots = _schedule(rate, sizes, batch)
    for jitter in ("none", "random", "worst"):
        sends = sorted(
            (
                t
                + {"none": 0, "random": rng.randint(0, late_us), "worst": late_us * (k % 2)}[
                    jitter
                ],
                n,
            )
            for k, (t, n) in enumerate(slots)
        )
        for i, (start, _) in enumerate(sends):
            for window, limit in ((60_000_000, rate), (1_000_000, 2 * rate / 60 + batch)):
                inside = sum(n for t, n in sends[i:] if t < start + window)
                assert inside <= limit, (rate, jitter, window, start, inside)
    full = _schedule(rate, [batch] * 300, batch)
    span = (full[-1][0] - full[0][0]) / 1e6
    reached = batch * (len(full) - 1) / span * 60
    assert reached >= (rate - batch + 1) * 60 / (60 + LATE) * 0.999, reached
    assert reached >= rate * 0.98 - 60 * batch / (60 + LATE), reached  # about 1.7% under

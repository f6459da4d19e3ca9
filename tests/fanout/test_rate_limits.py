"""Rate limits with real workers and the simulators: a throttled send goes out at its
rate, an app's quota is shared by its concurrent messages, a provider's 429 with
Retry-After pauses the app's sends to that provider in every worker (other apps and other
providers keep sending), and cancelling a throttled message stops the rest.

Rates are short and quick here, the bounds generous; the precise figures are the
benchmark's (``python -m benchmarks.ratelimit``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest

from pushcore.client import PushcoreClient
from pushcore.gateways.simulators import Simulators
from tests.conftest import ADMIN_TOKEN
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign, Device
from tests.registry.helpers import ADMIN, Client, json

pytestmark = pytest.mark.slow


class Timeline:
    """Samples a count every ``step`` seconds while a test waits: (monotonic time, n)."""

    def __init__(self, count: Callable[[], int], step: float = 0.1) -> None:
        self.count = count
        self.step = step
        self.points: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Timeline:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.points.append((time.monotonic(), self.count()))

    async def _run(self) -> None:
        while True:
            self.points.append((time.monotonic(), self.count()))
            await asyncio.sleep(self.step)

    def first_at(self, n: int) -> float:
        return next(t for t, c in self.points if c >= n)

    def most_in(self, seconds: float) -> int:
        """The most counted within any window of ``seconds`` (between samples)."""
        best = 0
        for i, (t0, c0) in enumerate(self.points):
            ends = [c for t, c in self.points[i:] if t - t0 <= seconds]
            best = max(best, ends[-1] - c0)
        return best

    def between(self, start: float, end: float) -> int:
        inside = [c for t, c in self.points if start <= t <= end]
        return inside[-1] - inside[0] if inside else 0


async def _devices(c: Campaign, platform: str, n: int, first: int = 0) -> list[Device]:
    return [await c.register(platform, first + i) for i in range(n)]


def _accepted(c: Campaign, devices: list[Device]) -> Callable[[], int]:
    return lambda: sum(c.accepted(d) for d in devices)


async def _set_quota(api: Client, code: str, quotas: object) -> dict[str, object]:
    resp = await api.patch(f"/v1/apps/{code}", json={"quotas": quotas}, headers=ADMIN)
    out: dict[str, object] = await json(resp, 200)
    return out


async def test_a_throttled_send_goes_out_at_its_rate_across_two_workers(
    sims: Simulators, launch: Launch, api: Client
) -> None:
    """80 devices at 960 per minute (16 a second, batches of 2 at PUSHCORE_BATCH_SIZE 10):
    about 5 s instead of a fraction of one, never more than twice the per-second rate in a
    second, every device once."""
    c = Campaign(api, sims)
    await c.create_app()
    devices = await _devices(c, "android", 80)
    for _ in range(2):
        await launch(sims)
    async with Timeline(_accepted(c, devices)) as line:
        started = time.monotonic()
        sent = await c.send(target={"all": True}, rate_per_minute=960)
        msg = await c.wait(sent["message_id"], timeout=60)
    assert msg["status"] == "done", msg
    assert msg["counts"]["delivered"] == 80, msg
    assert all(c.accepted(d) == 1 for d in devices)
    took = line.first_at(80) - started
    assert 3.5 < took < 15, took  # 79 notifications after the first at 16/s: ~4.9 s
    # at most twice the rate in any second (16/s; plus one sample's worth of slack)
    assert line.most_in(1.0) <= 2 * 16 + 2, line.most_in(1.0)
    # no burst at the start: the first second sends about its share
    assert line.between(started, started + 1.0) <= 2 * 16 + 2


async def test_an_app_quota_is_shared_by_two_concurrent_messages(
    sims: Simulators, launch: Launch, api: Client
) -> None:
    """FCM quota 600 per minute (10 a second) for the app; two messages of 30 devices each
    sent at once go out together at the quota: about 6 s for the 60, not 3 s each."""
    c = Campaign(api, sims)
    await c.create_app()
    devices = await _devices(c, "android", 30)
    base = str(api.make_url("")).rstrip("/")
    async with PushcoreClient(base, c.code, c.server_key) as push:
        app = await push.set_quotas({"fcm": {"per_minute": 600}}, admin_token=ADMIN_TOKEN)
        assert app["quotas"] == {"fcm": {"per_minute": 600}}
        assert (await push.app())["quotas"] == {"fcm": {"per_minute": 600}}
    for _ in range(2):
        await launch(sims)
    async with Timeline(_accepted(c, devices)) as line:
        started = time.monotonic()
        first, second = await asyncio.gather(
            c.send(target={"all": True}), c.send(target={"all": True})
        )
        done = [await c.wait(m["message_id"], timeout=60) for m in (first, second)]
    for msg in done:
        assert msg["status"] == "done", msg
        assert msg["counts"]["delivered"] == 30, msg
    assert all(c.accepted(d) == 2 for d in devices)
    took = line.first_at(60) - started
    assert 4.5 < took < 20, took  # 59 after the first at 10/s: ~5.9 s
    assert line.most_in(1.0) <= 2 * 10 + 2, line.most_in(1.0)

    # null removes the quota: unlimited again
    app = await _set_quota(api, c.code, {"fcm": None})
    assert app["quotas"] == {}
    started = time.monotonic()
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"], timeout=30)
    assert time.monotonic() - started < 4


async def test_a_429_with_retry_after_pauses_the_app_and_provider_in_every_worker(
    sims: Simulators, launch: Launch, api: Client, database_url: str
) -> None:
    """FCM answers 429 (Retry-After 8) until the first one is seen, then recovers.  Two
    worker processes: none sends another request for that app to FCM until the pause
    ends, while the same app's APNs sends and another app's FCM sends go out meanwhile;
    in the end every device is delivered once."""
    a, b = Campaign(api, sims), Campaign(api, sims)
    await a.create_app()
    await b.create_app()
    a_fcm = await _devices(a, "android", 40)
    a_apns = await _devices(a, "ios", 10, first=100)
    b_fcm = await _devices(b, "android", 10, first=200)
    for _ in range(2):
        await launch(sims, PUSHCORE_BATCH_SIZE="2", PUSHCORE_STORM_PAUSE_SECONDS="1")
    await sims.fcm.set_faults(
        error_fraction=1.0,
        error_status=429,
        retry_after=8,
        latency=0.2,
        error_path="messages:send",  # the OAuth token route answers
    )
    async with Timeline(_accepted(a, a_fcm)) as line:
        sent = await a.send(target={"all": True}, platforms=["android"])
        deadline = time.monotonic() + 20
        # (the OAuth token request is answered 429 too: wait for a send's answer)
        while sum(a.received(d) for d in a_fcm) == 0:
            assert time.monotonic() < deadline, "no 429 answered"
            await asyncio.sleep(0.02)
        await sims.fcm.set_faults()  # FCM would accept everything from now on
        conn = await asyncpg.connect(database_url)
        try:
            left = None
            while left is None:
                left = await conn.fetchval(
                    "SELECT extract(epoch FROM p.paused_until - now())::float8 "
                    "FROM provider_pauses p JOIN apps ON apps.id = p.app_id WHERE apps.code = $1 "
                    "AND p.platform = 'android' AND p.paused_until > now()",
                    a.code,
                )
                assert time.monotonic() < deadline, "no pause written"
            paused_at, pause_end = time.monotonic(), time.monotonic() + left
        finally:
            await conn.close()
        # (8 s from the worker's clock when it wrote the row, read a moment later here)
        assert 6.0 < left <= 8.5, left
        # meanwhile: the same app's other provider, and another app on the same provider
        others = [
            await a.send(target={"all": True}, platforms=["ios"]),
            await b.send(target={"all": True}),
        ]
        for other in others:
            msg = await (a if other is others[0] else b).wait(other["message_id"], timeout=5)
            assert msg["counts"]["delivered"] == 10, msg
        assert time.monotonic() < pause_end - 0.2, "the other sends took the whole pause"
        msg = await a.wait(sent["message_id"], timeout=60)
    assert msg["status"] == "done", msg
    assert msg["counts"]["delivered"] == 40, msg
    assert all(a.accepted(d) == 1 for d in a_fcm + a_apns)
    assert all(b.accepted(d) == 1 for d in b_fcm)
    # requests in flight when the pause began finish within their 0.2 s latency; after
    # that no worker sent app A's FCM batches until the pause ended
    assert line.between(paused_at + 0.5, pause_end - 0.2) == 0, line.points
    assert line.first_at(40) > pause_end - 0.2


async def test_cancelling_a_throttled_message_stops_the_rest(
    sims: Simulators, launch: Launch, api: Client
) -> None:
    """60 devices at 600 per minute (10 a second): cancelled after about 1.5 s, nothing
    more is sent, and the batches that had reserved later slots end as cancelled."""
    c = Campaign(api, sims)
    await c.create_app()
    devices = await _devices(c, "android", 60)
    await launch(sims)
    count = _accepted(c, devices)
    sent = await c.send(target={"all": True}, rate_per_minute=600)
    deadline = time.monotonic() + 20
    while count() < 10:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    resp = await api.delete(f"/v1/apps/{c.code}/messages/{sent['message_id']}", headers=c.server)
    assert resp.status in (200, 202, 204), await resp.text()
    await asyncio.sleep(0.3)  # a batch in flight at the cancel may still land
    at_cancel = count()
    await asyncio.sleep(3)
    assert count() == at_cancel, (at_cancel, count())
    assert at_cancel < 30, at_cancel
    msg = await c.wait(sent["message_id"], timeout=30, states=("cancelled",))
    assert msg["status"] == "cancelled", msg


async def test_lane_sends_wait_for_no_quota_but_are_charged_to_it(
    sims: Simulators, launch: Launch, api: Client
) -> None:
    """FCM quota 600 per minute (10 a second).  A transactional send to 40 users goes out at
    once (the lane never waits behind the quota: paced, it would take 4 s); a campaign of
    10 devices sent right after it leaves the lane's 40 their room: it ends about 5 s after
    the lane send (about 2 s without the charge)."""
    c = Campaign(api, sims)
    await c.create_app()
    users = await _devices(c, "android", 40)
    for n, device in enumerate(users):
        await c.personalize(device, f"u{n}")
    tagged = [await c.register("android", 100 + i, tags=["c"]) for i in range(10)]
    await _set_quota(api, c.code, {"fcm": {"per_minute": 600}})
    await launch(sims)
    started = time.monotonic()
    lane = await c.send(target={"external_user_ids": [f"u{n}" for n in range(40)]})
    assert lane["status"] == "sending", lane  # planned at submit: the lane
    msg = await c.wait(lane["message_id"], timeout=10)
    assert msg["counts"]["delivered"] == 40, msg
    lane_took = time.monotonic() - started
    assert lane_took < 3.0, lane_took
    campaign = await c.send(target={"tags": ["c"]})
    msg = await c.wait(campaign["message_id"], timeout=30)
    assert msg["counts"]["delivered"] == 10, msg
    took = time.monotonic() - started
    assert took > 4.5, took  # 50 notifications at 10/s, the lane's 40 first: ~5 s
    assert all(c.accepted(d) == 1 for d in users + tagged)

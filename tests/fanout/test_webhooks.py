"""Webhooks end to end: real worker processes deliver the outbox to a real HTTP receiver,
signed so that the Standard Webhooks library verifies them; retries until a receiver comes
back; disabling after the retry window; the address policy; the bad-input table; the
delivery metrics.  (Run on both brokers: ``make test`` runs this file again on RabbitMQ.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from pushcore.api.app import make_app
from pushcore.client import PushcoreClient
from pushcore.config import Settings
from pushcore.gateways import fates
from pushcore.gateways.simulators import Simulators
from pushcore.webhooks.delivery import PolicyResolver, backoff
from pushcore.webhooks.policy import Policy, address_allowed, url_problem
from tests.fanout.conftest import Launch, Worker, worker_env
from tests.fanout.harness import Campaign
from tests.fanout.receiver import Receiver, verify
from tests.fanout.test_operations import free_port, scrape
from tests.registry.helpers import ADMIN, Client, bearer, json

pytestmark = pytest.mark.slow

ALL_EVENTS = ["message.status", "message.done", "registrations.removed", "tokens.invalid",
              "interactions", "webhook.disabled"]  # fmt: skip
FAST = {
    "PUSHCORE_WEBHOOK_RETRY_BASE_SECONDS": "0.1",
    "PUSHCORE_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
    "PUSHCORE_WEBHOOK_POLL_SECONDS": "0.1",
}


@pytest.fixture
async def hook_api(
    fanout_settings: Settings,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # receivers on loopback, as the workers allow them (PUSHCORE_WEBPUSH_ALLOW_LOOPBACK)

    settings = dataclasses.replace(fanout_settings, webpush_allow_loopback=True)
    async with TestClient(TestServer(make_app(settings))) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    if r.gate is not None:
        r.gate.set()
    await r.stop()


async def _hook(c: Campaign, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body = {"url": url, "events": events or ALL_EVENTS, "description": "ops"}
    created: dict[str, Any] = await json(
        await c.client.post(f"/v1/apps/{c.code}/webhooks", json=body, headers=c.server), 201
    )
    return created


async def _recorded(push: PushcoreClient, webhook_id: str, ids: set[str]) -> list[Any]:
    """The endpoint's attempts once every one of ``ids`` is among them (or after 15 s)."""
    for _ in range(75):
        attempts = await push.webhook_deliveries(webhook_id, limit=100)
        if ids <= {a["event_id"] for a in attempts}:
            break
        await asyncio.sleep(0.2)
    return attempts


async def test_events_are_delivered_signed_and_verified(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    hook = await _hook(c, receiver.url)
    assert hook["secret"].startswith("whsec_")
    assert hook["enabled"] is True
    listed = await json(await hook_api.get(f"/v1/apps/{c.code}/webhooks", headers=c.server), 200)
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
    assert "secret" not in listed["webhooks"][0]  # shown once
    live = await c.register("ios", 1)
    dead = await c.register("ios", 2, live=False)
    await c.personalize(dead, "ann")
    await launch(sims, **FAST)
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    raw_dead = fates.apns_token(9, fates.Fate.DEAD, seed=3)
    raw = await c.send(target={"tokens": [{"platform": "ios", "token": raw_dead}]})
    await c.wait(raw["message_id"])

    def got(kind: str, message_id: str) -> list[dict[str, Any]]:
        return [e for e in receiver.of_type(kind) if e["data"]["message_id"] == message_id]

    await receiver.wait_for(
        lambda: (
            got("message.done", sent["message_id"])
            and len(got("message.status", sent["message_id"])) >= 2
            and got("registrations.removed", sent["message_id"])
            and got("tokens.invalid", raw["message_id"])
        )
    )
    for request in receiver.received:
        payload = verify(hook["secret"], request)  # raises unless the signature is right
        assert request.id.startswith("msg_")
        assert set(payload) == {"type", "timestamp", "data"}
    statuses = [e["data"]["status"] for e in got("message.status", sent["message_id"])]
    # deliveries run concurrently: the receiver may see them in any order
    assert sorted(statuses) == ["done", "sending"]
    [done] = got("message.done", sent["message_id"])
    assert done["data"]["counts"]["delivered"] == 1
    assert done["data"]["counts"]["invalid_removed"] == 1
    [removed] = got("registrations.removed", sent["message_id"])
    assert removed["data"]["registrations"] == [
        {
            "installation_id": dead.installation_id,
            "external_user_id": "ann",
            "platform": "ios",
            "reason": "Unregistered",
        }
    ]
    [invalid] = got("tokens.invalid", raw["message_id"])
    assert invalid["data"]["tokens"] == [
        {"platform": "ios", "token": raw_dead, "reason": "Unregistered"}
    ]
    # the app reports interactions: one event per report, with its delivered/opened ones
    report = [
        {"name": "push.delivered", "message_id": sent["message_id"]},
        {"name": "push.opened", "message_id": sent["message_id"]},
        {"name": "session.start"},
    ]
    resp = await hook_api.post(
        f"/v1/installations/{live.installation_id}/events", json=report, headers=bearer(live.secret)
    )
    assert resp.status in (200, 201, 202), await resp.text()
    await receiver.wait_for(lambda: receiver.of_type("interactions"))
    [interactions] = receiver.of_type("interactions")
    assert interactions["data"]["installation_id"] == live.installation_id
    assert [(x["name"], x["message_id"]) for x in interactions["data"]["interactions"]] == [
        ("push.delivered", sent["message_id"]),
        ("push.opened", sent["message_id"]),
    ]

    # the test event, then the attempts the API lists (through the Python client)
    base = str(hook_api.make_url("")).rstrip("/")
    async with PushcoreClient(base, c.code, c.server_key) as push:
        assert [h["id"] for h in await push.webhooks()] == [hook["id"]]
        event_id = await push.test_webhook(hook["id"])
        await receiver.wait_for(lambda: any(r.id == event_id for r in receiver.received))
        [tested] = [r for r in receiver.received if r.id == event_id]
        assert verify(hook["secret"], tested)["type"] == "webhook.test"
        # an attempt is recorded just after the receiver answered it
        attempts = await _recorded(push, hook["id"], {r.id for r in receiver.received})
        assert {a["status"] for a in attempts} == {200}
        assert {a["event_id"] for a in attempts} == {r.id for r in receiver.received}
        changed = await push.update_webhook(hook["id"], events=["message.done"])
        assert changed["events"] == ["message.done"]
        await push.delete_webhook(hook["id"])
        assert await push.webhooks() == []


async def test_a_receiver_down_for_a_while_gets_every_event(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    hook = await _hook(c, receiver.url, ["message.status", "message.done"])
    for i in range(3):
        await c.register("android", i)
    await receiver.stop()  # down: connections refused
    await launch(sims, **FAST)
    ids = []
    for _ in range(3):
        sent = await c.send(target={"all": True})
        await c.wait(sent["message_id"])
        ids.append(sent["message_id"])
    base = str(hook_api.make_url("")).rstrip("/")
    async with PushcoreClient(base, c.code, c.server_key) as push:
        for _ in range(150):  # a few failed attempts
            failed = await push.webhook_deliveries(hook["id"], limit=100)
            if len(failed) >= 3:
                break
            await asyncio.sleep(0.2)
    assert len(failed) >= 3
    assert all(a["status"] is None for a in failed)
    receiver.status = 503  # back, but answering 503 with Retry-After at first
    receiver.retry_after = "0"
    await receiver.start()
    await receiver.wait_for(lambda: len(receiver.received) >= 2)
    receiver.status = 200
    receiver.received.clear()
    await receiver.wait_for(
        lambda: all(
            any(e["data"]["message_id"] == m for e in receiver.of_type("message.done")) for m in ids
        )
    )
    await asyncio.sleep(0.5)  # let stragglers land
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for r in receiver.received:
        verify(hook["secret"], r)
        by_id[r.id].add(r.body)
    # duplicates only ever repeat a webhook-id with the same body
    assert all(len(bodies) == 1 for bodies in by_id.values())
    events = {(r.event["type"], r.event["data"]["message_id"], r.event["data"]["status"])
              for r in receiver.received}  # fmt: skip
    for m in ids:
        assert ("message.done", m, "done") in events
        assert ("message.status", m, "sending") in events
        assert ("message.status", m, "done") in events


async def test_an_endpoint_failing_for_the_window_is_disabled(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    failing = await _hook(c, receiver.url, ["message.done"])
    healthy = Receiver()
    await healthy.start()
    try:
        watcher = await _hook(c, healthy.url, ["webhook.disabled"])
        receiver.status = 500
        await c.register("android", 1)
        # the test's clock: a retry window of 2 s instead of 24 h
        await launch(sims, PUSHCORE_WEBHOOK_RETRY_WINDOW_SECONDS="2", **FAST)
        sent = await c.send(target={"all": True})
        await c.wait(sent["message_id"])
        await healthy.wait_for(lambda: healthy.of_type("webhook.disabled"))
        [told] = healthy.of_type("webhook.disabled")
        assert told["data"]["webhook_id"] == failing["id"]
        verify(watcher["secret"], healthy.received[0])
        listed = await json(
            await hook_api.get(f"/v1/apps/{c.code}/webhooks", headers=c.server), 200
        )
        state = {h["id"]: h for h in listed["webhooks"]}
        assert state[failing["id"]]["enabled"] is False
        assert state[failing["id"]]["disabled_reason"].startswith("failing since")
        assert state[watcher["id"]]["enabled"] is True
        attempts = await json(
            await hook_api.get(
                f"/v1/apps/{c.code}/webhooks/{failing['id']}/deliveries", headers=c.server
            ),
            200,
        )
        assert {a["status"] for a in attempts["deliveries"]} == {500}
        assert all(a["error"] == "HTTP 500" for a in attempts["deliveries"])
        # a disabled endpoint refuses a test event; enabling it again restarts its clock
        resp = await hook_api.post(
            f"/v1/apps/{c.code}/webhooks/{failing['id']}/test", headers=c.server
        )
        assert resp.status == 409
        enabled = await json(
            await hook_api.patch(
                f"/v1/apps/{c.code}/webhooks/{failing['id']}",
                json={"enabled": True},
                headers=c.server,
            ),
            200,
        )
        assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    finally:
        await healthy.stop()


async def test_a_slow_receiver_does_not_slow_sending(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    await _hook(c, receiver.url, ["message.status", "message.done"])
    receiver.gate = asyncio.Event()  # every request waits until the test opens the gate
    for i in range(4):
        await c.register("ios", i)
    # a deadline longer than the test: no held request is given up and posted again
    await launch(
        sims,
        PUSHCORE_WEBHOOK_ENDPOINT_CONCURRENCY="2",
        PUSHCORE_WEBHOOK_TIMEOUT_SECONDS="60",
        **FAST,
    )
    ids = []
    for _ in range(3):
        sent = await c.send(target={"all": True})
        ids.append(sent["message_id"])
    for m in ids:
        assert (await c.wait(m))["status"] == "done"  # while every delivery is held
    await receiver.wait_for(lambda: receiver.in_flight == 2)
    assert receiver.received == []
    receiver.gate.set()
    await receiver.wait_for(lambda: len(receiver.of_type("message.done")) == 3)
    assert receiver.max_in_flight == 2  # PUSHCORE_WEBHOOK_ENDPOINT_CONCURRENCY


async def test_messages_the_planner_makes_done_are_reported(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    """When no batch is left open by the time planning ends (an inbox-only send, an empty
    audience, or batches the send workers finished first: the race a broker that delivers
    at once makes common), the planner's own statement makes the message done, and it
    must report it like a batch's write-back does."""
    c = Campaign(hook_api, sims)
    await c.create_app()
    await _hook(c, receiver.url, ["message.status", "message.done"])
    await launch(sims, **FAST)
    empty = await c.send(target={"all": True})  # no installation yet: nobody to send to
    inbox_only = await c.send(target={"all": True}, push=False, inbox=True)
    for sent in (empty, inbox_only):
        assert (await c.wait(sent["message_id"]))["status"] == "done"

    def seen(kind: str, message_id: str) -> list[str]:
        return [e["data"]["status"] for e in receiver.of_type(kind)
                if e["data"]["message_id"] == message_id]  # fmt: skip

    await receiver.wait_for(
        lambda: all(seen("message.done", s["message_id"]) for s in (empty, inbox_only))
    )
    await asyncio.sleep(0.5)  # a duplicate would land by now
    for sent in (empty, inbox_only):
        assert seen("message.done", sent["message_id"]) == ["done"]
        assert sorted(seen("message.status", sent["message_id"])) == ["done", "sending"]


async def test_webhook_bad_input_and_address_policy(hook_api: Client, sims: Simulators) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    base = f"/v1/apps/{c.code}/webhooks"
    ok = "https://hooks.example.com/pushcore"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://hooks.example.com/", "events": ["message.done"]}, "url"),
        ({"url": "http://hooks.example.com/", "events": ["message.done"]}, "url"),
        ({"url": "https://10.1.2.3/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://192.168.0.10/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data", "events": ["message.done"]}, "url"),
        ({"url": "https://[fe80::1]/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://[fd00::1]/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://[::ffff:10.0.0.1]/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://0.0.0.0/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://224.0.0.1/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://100.64.0.1/hook", "events": ["message.done"]}, "url"),
        # IPv4 in the other notations resolvers accept, and IPv6 forms that carry IPv4
        ({"url": "https://167772161/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://0xa9.0xfe.0xa9.0xfe/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://012.1/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://[2002:a00:1::]/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://[64:ff9b::a9fe:a9fe]/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://1.2.3.999/hook", "events": ["message.done"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/", "events": ["message.done"]}, "url"),
        ({"url": "https://hooks.example.com:99999/", "events": ["message.done"]}, "url"),
        ({"url": "hooks.example.com", "events": ["message.done"]}, "url"),
        ({"url": "", "events": ["message.done"]}, "url"),
        ({"url": "https://x.example/" + "a" * 2048, "events": ["message.done"]}, "url"),
        ({"url": ok, "events": []}, "events"),
        ({"url": ok, "events": ["message.sent"]}, "events[0]"),
        ({"url": ok}, "events"),
        ({"events": ["message.done"]}, "url"),
        ({"url": ok, "events": ["message.done"], "description": "d" * 501}, "description"),
        ({"url": ok, "events": ["message.done"], "secret": "mine"}, "secret"),
    ]
    for body, field in cases:
        answer = await json(await hook_api.post(base, json=body, headers=c.server), 422)
        assert answer["error"]["field"] == field, (body, answer)
    created = await json(
        await hook_api.post(base, json={"url": ok, "events": ["message.done"]}, headers=c.server),
        201,
    )
    one = f"{base}/{created['id']}"
    patches: list[tuple[dict[str, Any], str]] = [
        ({"url": "https://10.0.0.1/"}, "url"),
        ({"events": []}, "events"),
        ({"enabled": "yes"}, "enabled"),
        ({"nope": 1}, "nope"),
    ]
    for body, field in patches:
        answer = await json(await hook_api.patch(one, json=body, headers=c.server), 422)
        assert answer["error"]["field"] == field, (body, answer)
    changed = await json(
        await hook_api.patch(one, json={"events": ["message.status", "message.status"],
                                        "description": None}, headers=c.server),
        200,
    )  # fmt: skip
    assert (changed["events"], changed["description"]) == (["message.status"], None)
    for query in ("limit=0", "limit=101", "limit=x"):
        answer = await json(await hook_api.get(f"{one}/deliveries?{query}", headers=c.server), 422)
        assert answer["error"]["field"] == "limit"
    unknown = f"{base}/00000000-0000-0000-0000-000000000000"
    assert (await hook_api.patch(unknown, json={"enabled": False}, headers=c.server)).status == 404
    assert (await hook_api.delete(f"{base}/not-a-uuid", headers=c.server)).status == 404
    assert (await hook_api.post(f"{unknown}/test", headers=c.server)).status == 404
    assert (await hook_api.get(f"{unknown}/deliveries", headers=c.server)).status == 404
    assert (await hook_api.get(base)).status == 401
    other = await json(await hook_api.post("/v1/apps", json={"name": "o"}, headers=ADMIN), 201)
    theirs = bearer(other["server_key"])
    assert (await hook_api.get(base, headers=theirs)).status == 404
    other_base = f"/v1/apps/{other['app_code']}/webhooks"
    assert (await hook_api.patch(f"{other_base}/{created['id']}", json={"enabled": False},
                                 headers=theirs)).status == 404  # fmt: skip
    assert (await hook_api.delete(f"{other_base}/{created['id']}", headers=theirs)).status == 404
    for i in range(19):
        await json(await hook_api.post(base, json={"url": f"{ok}/{i}", "events": ["message.done"]},
                                       headers=c.server), 201)  # fmt: skip
    too_many = await hook_api.post(base, json={"url": ok, "events": ["message.done"]},
                                   headers=c.server)  # fmt: skip
    assert (await json(too_many, 409))["error"]["code"] == "too_many_webhooks"
    assert (await hook_api.delete(one, headers=c.server)).status == 204
    assert (await hook_api.delete(one, headers=c.server)).status == 404


async def test_loopback_receivers_only_where_allowed(client: Client, sims: Simulators) -> None:
    # the default API settings (PUSHCORE_WEBPUSH_ALLOW_LOOPBACK false) refuse loopback; the
    # end-to-end ``api`` allows it (the simulators' Web Push endpoints are on loopback)
    api = client
    c = Campaign(api, sims)
    await c.create_app()
    for url in ("http://127.0.0.1:9/hook", "https://localhost/hook", "https://[::1]/hook"):
        body = {"url": url, "events": ["message.done"]}
        answer = await json(
            await api.post(f"/v1/apps/{c.code}/webhooks", json=body, headers=c.server), 422
        )
        assert answer["error"]["field"] == "url"


def test_address_policy_and_backoff_rules() -> None:
    strict, dev = Policy(), Policy(allow_loopback=True)
    assert url_problem("https://hooks.example.com/x", strict) is None
    assert url_problem("http://127.0.0.1:8080/x", dev) is None
    assert url_problem("http://127.0.0.1:8080/x", strict) is not None
    assert url_problem("https://10.0.0.1/", Policy(allow_private=True)) is None
    assert not address_allowed(ipaddress.ip_address("169.254.169.254"), Policy(allow_loopback=True))
    assert address_allowed(ipaddress.ip_address("8.8.8.8"), strict)
    # one classification with the Web Push policy: 6to4 carrying 127.0.0.1 is loopback-ish
    assert not address_allowed(ipaddress.ip_address("2002:7f00:1::"), strict)
    assert url_problem("https://2130706433/x", dev) is None  # loopback, in decimal
    assert url_problem("https://2130706433/x", strict) is not None
    rng = random.Random(1)
    delays = [backoff(n, base=1.0, cap=10.0, retry_after=None, rng=rng) for n in range(1, 8)]
    assert all(0.5 * min(10.0, 2 ** (n - 1)) <= d <= min(10.0, 2 ** (n - 1))
               for n, d in enumerate(delays, 1))  # fmt: skip
    assert backoff(1, base=1.0, cap=10.0, retry_after=30.0, rng=rng) == 30.0


async def test_names_resolving_to_refused_addresses_are_not_connected() -> None:
    resolver = PolicyResolver(Policy())  # loopback not allowed
    try:
        with pytest.raises(OSError, match="may not reach"):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()
    allowed = PolicyResolver(Policy(allow_loopback=True))
    try:
        found = await allowed.resolve("localhost", 443)
        assert found
        assert all(ipaddress.ip_address(r["host"]).is_loopback for r in found)
    finally:
        await allowed.close()


async def test_a_worker_killed_mid_post_posts_again_with_the_same_id(
    hook_api: Client, sims: Simulators, launch: Launch, receiver: Receiver
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    hook = await _hook(c, receiver.url, ["message.done"])
    await c.register("ios", 1)
    receiver.gate = asyncio.Event()  # the post stays in flight until the test opens it
    settings = {"PUSHCORE_WEBHOOK_TIMEOUT_SECONDS": "1", **FAST}
    worker = await launch(sims, **settings)
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    await receiver.wait_for(lambda: receiver.arrived)
    [first] = receiver.arrived
    worker.kill()  # SIGKILL while its post is held: nothing recorded
    receiver.gate.set()
    worker.start()  # the event's lease runs out; the restarted worker posts it again
    await receiver.wait_for(lambda: len(receiver.arrived) >= 2)
    await receiver.wait_for(lambda: receiver.received)
    # at least once, and every copy under the same webhook-id (the killed worker's request
    # may also have been answered, after its sender was gone)
    assert set(receiver.arrived) == {first}
    assert {r.id for r in receiver.received} == {first}
    assert verify(hook["secret"], receiver.received[0])["data"]["message_id"] == sent["message_id"]


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value of a Prometheus exposition (labels sorted, as printed)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def test_delivery_metrics_on_the_workers_metrics_port(
    hook_api: Client,
    sims: Simulators,
    receiver: Receiver,
    worker_factory: list[Worker],
    database_url: str,
    tmp_path: Path,
) -> None:
    c = Campaign(hook_api, sims)
    await c.create_app()
    await _hook(c, receiver.url, ["message.done", "webhook.disabled"])
    gone = Receiver()  # a port nothing listens on: every attempt unreachable
    await gone.start()
    await gone.stop()
    await _hook(c, gone.url, ["message.done"])
    await c.register("ios", 1)
    receiver.status, receiver.retry_after = 503, "0"  # rejected until the test says
    port = free_port()
    worker = Worker(
        worker_env(database_url, sims, PUSHCORE_WEBHOOK_RETRY_WINDOW_SECONDS="4", **FAST),
        tmp_path / "worker.log",
        ["-m", "pushcore", "worker", "--processes", "1", "--threads", "2",
         "--metrics-port", str(port)],
    )  # fmt: skip
    worker_factory.append(worker)
    worker.start()
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    await receiver.wait_for(lambda: receiver.received)
    receiver.status = 200
    # the dead endpoint is disabled once its event's window is over; the receiver hears it
    await receiver.wait_for(lambda: receiver.of_type("webhook.disabled"))
    await receiver.wait_for(lambda: receiver.of_type("message.done"))
    got: dict[str, float] = {}
    for _ in range(50):  # the last attempt is counted just after the receiver answered
        got = _samples(await asyncio.to_thread(scrape, port))
        if got.get('pushcore_webhook_attempts_total{outcome="delivered"}', 0) >= 2:
            break
        await asyncio.sleep(0.2)
    delivered = got['pushcore_webhook_attempts_total{outcome="delivered"}']
    rejected = got['pushcore_webhook_attempts_total{outcome="rejected"}']
    unreachable = got['pushcore_webhook_attempts_total{outcome="unreachable"}']
    assert delivered >= 2  # message.done and webhook.disabled
    assert rejected >= 1
    assert unreachable >= 1
    assert got['pushcore_webhook_attempts_total{outcome="refused"}'] == 0
    assert got["pushcore_webhook_attempt_seconds_count"] == delivered + rejected + unreachable
    assert got['pushcore_webhook_attempt_seconds_bucket{le="+Inf"}'] == delivered + rejected + (
        unreachable
    )
    assert got["pushcore_webhooks_disabled_total"] == 1
    # sampled gauges: nothing is left pending for an enabled endpoint
    for _ in range(50):
        got = _samples(await asyncio.to_thread(scrape, port))
        if got.get("pushcore_webhook_outbox_backlog") == 0:
            break
        await asyncio.sleep(0.2)
    assert got["pushcore_webhook_outbox_backlog"] == 0
    assert got["pushcore_webhook_outbox_oldest_due_seconds"] == 0

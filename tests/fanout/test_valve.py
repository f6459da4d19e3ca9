"""The deletion safety valve end to end: simulators playing one FCM project and one APNs
app answer every token of a misconfigured app dead; the workers stop the message and delete
nothing, while ordinary dead tokens keep being deleted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.fcm import FcmOptions
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign
from tests.registry.helpers import Client

pytestmark = pytest.mark.slow

RIGHT_TOPIC = "com.example.app"


@pytest.fixture
async def strict_sims(sim_ca_dir: Path) -> AsyncIterator[Simulators]:
    # the harness's apps use FCM project "demo-project": this FCM is another project's
    async with Simulators.start(
        engine="h2",
        ca_dir=sim_ca_dir,
        apns=ApnsOptions(device_topic=RIGHT_TOPIC),
        fcm=FcmOptions(project="right-project"),
    ) as started:
        yield started


async def _devices(c: Campaign, platform: str, n: int, dead: int = 0) -> None:
    for i in range(n):
        await c.register(platform, i, live=i >= dead)


async def _settled(c: Campaign, message_id: str) -> dict[str, Any]:
    """The message once every batch has written its results (nothing pending)."""
    deadline = time.monotonic() + 30
    while True:
        msg = await c.message(message_id)
        if msg["counts"]["pending"] == 0 or time.monotonic() > deadline:
            return msg
        await asyncio.sleep(0.2)


async def test_misconfigured_app_deletes_nothing_and_fails(
    api: Client, strict_sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, strict_sims)
    await c.create_app(topic="com.example.wrong")
    await _devices(c, "ios", 120, dead=10)
    await _devices(c, "android", 120, dead=10)
    await launch(strict_sims, PUSHCORE_BATCH_SIZE="200")
    sent = await c.send(target={"all": True})
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "failed", msg
    # the other platform's batch was in flight when the first one stopped the message
    msg = await _settled(c, sent["message_id"])
    counts = msg["counts"]
    assert counts["invalid_removed"] == 0
    assert counts["delivered"] == 0
    assert counts["failed"] == 240
    reasons = {k: v for k, v in msg["failure_reasons"].items() if v}
    # each platform's batch either tripped the valve itself (the dead ones answer the same
    # misconfiguration: the topic/project is wrong) or, claimed after the other one had
    # stopped the message, was not sent at all
    tripped = {k for k in reasons if k.startswith("deletion_valve:")}
    assert tripped, reasons
    assert tripped <= {"deletion_valve:DeviceTokenNotForTopic", "deletion_valve:SENDER_ID_MISMATCH"}
    assert all(reasons[k] == 120 for k in tripped), reasons
    assert sum(reasons[k] for k in tripped) + reasons.get("message_failed", 0) == 240, reasons
    assert any("deletion safety valve" in e for e in msg["errors"]), msg["errors"]
    for device in c.devices:
        assert await c.exists(device), device


async def test_ordinary_dead_tokens_are_still_deleted(
    api: Client, strict_sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, strict_sims)
    await c.create_app(topic=RIGHT_TOPIC)
    await _devices(c, "ios", 120, dead=90)  # 75% Unregistered: not a misconfiguration
    await launch(strict_sims, PUSHCORE_BATCH_SIZE="200")
    sent = await c.send(target={"all": True})
    msg = await c.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    assert (msg["counts"]["delivered"], msg["counts"]["invalid_removed"]) == (30, 90)
    for device in c.devices:
        assert await c.exists(device) is device.live, device


async def test_batches_below_the_minimum_are_not_judged(
    api: Client, strict_sims: Simulators, launch: Launch
) -> None:
    c = Campaign(api, strict_sims)
    await c.create_app(topic="com.example.wrong")
    await _devices(c, "ios", 60)
    await launch(
        strict_sims,
        PUSHCORE_BATCH_SIZE="200",
        PUSHCORE_DELETION_VALVE_MIN_REGISTRATIONS="61",
    )
    sent = await c.send(target={"all": True})
    msg = await c.wait(sent["message_id"])
    # too few answers to tell: DeviceTokenNotForTopic deletes, as for any dead token
    assert msg["status"] == "done", msg
    assert msg["counts"]["invalid_removed"] == 60
    for device in c.devices:
        assert not await c.exists(device), device

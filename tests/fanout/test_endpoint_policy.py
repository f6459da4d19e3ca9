"""A registration the endpoint policy refuses at send time is failed, never deleted: with
real workers whose policy is narrower than the API's was when it accepted the
subscriptions (what a new user saw: every live registration deleted at the first send)."""

from __future__ import annotations

from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.harness import Campaign
from tests.registry.helpers import Client


async def test_refused_at_send_time_fails_and_keeps_the_registration(
    api: Client, sims: Simulators, launch: Launch
) -> None:
    campaign = Campaign(api, sims)
    await campaign.create_app()
    web = [await campaign.register("web", i) for i in range(10)]
    ios = await campaign.register("ios", 99)
    worker = await launch(sims, PUSHCORE_WEBPUSH_ALLOW_LOOPBACK="false")
    sent = await campaign.send(target={"all": True})
    msg = await campaign.wait(sent["message_id"])
    assert msg["status"] == "done", msg
    counts = msg["counts"]
    assert (counts["delivered"], counts["failed"], counts["invalid_removed"]) == (1, 10, 0)
    assert msg["failure_reasons"] == {"endpoint-refused": 10}, msg
    assert campaign.accepted(ios) == 1
    for device in web:
        assert campaign.received(device) == 0, device
        assert await campaign.exists(device), device
    worker.stop()

    # once the workers' policy admits them again, the same registrations are delivered
    await launch(sims)
    sent = await campaign.send(target={"all": True}, platforms=["web"])
    msg = await campaign.wait(sent["message_id"])
    assert (msg["counts"]["delivered"], msg["counts"]["failed"]) == (10, 0), msg
    for device in web:
        assert campaign.accepted(device) == 1, device

"""The lane's priority over campaign batches in one process (pure asyncio)."""

from __future__ import annotations

import asyncio

from pushcore.fanout.priority import LanePriority


async def test_a_campaign_batch_waits_for_a_busy_lane_then_goes() -> None:
    priority = LanePriority(max_wait=5.0)
    order: list[str] = []

    async def lane() -> None:
        with priority.busy():
            await asyncio.sleep(0.05)
            order.append("lane done")

    async def campaign() -> None:
        await priority.yield_to_lane()
        order.append("campaign sent")

    task = asyncio.create_task(lane())
    await asyncio.sleep(0)  # the lane is busy first
    await campaign()
    await task
    assert order == ["lane done", "campaign sent"]
    assert priority.waited > 0


async def test_the_wait_is_bounded_so_the_campaign_progresses() -> None:
    """A lane that never goes idle does not stop the campaign: it is let through while
    the lane is still busy."""
    priority = LanePriority(max_wait=0.01)
    with priority.busy():
        await priority.yield_to_lane()  # returns (a lane without bound would hang here)
        assert not priority.idle()
    assert priority.idle()


async def test_an_idle_lane_costs_nothing() -> None:
    priority = LanePriority(max_wait=5.0)
    await priority.yield_to_lane()
    assert priority.waited == 0.0

"""What the benchmark reads of the running granian simulators: their process ids (for
their CPU) and how many notifications they accepted."""

from __future__ import annotations

from pushcore.gateways.simulators import GranianSimulator, Simulators


def pids(sims: Simulators) -> list[int]:
    return [
        sim.process.process.pid
        for sim in sims
        if isinstance(sim, GranianSimulator) and sim.process.process is not None
    ]


async def accepted(sims: Simulators) -> int:
    total = 0
    for sim in sims:
        stats = await sim.fetch_stats()
        # FCM's OAuth endpoint answers 200 too ("token"); those are not deliveries
        total += stats["delivered"] - stats["by_reason"].get("token", 0)
    return int(total)

"""The inbox benchmark's PNG: the broadcasts side by side, the latency distributions of the
two routes under load."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    runs = result["broadcast"]["runs"]
    labels = [f"{'inbox' if r['inbox'] else 'no inbox'} #{k // 2 + 1}" for k, r in enumerate(runs)]
    colours = ["tab:orange" if r["inbox"] else "tab:blue" for r in runs]
    left.bar(labels, [r["seconds"] for r in runs], color=colours)
    left.set_ylabel("created → done, s")
    left.set_title(f"broadcast to {result['devices']:,} devices ({result['users']:,} users)")
    left.tick_params(axis="x", labelrotation=30)
    for name, load in result["load"].items():
        values = load["latencies_ms"]
        if values:
            share = [k / len(values) for k in range(len(values))]
            right.plot(values, share, label=f"{name}: p99 {load['p99_ms']} ms")
    right.set_xscale("log")
    right.set_xlabel("latency, ms")
    right.set_ylabel("share of requests at or below")
    per_user = result["fill"]["messages_per_user"]
    right.set_title(f"{result['args']['concurrency']} clients, ~{per_user} messages per user")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

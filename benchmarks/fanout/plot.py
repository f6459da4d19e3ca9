"""The run's PNG: throughput over time beside the baselines, CPU per component, and the
largest worker's RSS over time."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

SMOOTH_SECONDS = 5.0  # the rate window


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, cpu_ax, rss_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    _rate(rate_ax, result)
    cpu = result["cpu_seconds_per_1000"]
    cpu_ax.bar(list(cpu), list(cpu.values()), color="tab:orange")
    cpu_ax.set_title("CPU seconds per 1,000 notifications")
    _rss(rss_ax, result)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rate(ax: Any, result: dict[str, Any]) -> None:
    points = result["timeline"]
    # Counters move a whole batch at a time, so the rate between two samples jumps; a
    # window of SMOOTH_SECONDS shows the trend, the raw rate stays faint behind it.
    rates = [
        ((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
        for (t0, n0, *_), (t1, n1, *_) in itertools.pairwise(points)
        if t1 > t0
    ]
    ax.plot([t for t, _ in rates], [r for _, r in rates], color="tab:blue", alpha=0.25)
    step = max(1, round(SMOOTH_SECONDS / result["config"]["sample_interval_s"]))
    smooth = [
        ((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
        for (t0, n0, *_), (t1, n1, *_) in zip(points, points[step:], strict=False)
        if t1 > t0
    ]
    ax.plot(
        [t for t, _ in smooth],
        [r for _, r in smooth],
        color="tab:blue",
        label=f"pipeline ({SMOOTH_SECONDS:g} s window)",
    )
    base = result["baselines"]
    ax.axhline(
        base["bare_transport"]["notifications_per_second"],
        color="tab:green",
        linestyle="--",
        label="bare transport",
    )
    ax.axhline(
        base["naive"]["notifications_per_second"], color="tab:red", linestyle=":", label="naive"
    )
    ax.set_title(
        f"broadcast to {result['config']['devices']:,} devices: {result['wall_seconds_to_done']} s"
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("notifications/s")
    ax.legend()


def _rss(ax: Any, result: dict[str, Any]) -> None:
    points = result["timeline"]
    ax.plot([p[0] for p in points], [p[3] for p in points])
    ax.set_title(f"largest worker RSS (peak {result['worker_peak_rss_mb']} MB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")

"""The run's PNG: messages accepted and finished per second over time; the distribution
of created -> finished; with a broadcast, its notifications per second beside the load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SMOOTH_SECONDS = 1.0  # the rate window


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if result["during_broadcast"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2))
    _rates(axes[0], result)
    _latency(axes[1], result)
    if panels == 3:
        _broadcast(axes[2], result)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _step(result: dict[str, Any]) -> int:
    """Samples per rate window: SMOOTH_SECONDS, or less for a load shorter than 5 of them
    (a short load would otherwise show one bump)."""
    interval: float = result["config"]["sample_interval_s"]
    start: float
    end: float
    start, end = result["load_window_s"]
    return max(1, round(min(SMOOTH_SECONDS, (end - start) / 5) / interval))


def _windowed(result: dict[str, Any], column: int) -> tuple[list[float], list[float]]:
    """The per-second rate of a timeline column over a window of :func:`_step` samples."""
    points = result["timeline"]
    step = _step(result)
    pairs = [
        ((a[0] + b[0]) / 2, (b[column] - a[column]) / (b[0] - a[0]))
        for a, b in zip(points, points[step:], strict=False)
        if b[0] > a[0]
    ]
    return [t for t, _ in pairs], [r for _, r in pairs]


def _shade_load(ax: Any, result: dict[str, Any]) -> None:
    start, end = result["load_window_s"]
    ax.axvspan(start, end, color="tab:gray", alpha=0.12, label="transactional load")


def _rates(ax: Any, result: dict[str, Any]) -> None:
    for column, label, color in ((1, "accepted", "tab:blue"), (2, "finished (done)", "tab:green")):
        ax.plot(*_windowed(result, column), label=label, color=color)
    _shade_load(ax, result)
    # up to the end of the load and a little after (the samples go on while the SQL
    # count settles, and while a broadcast finishes: the third panel shows that)
    start, end = result["load_window_s"]
    ax.set_xlim(0 if result["during_broadcast"] else start, end + max(1.0, (end - start) / 10))
    e2e = result["end_to_end"]["messages_per_second"]
    ax.set_title(f"{result['submit']['accepted']:,} transactional messages: {e2e}/s end to end")
    ax.set_xlabel("seconds")
    window = _step(result) * result["config"]["sample_interval_s"]
    ax.set_ylabel(f"messages/s ({window:g} s window)")
    ax.legend()


def _latency(ax: Any, result: dict[str, Any]) -> None:
    lat = result["created_to_finished_ms"]
    hist = lat["histogram"]
    width = hist["bin_ms"]
    ax.bar(
        [i * width for i in range(len(hist["counts"]))], hist["counts"], width=width, align="edge"
    )
    for q, style in (("p50", "-"), ("p90", "--"), ("p99", ":")):
        if lat[q] is not None:
            ax.axvline(lat[q], color="tab:red", linestyle=style, label=f"{q} {lat[q]:g} ms")
    ax.set_title("created -> finished, per message")
    ax.set_xlabel("ms")
    ax.set_ylabel("messages")
    ax.legend()


def _broadcast(ax: Any, result: dict[str, Any]) -> None:
    during = result["during_broadcast"]
    ax.plot(*_windowed(result, 3), color="tab:purple", label="broadcast")
    _shade_load(ax, result)
    finished = during["finished_seen_at_s"]
    if finished is not None:  # up to its end (the samples go on while the SQL count settles)
        ax.set_xlim(0, max(result["load_window_s"][1], finished) * 1.05 + 0.5)
    ax.set_title(
        f"broadcast to {during['devices']:,}: {during['notifications_per_second_before_load']}/s "
        f"before, {during['notifications_per_second_during_load']}/s during"
    )
    ax.set_xlabel("seconds")
    window = _step(result) * result["config"]["sample_interval_s"]
    ax.set_ylabel(f"notifications/s ({window:g} s window)")
    ax.legend()

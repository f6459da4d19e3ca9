"""Each benchmark script runs at a tiny size and reports what it promises (so they cannot
rot); figures are never asserted: the machine is shared and noisy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run(module: str, *args: str, database_url: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    out = subprocess.run(
        [sys.executable, "-m", module, *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(300)
def test_fanout_benchmark_tiny(database_url: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.fanout",
        "--devices",
        "2000",
        "--baseline-sample",
        "1000",
        "--naive-sample",
        "300",
        "--redis-url",
        "redis://127.0.0.1:6379/6",
        "--out",
        str(tmp_path / "fanout.json"),
        database_url=database_url,
    )
    correct = result["correct"]
    assert isinstance(correct, dict)
    assert correct["live_delivered_exactly_once"] is True
    assert correct["dead_deleted"] is True
    for key in (
        "wall_seconds_to_done",
        "cpu_seconds_per_1000",
        "worker_peak_rss_mb",
        "sql_statements_per_1000",
        "baselines",
        "pipeline_vs_bare_transport",
    ):
        assert key in result
    assert (tmp_path / "fanout.png").stat().st_size > 0


def test_registration_benchmark_tiny(database_url: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.registration",
        "--seconds",
        "2",
        "--concurrency",
        "8",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "registration.json"),
        database_url=database_url,
    )
    routes = result["routes"]
    assert isinstance(routes, dict)
    assert set(routes) == {"register", "token_update", "personalize", "depersonalize"}
    assert result["errors"] == {}
    assert (tmp_path / "registration.png").stat().st_size > 0

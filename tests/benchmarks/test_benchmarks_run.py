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


def _run_plain(module: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_transport_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    stdout = _run_plain(
        "benchmarks.transport",
        "--tokens",
        "200",
        "--repeats",
        "1",
        "--h2load-requests",
        "500",
        "--out",
        str(out),
    )
    assert json.loads(stdout.strip().splitlines()[-1])["written"] == str(out)
    written = json.loads(out.read_text())
    for provider in ("apns", "fcm", "webpush"):
        medians = written["providers"][provider]["medians"]
        assert medians["curl"]["ok"] == 200  # every live registration delivered
        assert written["providers"][provider]["simulator_ceiling_h2load"]["2xx"] == 500
    assert set(written["goals"]) == {
        "apns_curl_per_cpu_s_ge_15000",
        "fcm_curl_per_cpu_s_ge_15000",
        "apns_curl_vs_aioapns_per_cpu_s",
    }


def test_delivery_engines_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "engines.json"
    _run_plain(
        "benchmarks.delivery_engines", "--tokens", "200", "--repeats", "1", "--out", str(out)
    )
    written = json.loads(out.read_text())
    assert {e: m["ok_200"] for e, m in written["medians"].items()} == {
        "curl": 200,
        "aioapns": 200,
        "httpx": 200,
    }

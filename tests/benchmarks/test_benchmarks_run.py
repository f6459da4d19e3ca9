"""Each benchmark script runs at a tiny size and reports what it promises (so they cannot
rot); figures are never asserted: the machine is shared and noisy.  Correctness checks the
scripts make (exactly once, dead deleted, no errors) are asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import BASE_URL, CHECKOUT

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# the benchmark empties its database: one of the checkout's own, never the test session's
BENCH_URL = urlunsplit(urlsplit(BASE_URL)._replace(path=f"/pushcore_bench_test_{CHECKOUT[:8]}"))
# the checkout's own Redis database, as in tests/fanout/conftest.py (the benchmark flushes it)
_BASE_REDIS = os.environ.get("PUSHCORE_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_URL = urlunsplit(urlsplit(_BASE_REDIS)._replace(path=f"/{8 + int(CHECKOUT, 16) % 8}"))


def _drop(url: str) -> None:
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parts.path.lstrip("/"))
            )
        )


@pytest.fixture
def bench_database() -> Iterator[str]:
    _drop(BENCH_URL)
    yield BENCH_URL
    _drop(BENCH_URL)


def run(module: str, *args: str, timeout: float = 240) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(150)
def test_fanout_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.fanout",
        "--devices", "2000",
        "--bare-sample", "1000",
        "--naive-sample", "300",
        "--database-url", bench_database,
        "--redis-url", REDIS_URL,
        "--out", str(tmp_path),
        "--label", "tiny",
    )  # fmt: skip
    correct = result["correct"]
    assert correct["live_delivered_exactly_once"] is True, correct
    assert correct["dead_deleted"] is True, correct
    assert correct["ok"] is True, correct
    assert (correct["live"], correct["dead"]) == (1900, 100)
    for key in (
        "wall_seconds_to_done",
        "notifications_per_second",
        "timeline",
        "cpu_seconds_per_1000",
        "worker_peak_rss_mb",
        "sql_statements",
        "baselines",
        "pipeline_vs_bare_transport",
        "goals",
    ):
        assert key in result, key
    assert set(result["cpu_seconds_per_1000"]) == {
        "workers",
        "api",
        "simulators",
        "postgresql",
        "redis",
    }
    assert result["sql_statements"]["source"] in ("pg_stat_statements", "xact_commit")
    bare, naive = result["baselines"]["bare_transport"], result["baselines"]["naive"]
    assert bare["delivered"] == bare["simulators_accepted"] == bare["sample"] == 1000
    assert naive["delivered"] == naive["simulators_accepted"] == naive["sample"] == 300
    assert result["timeline"][-1][1] == 2000
    written = Path(result["written"]["json"])
    assert written.parent == tmp_path
    assert written.name.startswith("fanout-tiny-")
    assert json.loads(written.read_text())["counts"] == result["counts"]
    assert written.with_suffix(".png").stat().st_size > 0


def test_registration_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.registration",
        "--seconds", "3",
        "--concurrency", "8",
        "--workers", "1",
        "--database-url", bench_database,
        "--out", str(tmp_path),
    )  # fmt: skip
    routes = result["routes"]
    assert set(routes) == {"register", "token_update", "personalize", "depersonalize"}
    for figures in routes.values():
        assert {"requests", "per_second", "p50_ms", "p95_ms", "p99_ms"} <= set(figures)
    assert result["errors"] == {}
    assert result["requests"] == sum(r["requests"] for r in routes.values()) > 0
    cpu = result["cpu_seconds_per_1000_requests"]
    assert set(cpu) == {"api", "postgresql", "load_generator"}
    assert cpu["api"] > 0
    assert cpu["load_generator"] > 0
    assert "ge_3000_rps_at_p99_le_50ms" in result["goals"]
    assert Path(result["written"]["png"]).stat().st_size > 0


def test_transport_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    stdout = run(
        "benchmarks.transport",
        "--tokens", "200",
        "--repeats", "1",
        "--h2load-requests", "500",
        "--out", str(out),
    )  # fmt: skip
    assert stdout["written"] == str(out)
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
    subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.delivery_engines"),
            *("--tokens", "200", "--repeats", "1", "--out", str(out)),
        ],
        capture_output=True,
        timeout=240,
        cwd=ROOT,
        check=True,
    )
    written = json.loads(out.read_text())
    assert {e: m["ok_200"] for e, m in written["medians"].items()} == {
        "curl": 200,
        "aioapns": 200,
        "httpx": 200,
    }


TRANSACTIONAL_KEYS = (
    "submit",
    "end_to_end",
    "created_to_finished_ms",
    "cpu_seconds_per_message",
    "sql_statements",
    "timeline",
    "during_broadcast",
    "correct",
    "goals",
)


def _transactional(tmp_path: Path, database: str, *extra: str) -> dict[str, Any]:
    result = run(
        "benchmarks.transactional",
        "--devices", "200",
        "--messages", "50",
        "--concurrency", "4",
        "--database-url", database,
        "--redis-url", REDIS_URL,
        "--out", str(tmp_path),
        "--label", "tiny",
        *extra,
        timeout=100,
    )  # fmt: skip
    for key in TRANSACTIONAL_KEYS:
        assert key in result, key
    correct = result["correct"]
    assert correct["ok"] is True, correct
    assert correct["messages_in_database"] == correct["messages_accepted"], correct
    assert correct["targeted_live"] > 0, correct
    assert result["submit"]["accepted"] == result["end_to_end"]["messages_done"] == 50
    assert {"p50", "p90", "p99"} <= set(result["created_to_finished_ms"])
    assert {"p50", "p90", "p99"} <= set(result["submit"]["latency_ms"])
    assert set(result["cpu_seconds_per_message"]) == {
        "workers",
        "api",
        "simulators",
        "postgresql",
        "redis",
    }
    assert result["sql_statements"]["source"] in ("pg_stat_statements", "xact_commit")
    assert set(result["goals"]) == {
        "end_to_end_ge_2000_per_s",
        "submit_p99_le_50ms",
        "created_to_finished_p99_le_1s",
        "same_p99_during_broadcast",
    }
    written = Path(result["written"]["json"])
    assert written.parent == tmp_path
    assert written.name.startswith("transactional-tiny-")
    assert written.with_suffix(".png").stat().st_size > 0
    return result


@pytest.mark.timeout(110)
def test_transactional_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = _transactional(tmp_path, bench_database, "--warmup", "5")
    assert result["warm_up"]["messages"] == 5
    assert result["correct"]["messages_requested"] == 55
    assert result["during_broadcast"] is None
    assert result["goals"]["same_p99_during_broadcast"]["met"] is None


@pytest.mark.timeout(110)
def test_transactional_benchmark_during_broadcast_tiny(bench_database: str, tmp_path: Path) -> None:
    result = _transactional(
        tmp_path,
        bench_database,
        *("--warmup", "0", "--during-broadcast", "2000", "--broadcast-lead", "0.5"),
    )
    during = result["during_broadcast"]
    for key in (
        "notifications_per_second_before_load",
        "notifications_per_second_during_load",
        "finished",
        "finished_during_load",
        "transactional_while_sending",
    ):
        assert key in during, key
    # finished by the end of the run (waited for): its own exactly-once check was made
    assert during["finished"] is True, during
    assert during["correct"]["ok"] is True, during["correct"]
    assert (during["correct"]["live"], during["correct"]["dead"]) == (1900, 100)


@pytest.mark.timeout(150)
def test_inbox_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.inbox",
        "--devices", "2000",
        "--broadcasts", "3",
        "--personal", "3",
        "--list-size", "400",
        "--seconds", "1",
        "--concurrency", "4",
        "--api-workers", "1",
        "--database-url", bench_database,
        "--redis-url", REDIS_URL,
        "--out", str(tmp_path),
        "--label", "tiny",
        timeout=140,
    )  # fmt: skip
    correct = result["correct"]
    assert correct["ok"] is True, correct
    assert [r["inbox"] for r in result["broadcast"]["runs"]] == [False, True]
    assert result["fill"]["entries"] == 3 * 400
    assert result["fill"]["users_per_list"] == 400
    for route in ("get_inbox", "post_seen"):
        load = result["load"][route]
        assert load["requests"] > 0, load
        assert set(load["statuses"]) == {"200"}, load
        assert {"p50_ms", "p99_ms", "requests_per_s"} <= set(load)
    sizes = result["sizes"]
    assert sizes["inbox_entries"]["rows"] >= 1200
    assert sizes["bytes_per_entry_row"] > 0
    assert set(result["goals"]) == {
        "inbox_adds_le_10_percent",
        "get_inbox_p99_le_20ms",
        "post_seen_p99_le_30ms",
    }
    written = Path(result["written"]["json"])
    assert written.name.startswith("inbox-tiny-")
    assert written.with_suffix(".png").stat().st_size > 0


@pytest.mark.timeout(200)
def test_templates_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.templates",
        "--devices", "1000",
        "--rounds", "1",
        "--render-sample", "200",
        "--recipients", "100",
        "--database-url", bench_database,
        "--redis-url", REDIS_URL,
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result["correct"] is True, result["runs"]
    assert [r["kind"] for r in result["runs"]] == ["templated", "fixed"]
    delivered = {r["counts"]["delivered"] for r in result["runs"]}
    assert delivered == {950}, result["runs"]  # the live ones, every run
    for run_ in result["runs"]:
        assert set(run_["cpu_seconds_per_1000"]) >= {"workers", "simulators", "postgresql"}
    render = result["render"]
    assert render["rendered"] == render["recipients"] > 0
    assert render["failed"] == {}
    assert render["templated_us_per_recipient"] > 0
    assert {"templated_over_fixed", "worker_cpu_seconds_per_1000"} <= set(result["median"])
    plain, personal = result["user_lists"]["runs"]
    assert plain["counts"]["delivered"] == personal["counts"]["delivered"] > 0
    assert Path(result["written"]["png"]).stat().st_size > 0


@pytest.mark.timeout(120)
def test_localtime_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    result = run(
        "benchmarks.localtime", "--devices", "2000", "--rounds", "1",
        "--database-url", bench_database, "--out", str(tmp_path),
    )  # fmt: skip
    (plain,), (local,) = result["runs"]["plain"], result["runs"]["local"]
    assert plain["targeted"] == local["targeted"] == 2000
    assert (plain["status"], plain["waiting"], plain["held"]) == ("sending", 0, 0)
    assert plain["enqueued"] == plain["batches"]
    # nothing due for two days: every batch held, none enqueued, all waiting
    assert (local["status"], local["waiting"], local["enqueued"]) == ("scheduled", 2000, 0)
    assert local["held"] == local["batches"]
    assert local["due_times"] == 24  # the default zone (Lisbon) is one of the 24
    assert result["release"]["released_batches"] == local["batches"]
    assert result["release"]["waiting_after"] == 0
    assert Path(result["written"]["png"]).stat().st_size > 0


def test_goaway_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "goaway.json"
    stdout = run("benchmarks.goaway", "--runs", "1", "--requests", "600", "--out", str(out))
    assert stdout["written"] == {"json": str(out), "png": str(out.with_suffix(".png"))}
    written = json.loads(out.read_text())
    assert set(written["summary"]) == {"grace_0s", "grace_2s"}
    for run_ in written["runs"]:
        assert run_["goaways"] >= 600 // 120  # the fault really happened in every run
        assert run_["ok"] + sum(run_["failures"].values()) == 600
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.timeout(150)
def test_ratelimit_benchmark_tiny(bench_database: str, tmp_path: Path) -> None:
    """1,000 devices at 6,000 per minute: ~10 s, its windows and goals reported."""
    result = run(
        "benchmarks.ratelimit",
        "--devices", "1000",
        "--rate", "6000",
        "--database-url", bench_database,
        "--redis-url", REDIS_URL,
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result["status"] == "done", result["counts"]
    counts = result["counts"]
    assert counts["delivered"] + counts["invalid_removed"] == 1000, counts
    assert result["target_per_window"] == 1000
    # every send reached a simulator (FCM's OAuth token requests count there too)
    assert 1000 <= sum(w["sends"] for w in result["windows"]) <= 1010
    assert sum(w["sends"] for w in result["ledger_windows"]) == 1000
    # paced, not a burst: about 10 s (a broadcast of 1,000 unthrottled takes well under 1)
    assert 7 < result["total_seconds"] < 30, result["total_seconds"]
    assert set(result["goal"]) == {"windows_within_10_percent", "total_within_10_percent"}
    assert Path(result["written"]["png"]).stat().st_size > 0

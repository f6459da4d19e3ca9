"""``benchmarks.console`` at a tiny size: it runs, signs in, times every page and writes
its JSON and PNG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.benchmarks.test_benchmarks_run import ROOT, _drop
from tests.conftest import BASE_URL, CHECKOUT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
# a database of the checkout's own that the benchmark may empty (its name says bench)
URL = urlunsplit(urlsplit(BASE_URL)._replace(path=f"/pushcore_bench_console_{CHECKOUT[:8]}"))


def test_console_benchmark_tiny(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.console", "--devices", "300", "--rounds", "2",
             "--database-url", URL, "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=150, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
    finally:
        _drop(URL)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 300
    assert {"overview", "audience (tags)", "user", "message", "estimate: all"} <= set(
        result["pages"]
    )
    for figures in result["pages"].values():
        assert 0 < figures["p50_ms"] <= figures["max_ms"]
    assert result["goal"]["page_ms_below"] == 1000.0
    assert Path(result["written"]["png"]).stat().st_size > 0

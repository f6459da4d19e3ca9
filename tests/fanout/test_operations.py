"""Operations through real processes: metrics of API and workers, graceful worker stop."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pushcore.gateways.core import Faults
from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch, Worker, worker_env
from tests.fanout.harness import Campaign
from tests.registry.helpers import Client

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
        return text


async def test_worker_metrics_and_graceful_stop(
    api: Client,
    sims: Simulators,
    worker_factory: list[Worker],
    database_url: str,
    tmp_path: Path,
) -> None:
    c = Campaign(api, sims)
    await c.create_app()
    for i in range(6):
        await c.register("ios", i, live=i != 0)
    port = free_port()
    worker = Worker(
        worker_env(database_url, sims),
        tmp_path / "worker.log",
        [
            "-m",
            "pushcore",
            "worker",
            "--processes",
            "2",
            "--threads",
            "2",
            "--metrics-port",
            str(port),
        ],
    )
    worker.start()
    worker_factory.append(worker)
    sent = await c.send(target={"all": True})
    await c.wait(sent["message_id"])
    text = ""
    for _ in range(50):  # the reaper samples the gauges every 0.5 s
        text = await asyncio.to_thread(scrape, port)
        if "pushcore_queue_depth{" in text:
            break
        await asyncio.sleep(0.2)
    assert 'pushcore_notifications_total{outcome="delivered",platform="ios"} 5.0' in text
    assert 'pushcore_registrations_deleted_total{platform="ios"} 1.0' in text
    assert "dramatiq_messages_total" in text
    assert 'pushcore_queue_depth{queue="pushcore.apns"}' in text
    assert 'pushcore_messages{status="done"}' in text
    api_metrics = await (await api.get("/metrics")).text()
    assert "pushcore_api_requests_total" in api_metrics
    assert 'route="/v1/apps/{app_code}/messages"' in api_metrics
    # SIGTERM to the main process: every worker process stops cleanly, exit code 0
    worker.stop()
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_path.read_text()[-2000:]


def test_api_stops_gracefully_on_sigterm(database_url: str) -> None:
    """SIGTERM: the API stops accepting, finishes what is in flight, closes its pool, exit 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env["PUSHCORE_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushcore", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "API did not become ready"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, output.decode()[-2000:]
    assert b"shutting down" in output
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


async def test_sigterm_mid_batch_finishes_the_batches_in_flight(
    sim_ca_dir: Path, launch: Launch, api: Client
) -> None:
    """SIGTERM while every batch waits on a slow provider: the worker finishes them (write-
    back included) before it closes its pool and connections, then exits 0.  The message is
    done with no worker left, and nobody was sent to twice."""
    async with Simulators.start(
        engine="h2", ca_dir=sim_ca_dir, faults={"apns": Faults(latency=3.0)}
    ) as sims:
        c = Campaign(api, sims)
        await c.create_app()
        for i in range(12):
            await c.register("ios", i, live=i != 5)
        # three batches of four on the apns queue, one per worker thread: all in flight
        worker = await launch(sims, PUSHCORE_BATCH_SIZE="4")
        sent = await c.send(target={"all": True})
        deadline = asyncio.get_running_loop().time() + 30
        # every request received and waiting for its answer (the counters count a token
        # once it is answered)
        while sims.apns.counters.in_flight < len(c.devices):
            assert asyncio.get_running_loop().time() < deadline, "requests never arrived"
            await asyncio.sleep(0.02)
        assert (await c.message(sent["message_id"]))["counts"]["delivered"] == 0
        await asyncio.to_thread(worker.stop)
        assert worker.proc is not None
        assert worker.proc.returncode == 0, worker.log_path.read_text()[-3000:]
        msg = await c.wait(sent["message_id"], timeout=5)
        assert msg["status"] == "done", msg
        assert msg["counts"]["delivered"] == 11
        assert msg["counts"]["invalid_removed"] == 1
        for d in c.devices:
            assert c.received(d) == 1, d

"""End-to-end fixtures: simulators, a real Dramatiq worker process, the API, a clean queue.

The worker runs as ``python -m dramatiq workers.boot:setup`` (what ``pushcore worker`` execs)
against the test database, a Redis database of its own, and the in-process simulators,
whose CA it trusts through PUSHCORE_CA_FILE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from pushcore.api.app import make_app
from pushcore.config import Settings, load_settings
from pushcore.gateways.simulators import Simulators
from tests.conftest import ADMIN_TOKEN, CHECKOUT

_BASE_REDIS = os.environ.get("PUSHCORE_REDIS_URL", "redis://127.0.0.1:6379/0")
# a Redis database of the checkout's own (8 to 15), see tests/conftest.py
REDIS_URL = urlunsplit(urlsplit(_BASE_REDIS)._replace(path=f"/{8 + int(CHECKOUT, 16) % 8}"))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

READY_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def sim_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fanout-ca")


@pytest.fixture
def clean_redis() -> None:
    """Each test's workers start from an empty broker: the checkout's Redis database is
    flushed and, on the RabbitMQ pass, the fan-out queues (with Dramatiq's delay and
    dead-letter queues) are purged, so no worker picks up an earlier test's jobs."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()
    if os.environ.get("PUSHCORE_BROKER") == "rabbitmq":
        _purge_rabbitmq(
            os.environ.get("PUSHCORE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        )


def _purge_rabbitmq(url: str) -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    from workers.broker import QUEUES

    broker = RabbitmqBroker(url=url)
    try:
        for queue in QUEUES:
            broker.declare_queue(queue)  # and its delay queue; idempotent
        broker.flush_all()  # purges the declared queues, their delay and dead-letter ones
    finally:
        broker.close()


def worker_env(database_url: str, sims: Simulators, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(
        PUSHCORE_DATABASE_URL=database_url,
        PUSHCORE_REDIS_URL=REDIS_URL,
        PUSHCORE_CA_FILE=str(sims.ca_file),
        PUSHCORE_APNS_ORIGIN=sims.apns.origin,
        PUSHCORE_APNS_SANDBOX_ORIGIN=sims.apns.origin,
        PUSHCORE_FCM_ORIGIN=sims.fcm.origin,
        PUSHCORE_WEBPUSH_ALLOW_LOOPBACK="true",
        PUSHCORE_REAPER_INTERVAL_SECONDS="0.5",
        PUSHCORE_REQUEUE_AFTER_SECONDS="3",
        PUSHCORE_RETRY_BASE_SECONDS="0.2",
        PUSHCORE_RETRY_MAX_SECONDS="1",
        PUSHCORE_LEASE_SECONDS="8",
        PUSHCORE_SEND_TIMEOUT_SECONDS="5",
        PUSHCORE_BATCH_SIZE="10",
        PUSHCORE_LOG_LEVEL="INFO",
    )
    # the whole end-to-end suite also runs on RabbitMQ (make test runs it twice)
    for name in ("PUSHCORE_BROKER", "PUSHCORE_RABBITMQ_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


class Worker:
    """A real Dramatiq worker process; ``kill()`` is SIGKILL, ``stop()`` is SIGTERM."""

    def __init__(
        self, env: dict[str, str], log_path: Path, command: list[str] | None = None
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.command = command or [
            "-m",
            "dramatiq",
            "workers.boot:setup",
            "--processes",
            "1",
            "--threads",
            "4",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *self.command],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            if self.log_path.read_text().count("worker resources ready") >= self._starts:
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready: {self.log_path.read_text()[-3000:]}")

    _starts = 1

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._starts += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # to the main process only: Dramatiq forwards it to its workers, and a second
        # SIGTERM arriving at a worker makes it kill itself instead of shutting down
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
async def sims(sim_ca_dir: Path) -> AsyncIterator[Simulators]:
    async with Simulators.start(engine="h2", ca_dir=sim_ca_dir) as started:
        yield started


@pytest.fixture
def worker_factory(database_url: str, tmp_path: Path, clean_redis: None) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for w in workers:
        w.stop()


class Launch:
    """Starts workers for a test (``await launch(sims, PUSHCORE_X="1")``) and stops them
    all at its end."""

    def __init__(self, database_url: str, tmp_path: Path, workers: list[Worker]) -> None:
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.workers = workers

    async def __call__(self, sims: Simulators, **extra: str) -> Worker:
        worker = Worker(worker_env(self.database_url, sims, **extra), self.tmp_path / "worker.log")
        self.workers.append(worker)  # stopped at the test's end even if it fails to start
        worker.start()
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def launch(database_url: str, tmp_path: Path, worker_factory: list[Worker]) -> Launch:
    return Launch(database_url, tmp_path, worker_factory)


@pytest.fixture
def fanout_settings(database_url: str) -> Settings:
    return load_settings(
        environ={
            k: v for k, v in os.environ.items() if k in ("PUSHCORE_BROKER", "PUSHCORE_RABBITMQ_URL")
        },
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        redis_url=REDIS_URL,
        # the API registers the simulators' endpoints, as the workers send to them
        webpush_allow_loopback=True,
    )


@pytest.fixture
async def api(fanout_settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(fanout_settings))) as client:
        yield client

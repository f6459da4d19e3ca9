"""A production install (``pip install .``, no extras) runs the product without granian.

The simulators' fast engine (granian) is the ``pushcore[simulators]`` extra.  Here a fresh
virtualenv gets the package with no extra, and the commands an operator runs (``pushcore
--help``, ``pushcore api``, ``pushcore worker``) are started from it as real processes
against the test database and a Redis database of their own.

pip builds the wheel inside the source directory (it leaves ``build/`` there), and other
work may be going on in this checkout, so what is installed is a copy of what the build
reads: ``pyproject.toml``, the README it names and the two packages it finds.  pip uses its
normal cache and this machine's index settings: the first run builds and downloads, later
ones take seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.conftest import CHECKOUT

ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "pushcore", "workers")
VENV_TIMEOUT = 120
PIP_TIMEOUT = 600  # a cold cache builds and downloads everything once
# pytest's per-test timeout includes the first test's fixture set-up, the install: above
# the bounds of its subprocesses, which are what really limits each step
pytestmark = [pytest.mark.slow, pytest.mark.timeout(VENV_TIMEOUT + PIP_TIMEOUT + 120)]
COMMAND_TIMEOUT = 60
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30
_BASE_REDIS = os.environ.get("PUSHCORE_REDIS_URL", "redis://127.0.0.1:6379/0")
# Not the end-to-end tests' Redis database (8 to 15): an idle worker there would take their
# messages.  One of 1 to 4, named after the checkout like theirs.
REDIS_URL = urlunsplit(urlsplit(_BASE_REDIS)._replace(path=f"/{1 + int(CHECKOUT, 16) % 4}"))


@dataclass(frozen=True)
class Venv:
    root: Path
    workdir: Path  # the commands' cwd: no source tree there to import by accident

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def pushcore(self) -> Path:
        return self.root / "bin" / "pushcore"

    def env(self, **settings: str) -> dict[str, str]:
        # nothing of the test's own interpreter or settings leaks into the installed one
        leaked = ("PUSHCORE_", "PYTHON", "VIRTUAL_ENV")
        env = {k: v for k, v in os.environ.items() if not k.startswith(leaked)}
        env.update(settings)
        return env

    def run(self, *command: str | Path, **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(c) for c in command],
            cwd=self.workdir,
            env=self.env(**settings),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def start(self, *args: str, log: Path, **settings: str) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [str(self.pushcore), *args],
                cwd=self.workdir,
                env=self.env(**settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def _copy_build_inputs(target: Path) -> None:
    target.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=skip)
        else:
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("install")
    python = shutil.which("python3.11")
    assert python is not None, "python3.11 is not on PATH"
    source = base / "src"
    _copy_build_inputs(source)
    built = Venv(base / "venv", base / "work")
    built.workdir.mkdir()
    subprocess.run(
        [python, "-m", "venv", str(built.root)],
        check=True,
        timeout=VENV_TIMEOUT,
        env=built.env(),
        cwd=base,
    )
    pip = subprocess.run(
        [str(built.python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        env=built.env(),
        cwd=base,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return built


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the main process only (Dramatiq forwards it to its workers); the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Whatever a test started is killed at its end if it is still running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_granian_is_not_installed(venv: Venv) -> None:
    assert venv.run(venv.python, "-m", "pip", "show", "granian").returncode != 0
    probe = "import importlib.util, pushcore; print(importlib.util.find_spec('granian'))"
    found = venv.run(venv.python, "-c", probe)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "None"
    where = venv.run(venv.python, "-c", "import pushcore; print(pushcore.__file__)")
    assert where.stdout.strip().startswith(str(venv.root)), where.stdout


def test_help_and_the_simulators_hint(venv: Venv) -> None:
    help_ = venv.run(venv.pushcore, "--help")
    assert help_.returncode == 0, help_.stderr
    for command in ("api", "worker", "simulators"):
        assert command in help_.stdout
    simulators = venv.run(venv.pushcore, "simulators")
    assert simulators.returncode == 2
    assert simulators.stdout == ""
    lines = simulators.stderr.strip().splitlines()
    assert len(lines) == 1, simulators.stderr
    assert "pushcore[simulators]" in lines[0]


def test_h2_simulators_need_no_extra(
    venv: Venv, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # h2 is a dependency of the product (the aioapns backend imports it), and it is all the
    # in-process engine needs
    log = tmp_path / "simulators.log"
    proc = venv.start("simulators", "--engine", "h2", "--ca-dir", str(tmp_path), log=log)
    processes.append(proc)
    deadline = time.monotonic() + READY_TIMEOUT
    while log.read_text().count(" https://") < 3:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    assert _stop(proc) == 0, log.read_text()


def test_api_answers_healthz_and_stops_on_sigterm(
    venv: Venv, database_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    log = tmp_path / "api.log"
    proc = venv.start(
        "api",
        "--port",
        str(port),
        log=log,
        PUSHCORE_DATABASE_URL=database_url,
        PUSHCORE_REDIS_URL=REDIS_URL,
    )
    processes.append(proc)
    deadline = time.monotonic() + READY_TIMEOUT
    while (status := _healthz(port)) != 200:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"GET /healthz: {status}\n{log.read_text()}"
        time.sleep(0.1)
    assert _stop(proc) == 0, log.read_text()


def test_worker_boots_and_stops_on_sigterm(
    venv: Venv, database_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()  # this test's own database: nothing left from an earlier run
    finally:
        client.close()
    log = tmp_path / "worker.log"
    proc = venv.start(
        *("worker", "--processes", "1", "--threads", "1", "--metrics-port", "0"),
        log=log,
        PUSHCORE_DATABASE_URL=database_url,
        PUSHCORE_REDIS_URL=REDIS_URL,
        PUSHCORE_BROKER="redis",
        PUSHCORE_LOG_LEVEL="INFO",
        # the session's ledger is the end-to-end tests' too: this idle worker's reaper
        # leaves it alone for the few seconds it runs
        PUSHCORE_REAPER_INTERVAL_SECONDS="3600",
    )
    processes.append(proc)
    deadline = time.monotonic() + READY_TIMEOUT
    while "resources ready" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    time.sleep(2)  # running, not only booted
    assert proc.poll() is None, log.read_text()
    assert _stop(proc) == 0, log.read_text()
    assert "Traceback" not in log.read_text()

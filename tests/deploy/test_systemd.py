"""systemd units for a VM install: commands, signals and stop timeouts that match how
pushcore shuts down, hardening, and `systemd-analyze verify` when systemd is installed."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pushcore.config import declared
from tests.deploy.manifests import SYSTEMD
from workers.broker import QUEUES

UNITS = (
    "pushcore-api.service",
    "pushcore-worker@.service",
    "pushcore-simulators.service",
    "pushcore-migrate.service",
)
INSTALLED_BINARY = "/opt/pushcore/.venv/bin/pushcore"
API_SHUTDOWN_SECONDS = 10  # pushcore.api.app.SHUTDOWN_TIMEOUT
# a batch's requests (PUSHCORE_SEND_TIMEOUT_SECONDS) + its claim and write-back statements
# (2 x PUSHCORE_DB_COMMAND_TIMEOUT), at the defaults
WORKER_SHUTDOWN_SECONDS = 30 + 2 * 30
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
}


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name, encoding="utf-8")
    assert parser.sections(), f"{name} is empty"
    return parser


def _argv(unit: configparser.ConfigParser) -> list[str]:
    return shlex.split(unit["Service"]["ExecStart"])


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|min)?", value.strip())
    assert match, f"unexpected time span {value!r}"
    return int(match[1]) * (60 if match[2] == "min" else 1)


@pytest.mark.parametrize("name", UNITS)
def test_unit_basics(name: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    assert _argv(unit)[0] == INSTALLED_BINARY
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    assert "Description" in unit["Unit"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_api_unit() -> None:
    unit = _unit("pushcore-api.service")
    argv = _argv(unit)
    assert argv[1] == "api"
    assert "--host" in argv
    assert "--port" in argv
    assert "--workers" in argv
    assert _seconds(unit["Service"]["TimeoutStopSec"]) > API_SHUTDOWN_SECONDS


def test_worker_template() -> None:
    unit = _unit("pushcore-worker@.service")
    argv = _argv(unit)
    assert argv[1] == "worker"
    assert argv[argv.index("--queues") + 1] == "pushcore.%i"
    for flag in ("--processes", "--threads", "--metrics-port"):
        assert re.fullmatch(r"\$\{WORKER_[A-Z_]+\}", argv[argv.index(flag) + 1]), flag
    assert _seconds(unit["Service"]["TimeoutStopSec"]) > WORKER_SHUTDOWN_SECONDS
    # the per-instance file is required (no leading "-"): it holds the metrics port
    text = (SYSTEMD / "pushcore-worker@.service").read_text()
    assert "EnvironmentFile=/etc/pushcore/worker-%i.env" in text


def test_worker_instance_examples() -> None:
    """An example environment file per queue, with explicit counts and distinct ports."""
    ports = []
    for queue in QUEUES:
        instance = queue.removeprefix("pushcore.")
        path = SYSTEMD / f"worker-{instance}.env"
        assert path.exists(), f"no example for pushcore-worker@{instance}"
        values = dict(
            line.split("=", 1)
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        assert set(values) == {"WORKER_PROCESSES", "WORKER_THREADS", "WORKER_METRICS_PORT"}
        assert int(values["WORKER_PROCESSES"]) >= 1
        assert int(values["WORKER_THREADS"]) >= 1
        ports.append(int(values["WORKER_METRICS_PORT"]))
    assert len(set(ports)) == len(ports), "instances on one host need different ports"


def test_simulators_and_migrate_units() -> None:
    sims = _unit("pushcore-simulators.service")
    assert _argv(sims)[1] == "simulators"
    assert _seconds(sims["Service"]["TimeoutStopSec"]) > 0
    migrate = _unit("pushcore-migrate.service")
    assert _argv(migrate)[1:] == ["migrate"]
    assert migrate["Service"]["Type"] == "oneshot"
    assert _seconds(migrate["Service"]["TimeoutStopSec"]) > 0


def test_environment_file_names_only_real_settings() -> None:
    text = (SYSTEMD / "pushcore.env").read_text()
    named = set(re.findall(r"^#?\s*(PUSHCORE_[A-Z0-9_]+)=", text, re.MULTILINE))
    known = {name for name, _, _ in declared()}
    assert named
    assert not named - known, f"unknown settings: {sorted(named - known)}"
    assert {"PUSHCORE_DATABASE_URL", "PUSHCORE_REDIS_URL", "PUSHCORE_ADMIN_TOKEN"} <= named


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units (the binary path pointed at this checkout's
    virtualenv, as it must exist); it prints problems as warnings, so any line about our
    units fails."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    binary = Path(sys.executable).with_name("pushcore")
    assert binary.exists(), binary
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace(INSTALLED_BINARY, str(binary))
        (tmp_path / name).write_text(text)
    targets = [str(tmp_path / n) for n in UNITS if "@" not in n]
    targets += [
        str(tmp_path / f"pushcore-worker@{q.removeprefix('pushcore.')}.service") for q in QUEUES
    ]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *targets],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if "pushcore" in line]
    assert result.returncode == 0, output
    assert not ours, "\n".join(ours)

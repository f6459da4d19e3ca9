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

from pushcore.cli import build_parser
from pushcore.config import declared, load_settings
from tests.deploy.manifests import SYSTEMD
from tests.deploy.workercli import CONSUMER_STOP_MARGIN_SECONDS, dramatiq_run
from workers.broker import QUEUES

UNITS = (
    "pushcore-api.service",
    "pushcore-worker@.service",
    "pushcore-simulators.service",
    "pushcore-migrate.service",
)
INSTALLED_BINARY = "/opt/pushcore/.venv/bin/pushcore"
API_SHUTDOWN_SECONDS = 10  # pushcore.api.app.SHUTDOWN_TIMEOUT
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


def _env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (systemd's EnvironmentFile, without quoting: none is used here)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def _instances() -> dict[str, dict[str, str]]:
    """The example instances of pushcore-worker@: name -> its worker-<name>.env."""
    return {
        p.name.removeprefix("worker-").removesuffix(".env"): _env_file(p)
        for p in sorted(SYSTEMD.glob("worker-*.env"))
    }


def _expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """systemd's ${VAR} substitution in ExecStart (each word a whole variable here)."""
    out = []
    for word in argv:
        match = re.fullmatch(r"\$\{(\w+)\}", word)
        if match:
            assert match[1] in env, f"{match[1]} is not set by the environment files"
        out.append(env[match[1]] if match else word)
    return out


def test_worker_template() -> None:
    unit = _unit("pushcore-worker@.service")
    argv = _argv(unit)
    assert argv[1] == "worker"
    for flag in ("--processes", "--threads", "--queues", "--metrics-port"):
        assert re.fullmatch(r"\$\{WORKER_[A-Z_]+\}", argv[argv.index(flag) + 1]), flag
    # the per-instance file is required (no leading "-"): it holds the queues and the port
    text = (SYSTEMD / "pushcore-worker@.service").read_text()
    assert "EnvironmentFile=/etc/pushcore/worker-%i.env" in text


def test_worker_instances(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each example instance, its ExecStart run through the real `pushcore worker` up to its
    exec of Dramatiq: explicit counts, every queue served by exactly one instance (the same
    sets as the Kubernetes Deployments), distinct metrics ports, and TimeoutStopSec above
    Dramatiq's worker shutdown timeout and above the time a batch needs to finish."""
    unit = _unit("pushcore-worker@.service")
    stop = _seconds(unit["Service"]["TimeoutStopSec"])
    common = _env_file(SYSTEMD / "pushcore.env")
    settings = load_settings(environ=common)
    stop_batch = settings.send_timeout_seconds + 2 * settings.db_command_timeout
    assert stop > stop_batch
    served: dict[str, str] = {}
    ports = []
    instances = _instances()
    assert set(instances) == {"apns", "fcm", "webpush", "plan"}
    for name, values in instances.items():
        assert set(values) == {
            "WORKER_QUEUES", "WORKER_PROCESSES", "WORKER_THREADS", "WORKER_METRICS_PORT",
        }, name  # fmt: skip
        argv = _expand(_argv(unit), {**common, **values})
        run = dramatiq_run(argv, common, monkeypatch, tmp_path)
        assert run.processes == int(values["WORKER_PROCESSES"]) >= 1
        assert run.threads == int(values["WORKER_THREADS"]) >= 1
        for queue in run.queues:
            assert queue not in served, f"{queue} served by {served.get(queue)} and {name}"
            served[queue] = name
        assert run.shutdown_timeout_seconds >= stop_batch, name
        assert stop >= run.shutdown_timeout_seconds + CONSUMER_STOP_MARGIN_SECONDS, (
            f"TimeoutStopSec {stop} is not above Dramatiq's worker shutdown timeout "
            f"({run.shutdown_timeout_seconds:g} s) plus {CONSUMER_STOP_MARGIN_SECONDS:g} s"
        )
        ports.append(int(values["WORKER_METRICS_PORT"]))
    assert set(served) == set(QUEUES), "every queue has an instance"
    assert served["pushcore.plan"] == served["pushcore.maintenance"] == "plan"
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
    # the set-up installs Debian's systemd package when it is missing
    assert analyze is not None, "systemd-analyze is not installed (Debian package systemd)"
    binary = Path(sys.executable).with_name("pushcore")
    assert binary.exists(), binary
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace(INSTALLED_BINARY, str(binary))
        (tmp_path / name).write_text(text)
    targets = [str(tmp_path / n) for n in UNITS if "@" not in n]
    targets += [str(tmp_path / f"pushcore-worker@{name}.service") for name in _instances()]
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


@pytest.mark.parametrize("name", [n for n in UNITS if "@" not in n])
def test_commands_parse_with_the_real_cli(name: str) -> None:
    """The API, simulators and migrate command lines are accepted by `pushcore`'s parser
    (an option renamed in the code fails here, not on the VM)."""
    argv = _argv(_unit(name))
    args = build_parser().parse_args(argv[1:])
    assert args.command == argv[1]

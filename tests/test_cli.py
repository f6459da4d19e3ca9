"""The ``pushcore`` command: help, migrate, apps create, and bad arguments (exit code 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PUSHCORE = [sys.executable, "-m", "pushcore"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    full_env.update(env or {})
    return subprocess.run(
        [*PUSHCORE, *args], capture_output=True, text=True, timeout=60, env=full_env, check=False
    )


def test_help_explains_itself() -> None:
    out = run("--help")
    assert out.returncode == 0
    for word in ("migrate", "api", "apps", "config", "PUSHCORE_"):
        assert word in out.stdout


def test_migrate_is_idempotent(database_url: str) -> None:
    env = {"PUSHCORE_DATABASE_URL": database_url}
    out = run("migrate", env=env)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


def test_apps_create_json(database_url: str) -> None:
    out = run("apps", "create", "Shop", "--json", env={"PUSHCORE_DATABASE_URL": database_url})
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["app_code"].startswith("app_")
    assert created["server_key"].startswith("pcs_")
    assert created["identity_secret"]
    assert created["name"] == "Shop"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("nope",), {}, "invalid choice"),
        (("api", "--port", "99999"), {}, "port out of range"),
        (("api", "--port", "http"), {}, "not a port number"),
        (("simulators", "--apns-port", "-1"), {}, "port out of range"),
        (("simulators", "--latency", "-2"), {}, "must be >= 0"),
        (("demo", "--devices", "5"), {}, "between 10 and 5000000"),
        (("api", "--workers", "0"), {}, "between 1 and 64"),
        (("worker", "--threads", "0"), {}, "between 1 and 256"),
        (("worker", "--queues", "pushcore.sms"), {}, "unknown queue"),
        (("worker", "--shutdown-timeout", "0"), {}, "between 1 and 3600 seconds"),
        (("worker", "--shutdown-timeout", "1.5"), {}, "not a whole number of seconds"),
        (("worker", "--processes", "many"), {}, "not a whole number"),
        (("apps", "create", " "), {}, "NAME must be"),
        (("config",), {"PUSHCORE_DB_POOL_MAX": "lots"}, "PUSHCORE_DB_POOL_MAX"),
        (("config",), {"PUSHCORE_BATCH_SZIE": "5"}, "unknown setting"),
        (("config",), {"PUSHCORE_ADMIN_TOKEN": "short"}, "at least 16"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    out = run(*args, env=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_config_masks_secrets() -> None:
    out = run("config", env={"PUSHCORE_ADMIN_TOKEN": "a-very-secret-admin-token"})
    assert out.returncode == 0
    assert "a-very-secret-admin-token" not in out.stdout
    assert "PUSHCORE_ADMIN_TOKEN=***" in out.stdout


def test_demo_runs_the_registry_flow(database_url: str) -> None:
    out = run("demo", "--registry-only", env={"PUSHCORE_DATABASE_URL": database_url})
    assert out.returncode == 0, out.stderr
    assert "demo: registry flow complete" in out.stdout
    assert "-> 500" not in out.stdout


def test_unreachable_database_is_a_message_not_a_traceback() -> None:
    env = {"PUSHCORE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
    for args in (("apps", "create", "Shop"), ("prune-stale",), ("migrate",)):
        out = run(*args, env=env)
        assert out.returncode == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert out.stderr.startswith("pushcore"), out.stderr

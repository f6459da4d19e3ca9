"""The property-based run: every operation of the OpenAPI document, driven by schemathesis,
against ``pushcore api`` as a real process on a loopback port.

Requests carry real ids (an app, its key, an installation, a user, a message) and the
bearer each operation's security asks for, so they reach the handlers instead of stopping
at 401/404; half of the optional ids stay as generated, to reach the 404s too.  Data both
valid for the schema and not (schemathesis' positive and negative modes, NUL characters
included) is sent.  A run fails on any 5xx, on a status the document does not list for the
operation, on a wrong content type and on a response body that does not match its schema.

Bounded and deterministic: :data:`EXAMPLES` examples per operation with Hypothesis
derandomized (the same inputs every run, no example database), so CI is stable; about a
minute on a 2-core machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pushcore.api.openapi import build
from pushcore.api.routes import ROUTES
from tests.conftest import ADMIN_TOKEN
from tests.fanout.conftest import REDIS_URL
from tests.registry.helpers import apns_token, ec_pem

# examples per operation and mode; FUZZ_EXAMPLES=500 for a deeper run by hand
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
DOCUMENT = build(ROUTES)
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=True,
)
# The coverage phase (boundary values of every keyword) costs minutes of CPU to generate
# for a document of this size; the fuzzing phase reaches the same statuses within budget.
schema.config.phases.coverage.enabled = False
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
READY_SECONDS = 30.0


@dataclass(frozen=True)
class World:
    """The running API and the real ids and credentials of one app in it."""

    base_url: str
    app_code: str
    server_key: str
    key_id: str
    installation_id: str
    installation_secret: str
    external_user_id: str
    message_id: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pushcore api exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pushcore api not ready: {log.read_text()[-3000:]}")


def _make_world(base_url: str) -> World:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    app = requests.post(
        f"{base_url}/v1/apps",
        json={
            "name": "fuzzed",
            "apns": {
                "team_id": "ABCDE12345",
                "key_id": "KEY1234567",
                "private_key": ec_pem(),
                "topic": "com.example.fuzz",
            },
            "webpush": {"vapid_private_key": ec_pem(), "subject": "mailto:ops@example.com"},
        },
        headers=admin,
        timeout=10,
    ).json()
    server = {"Authorization": f"Bearer {app['server_key']}"}
    inst = requests.post(
        f"{base_url}/v1/apps/{app['app_code']}/installations",
        json={"platform": "ios", "push_token": apns_token()},
        timeout=10,
    ).json()
    user = "fuzz-user"
    requests.put(
        f"{base_url}/v1/apps/{app['app_code']}/installations/{inst['installation_id']}/user",
        json={"external_user_id": user, "email": "fuzz@example.com"},
        headers=server,
        timeout=10,
    ).raise_for_status()
    message = requests.post(
        f"{base_url}/v1/apps/{app['app_code']}/messages",
        json={"target": {"external_user_ids": [user]}, "notification": {"title": "hi"}},
        headers=server,
        timeout=10,
    ).json()
    return World(
        base_url=base_url,
        app_code=app["app_code"],
        server_key=app["server_key"],
        key_id=app["key_id"],
        installation_id=inst["installation_id"],
        installation_secret=inst["installation_secret"],
        external_user_id=user,
        message_id=message["message_id"],
    )


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("fuzz") / "api.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(
        PUSHCORE_DATABASE_URL=database_url,
        PUSHCORE_REDIS_URL=REDIS_URL,
        PUSHCORE_ADMIN_TOKEN=ADMIN_TOKEN,
        PUSHCORE_DB_POOL_MAX="4",
        PUSHCORE_LOG_LEVEL="WARNING",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushcore", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        _wait_ready(base_url, proc, log)
        yield _make_world(base_url)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # a 500 is logged with its traceback: show it with the failure it caused
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


def _keep_generated(value: Any) -> bool:
    """Half of the optional ids stay as generated (to reach the 404s), chosen by the value
    itself so that a run is repeatable."""
    return zlib.crc32(str(value).encode()) % 2 == 0


def _prepare(case: schemathesis.Case[Any], world: World) -> dict[str, str]:
    """Real ids into the path, and the bearer the operation's security names."""
    params = case.path_parameters or {}
    if "app_code" in params:
        params["app_code"] = world.app_code
    if "installation_id" in params and case.method != "DELETE":
        params["installation_id"] = world.installation_id
    real = {
        "external_user_id": world.external_user_id,
        "message_id": world.message_id,
        "key_id": world.key_id,
    }
    for name, value in real.items():
        # deleting the real key or user would leave the rest of the run without them
        if name in params and case.method != "DELETE" and not _keep_generated(params[name]):
            params[name] = value
    # (schemathesis also tries methods a path does not have: 405, with Allow)
    operation = DOCUMENT["paths"][case.path].get(case.method.lower(), {})
    security = operation.get("security", [])
    schemes = {name for requirement in security for name in requirement}
    bearer = None
    if "admin" in schemes:
        bearer = ADMIN_TOKEN
    elif "server_key" in schemes:
        bearer = world.server_key
    elif "installation_secret" in schemes:
        bearer = world.installation_secret
    return {"Authorization": f"Bearer {bearer}"} if bearer else {}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_5xx_or_an_undocumented_status(
    case: schemathesis.Case[Any], world: World
) -> None:
    headers = _prepare(case, world)
    started = time.monotonic()
    response = case.call(base_url=world.base_url, headers=headers, timeout=30)
    took = time.monotonic() - started
    with open("/tmp/hardening-fuzz-stats.txt", "a") as f:
        f.write(
            f"{case.method} {case.path} {response.status_code} {took:.3f} {response.text[:150]!r}\n"
        )
    case.validate_response(response, checks=CHECKS)

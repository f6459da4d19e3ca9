"""The compose file's pushcore services, run with podman as Compose would wire them, deliver
a notification end to end.

Compose itself cannot start the stack here (no Docker daemon; its PostgreSQL and Redis
images come from a registry), so each pushcore service of the normalized compose file
(`docker compose config`) is started with podman from the built image: its command, its
environment, its volumes, read-only root and tmpfs, `network_mode: service:simulators`
as a shared network namespace, its health check run in the container until it passes.  Only
what names the two registry services changes: PostgreSQL and Redis are this machine's
(a database and a Redis database of the test's own), reached from the containers' network
namespace at slirp's host alias.  Then an app is created, an iPhone and an Android device
register, a broadcast is sent through the API, and the simulators (asked inside their
container) must have accepted one notification each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushcore.cli import build_parser
from pushcore.providers.credentials import private_key_pem
from tests.conftest import CHECKOUT
from tests.deploy.container import (
    BUILD_TIMEOUT,
    NETWORK,
    compose_config,
    free_port,
    http_status,
    podman,
    run_flags,
    via_host,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 240)]
ADMIN_TOKEN = "compose-stack-admin-token-0123"
READY_TIMEOUT = 90.0
DELIVERY_TIMEOUT = 90.0


@pytest.fixture
def ca_volume() -> Iterator[str]:
    """The compose file's simulators-ca volume, one of the test's own."""
    name = f"pushcore-test-ca-{CHECKOUT[:8]}"
    podman("volume", "rm", "--force", name)
    created = podman("volume", "create", name)
    assert created.returncode == 0, created.stderr
    yield name
    podman("volume", "rm", "--force", name)


def _podman_run(
    image: str,
    service: dict[str, Any],
    *,
    env: dict[str, str],
    volumes: dict[str, str],
    network: str,
    publish: tuple[str, ...] = (),
) -> list[str]:
    """`podman run` arguments for one compose service (what this test's services use)."""
    assert service["image"] == image
    args = ["run", "--detach", *run_flags(), "--network", network, *publish]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    for mount in service.get("volumes", []):
        assert mount["type"] == "volume", mount
        ro = ":ro" if mount.get("read_only") else ""
        args += ["--volume", f"{volumes[mount['source']]}:{mount['target']}{ro}"]
    for path in service.get("tmpfs", []):
        args += ["--tmpfs", path]
    if service.get("read_only"):
        args.append("--read-only")
    return [*args, image, *service["command"]]


def _start(containers: list[str], args: list[str]) -> str:
    started = podman(*args, timeout=120)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    containers.append(cid)
    return cid


def _until_healthy(cid: str, service: dict[str, Any]) -> None:
    """The service's own compose health check, run in its container until it passes."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        check = podman("exec", cid, *test[1:], timeout=30)
        if check.returncode == 0:
            return
        logs = podman("logs", cid)
        assert time.monotonic() < deadline, (
            f"{service['command'][0]} never passed its health check: {check.stderr[-1500:]}\n"
            f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        )
        time.sleep(1)


def _call(base: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = Request(base + path, data=data, headers=headers, method=method)
    with urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _credentials(fcm_origin: str) -> dict[str, Any]:
    return {
        "apns": {
            "team_id": "TESTTEAM01",
            "key_id": "TESTKEY001",
            "topic": "com.example.compose",
            "private_key": private_key_pem(ec.generate_private_key(ec.SECP256R1())),
        },
        "fcm": {
            "service_account": {
                "type": "service_account",
                "project_id": "pushcore-compose",
                "private_key": private_key_pem(
                    rsa.generate_private_key(public_exponent=65537, key_size=2048)
                ),
                "client_email": "sender@pushcore-compose.iam.gserviceaccount.com",
                "token_uri": f"{fcm_origin}/token",
            }
        },
    }


def _sim_stats(cid: str, origin: str, ca_file: str) -> dict[str, Any]:
    """A simulator's counters with its per-token table, asked from inside the network
    namespace it listens in."""
    script = (
        "import ssl, sys, urllib.request as u; "
        f"c = ssl.create_default_context(cafile={ca_file!r}); "
        f"sys.stdout.write(u.urlopen({origin + '/__sim/stats?tokens=1'!r}, context=c, timeout=5)"
        ".read().decode())"
    )
    out = podman("exec", cid, "python3.11", "-c", script)
    assert out.returncode == 0, out.stderr
    stats: dict[str, Any] = json.loads(out.stdout)
    return stats


def test_compose_services_deliver_a_broadcast(
    image: str,
    image_database_url: str,
    ca_volume: str,
    image_redis_url: str,
    containers: list[str],
) -> None:
    services = compose_config()["services"]
    parser = build_parser()

    def env(name: str) -> dict[str, str]:
        e = dict(services[name]["environment"])
        assert urlsplit(e["PUSHCORE_DATABASE_URL"]).hostname == "postgres"
        assert urlsplit(e["PUSHCORE_REDIS_URL"]).hostname == "redis"
        e["PUSHCORE_DATABASE_URL"] = via_host(image_database_url)
        e["PUSHCORE_REDIS_URL"] = via_host(image_redis_url)
        e["PUSHCORE_ADMIN_TOKEN"] = ADMIN_TOKEN
        return e

    volumes = {"simulators-ca": ca_volume}
    migrate = podman(
        *_podman_run(image, services["migrate"], env=env("migrate"), volumes={}, network=NETWORK)
    )
    assert migrate.returncode == 0, migrate.stderr
    waited = podman("wait", migrate.stdout.strip(), timeout=120)
    containers.append(migrate.stdout.strip())
    assert waited.stdout.strip() == "0", podman("logs", migrate.stdout.strip()).stderr

    sims_service = services["simulators"]
    sims = _start(
        containers,
        _podman_run(image, sims_service, env=env("simulators"), volumes=volumes, network=NETWORK),
    )
    _until_healthy(sims, sims_service)

    worker_service = services["worker"]
    assert worker_service["network_mode"] == "service:simulators"
    worker = _start(
        containers,
        _podman_run(
            image,
            worker_service,
            env=env("worker"),
            volumes=volumes,
            network=f"container:{sims}",
        ),
    )

    api_service = services["api"]
    (published,) = api_service["ports"]
    port = free_port()
    api = _start(
        containers,
        _podman_run(
            image,
            api_service,
            env=env("api"),
            volumes=volumes,
            network=NETWORK,
            publish=("--publish", f"127.0.0.1:{port}:{published['target']}"),
        ),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while http_status(base + "/readyz") != 200:
        assert time.monotonic() < deadline, podman("logs", api).stderr[-3000:]
        time.sleep(0.5)
    _until_healthy(worker, worker_service)

    worker_env = env("worker")
    sims_args = parser.parse_args(sims_service["command"])
    ca_file = worker_env["PUSHCORE_CA_FILE"]
    fcm_origin = worker_env["PUSHCORE_FCM_ORIGIN"]
    app = _call(
        base, "POST", "/v1/apps", ADMIN_TOKEN, {"name": "compose", **_credentials(fcm_origin)}
    )
    code, key = app["app_code"], app["server_key"]
    ios_token, android_token = "ab" * 32, "compose:" + "x" * 100
    for platform, token in (("ios", ios_token), ("android", android_token)):
        device = {"platform": platform, "push_token": token}
        _call(base, "POST", f"/v1/apps/{code}/installations", None, device)
    sent = _call(
        base,
        "POST",
        f"/v1/apps/{code}/messages",
        key,
        {"target": {"all": True}, "notification": {"title": "From the compose stack"}},
    )
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        msg = _call(base, "GET", f"/v1/apps/{code}/messages/{sent['message_id']}", key)
        if msg["status"] in {"done", "failed", "cancelled"}:
            break
        assert time.monotonic() < deadline, (msg, podman("logs", worker).stderr[-3000:])
        time.sleep(0.5)
    assert msg["status"] == "done", msg
    assert msg["counts"]["targeted"] == 2
    assert msg["counts"]["delivered"] == 2, msg

    # each device's notification accepted once by its simulator (the FCM simulator also
    # answered the OAuth token request, which is not a registration's)
    apns = _sim_stats(sims, worker_env["PUSHCORE_APNS_ORIGIN"], ca_file)
    fcm = _sim_stats(sims, fcm_origin, ca_file)
    assert {t: c["accepted"] for t, c in apns["tokens"].items()} == {ios_token: 1}, apns
    assert {t: c["accepted"] for t, c in fcm["tokens"].items()} == {android_token: 1}, fcm
    assert worker_env["PUSHCORE_APNS_ORIGIN"].endswith(f":{sims_args.apns_port}")

"""The container image, built and run with podman from a Debian base made here with
debootstrap (no registry image can be pulled on this machine; deploy/container/build.sh).

The image runs as the Kubernetes manifests run it (uid 10001, read-only root, /tmp
writable): ``pushcore --help``; ``pushcore migrate`` and ``pushcore api`` against this
machine's PostgreSQL, answering its health routes, passing its own HEALTHCHECK and stopping
cleanly on SIGTERM as PID 1.  The containers have a network namespace of their own
(slirp4netns); they reach this machine's loopback services at slirp's host alias, and the
test reaches the API through a port published on 127.0.0.1.

A cold machine pays once for debootstrap and the dependency layers (a few minutes); the
base's root file system is kept under ~/.cache/pushcore and podman keeps the layers, so a
warm run rebuilds only what changed.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import BASE_URL, CHECKOUT
from tests.deploy.container import (
    build_image,
    inspect_image,
    kustomization_image,
    podman,
    project_version,
    run_flags,
)
from tests.deploy.manifests import container, deployments

BUILD_TIMEOUT = 900  # cold: debootstrap, the packages of both stages, every wheel
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 180)]
# slirp4netns's address for the host's loopback, inside the container's namespace
HOST_ALIAS = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true"
READY_TIMEOUT = 60.0
STOP_GRACE = 20
ADMIN_TOKEN = "image-test-admin-token-0123456789"


@pytest.fixture(scope="module")
def image() -> str:
    name = kustomization_image()
    build_image(name, timeout=BUILD_TIMEOUT)
    return name


def _via_host(url: str) -> str:
    """``url`` as a container sees it: loopback hosts become slirp's host alias."""
    parts = urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        return url
    netloc = parts.netloc.replace(parts.hostname, HOST_ALIAS, 1)
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of its own, empty: the image's `migrate` makes the schema."""
    parts = urlsplit(BASE_URL)
    name = f"pushcore_image_{CHECKOUT[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Every container a test started is removed at its end, running or not."""
    started: list[str] = []
    yield started
    for cid in started:
        podman("rm", "--force", "--time", "0", cid, timeout=60)


def _run(image: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    out = podman("run", "--rm", *run_flags(), "--read-only", image, *args, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_pushcore_help_and_version(image: str) -> None:
    code, out, err = _run(image, "--help")
    assert code == 0, err
    assert out.startswith("usage: pushcore")
    for command in ("api", "worker", "migrate", "simulators"):
        assert command in out
    code, out, err = _run(image, "--version")
    assert code == 0, err
    assert out.strip() == f"pushcore {project_version()}"
    code, out, err = _run(image, "worker", "--help")
    assert code == 0, err
    assert "--processes" in out


def test_bad_arguments_exit_2(image: str) -> None:
    code, _, err = _run(image, "api", "--port", "not-a-port")
    assert code == 2
    assert "--port" in err


def test_image_metadata(image: str) -> None:
    info = inspect_image(image)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["pushcore"]
    assert config["Cmd"][:1] == ["api"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "pushcore"
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    health = info["Healthcheck"]
    path = container(deployments()["pushcore-api"])["livenessProbe"]["httpGet"]["path"]
    assert any(path in word for word in health["Test"]), health


def test_final_stage_has_no_build_tools_and_no_root(image: str) -> None:
    probe = (
        "id -u; id -g; "
        "for t in gcc cc c++ make ld pip pip3 apt-get; do "
        "command -v $t >/dev/null && echo found $t; done; "
        "python3.11 -m pip --version 2>&1 || true; "
        "python3.11 -c 'import pycurl; print(pycurl.version)'; "
        "touch /opt/pushcore/x 2>&1 || true"
    )
    out = podman(
        "run", "--rm", *run_flags(), "--read-only", "--entrypoint", "sh", image, "-c", probe
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["10001", "10001"]
    found = [line.split()[1] for line in lines[2:] if line.startswith("found ")]
    # apt-get is Debian's own (the base's); compilers, make and pip are gone
    assert found == ["apt-get"], found
    assert "No module named pip" in out.stdout
    assert "nghttp2" in out.stdout, "pycurl's libcurl lacks HTTP/2"
    assert "Read-only file system" in out.stdout


def test_migrate_then_api_health_against_postgres(
    image: str, database_url: str, containers: list[str]
) -> None:
    in_container = _via_host(database_url)
    env = ("--env", f"PUSHCORE_DATABASE_URL={in_container}")
    migrate = podman(
        "run", "--rm", *run_flags(), "--read-only", "--network", NETWORK, *env, image,
        "migrate", timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"apps", "installations", "messages"} <= tables, tables

    port = _free_port()
    started = podman(
        "run", "--detach", *run_flags(), "--read-only", "--tmpfs", "/tmp",
        "--network", NETWORK, "--publish", f"127.0.0.1:{port}:8080",
        *env, "--env", f"PUSHCORE_ADMIN_TOKEN={ADMIN_TOKEN}", image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    containers.append(cid)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while _status(f"{base}/readyz") != 200:
        logs = podman("logs", cid).stdout
        assert time.monotonic() < deadline, f"/readyz never answered 200:\n{logs[-3000:]}"
        time.sleep(0.5)
    assert _status(f"{base}/healthz") == 200
    assert _status(f"{base}/v1/apps") == 401, "admin routes need the token"
    check = podman("healthcheck", "run", cid)
    assert check.returncode == 0, check.stdout + check.stderr

    # SIGTERM to PID 1 (the API itself): it stops within the grace, exit code 0
    t0 = time.monotonic()
    stopped = podman("stop", "--time", str(STOP_GRACE), cid, timeout=STOP_GRACE + 30)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - t0 < STOP_GRACE, "SIGTERM was ignored: killed after the grace"
    state = podman("inspect", "--format", "{{.State.ExitCode}}", cid)
    assert state.stdout.strip() == "0", podman("logs", cid).stderr[-3000:]


def test_healthcheck_fails_without_the_api(image: str, containers: list[str]) -> None:
    """The image's check is not a formality: a container whose API is not up is
    unhealthy (the simulators here, which serve no /healthz on 8080)."""
    started = podman(
        "run", "--detach", *run_flags(), "--read-only", "--tmpfs", "/tmp",
        "--network", "none", image, "simulators", "--engine", "h2", "--ca-dir", "/tmp/ca",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    containers.append(cid)
    check = podman("healthcheck", "run", cid)
    assert check.returncode != 0
    assert "unhealthy" in check.stdout + check.stderr

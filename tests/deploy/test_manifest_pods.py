"""Every pod of deploy/kubernetes runs in the image as its manifest says.

For the migration Job and each Deployment, the container is started with podman from the
built image with the manifest's command, the ConfigMap's and the Secret's environment (the
Secret's placeholders replaced by a database and a Redis database of the test's own on this
machine), the pod's user and group, a read-only root when the manifest asks for one, its
emptyDir mounts as tmpfs, its dropped capabilities and no privilege escalation.  Then the
manifest's own probes are asked through published ports: the Job must exit 0, each
Deployment's readiness probe must pass (HTTP GET, or a TCP connection to the workers'
metrics port), and each container must stop with exit code 0 on SIGTERM within its
terminationGracePeriodSeconds.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.deploy.container import (
    BUILD_TIMEOUT,
    NETWORK,
    free_port,
    http_status,
    podman,
    run_flags,
    via_host,
)
from tests.deploy.manifests import Doc, container, deployments, of_kind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT + 300)]
READY_TIMEOUT = 90.0
ADMIN_TOKEN = "manifest-pods-admin-token-0123"


def _environment(database_url: str, redis_url: str) -> dict[str, str]:
    (config,) = of_kind("ConfigMap")
    (secret,) = [s for s in of_kind("Secret") if s["metadata"]["name"] == "pushcore-secrets"]
    env: dict[str, str] = {**config["data"], **secret["stringData"]}
    env["PUSHCORE_DATABASE_URL"] = via_host(database_url)
    env["PUSHCORE_REDIS_URL"] = via_host(redis_url)
    env["PUSHCORE_ADMIN_TOKEN"] = ADMIN_TOKEN
    # the broker is Redis (the ConfigMap's); the RabbitMQ URL stays an unused placeholder
    assert env["PUSHCORE_BROKER"] == "redis"
    return env


def _podman_args(image: str, pod: Doc, env: dict[str, str], ports: dict[int, int]) -> list[str]:
    """`podman run` arguments for the one container of a pod template's spec."""
    (c,) = pod["containers"]
    assert c["image"] == "pushcore"
    assert c["command"][0] == "pushcore", "the command starts with the image's entry point"
    pod_security = pod["securityContext"]
    security = c.get("securityContext", {})
    args = [
        "run", "--detach", *run_flags(), "--network", NETWORK,
        "--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}",
    ]  # fmt: skip
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for cap in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for mount in c.get("volumeMounts", []):
        assert mount["name"] in empty_dirs, mount
        args += ["--tmpfs", mount["mountPath"]]
    for container_port, host_port in ports.items():
        args += ["--publish", f"127.0.0.1:{host_port}:{container_port}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    # a Kubernetes `command` replaces the image's entry point, as --entrypoint does
    return [*args, "--entrypoint", c["command"][0], image, *c["command"][1:]]


def _port_number(c: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


def _probe_ok(probe: Doc, c: Doc, ports: dict[int, int]) -> bool:
    if "httpGet" in probe:
        get = probe["httpGet"]
        host_port = ports[_port_number(c, get["port"])]
        return http_status(f"http://127.0.0.1:{host_port}{get['path']}") == 200
    host_port = ports[_port_number(c, probe["tcpSocket"]["port"])]
    try:
        with socket.create_connection(("127.0.0.1", host_port), timeout=2) as conn:
            # slirp's forwarder accepts at once and closes when the container refuses: a
            # port that is really open keeps the connection (a read times out, no EOF)
            conn.settimeout(0.5)
            try:
                return conn.recv(1) != b""
            except TimeoutError:
                return True
    except OSError:
        return False


def _start(args: list[str], containers: list[str]) -> str:
    started = podman(*args, timeout=120)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    containers.append(cid)
    return cid


def test_migration_job_then_every_deployment_runs_in_the_image(
    image: str,
    image_database_url: str,
    image_redis_url: str,
    containers: list[str],
) -> None:
    env = _environment(image_database_url, image_redis_url)
    (job,) = of_kind("Job")
    job_pod = job["spec"]["template"]["spec"]
    migrate = _start(_podman_args(image, job_pod, env, {}), containers)
    waited = podman("wait", migrate, timeout=job["spec"]["activeDeadlineSeconds"])
    assert waited.stdout.strip() == "0", podman("logs", migrate).stderr[-3000:]

    started: dict[str, tuple[str, Doc, dict[int, int]]] = {}
    for name, deployment in sorted(deployments().items()):
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        ports = {p["containerPort"]: free_port() for p in c.get("ports", [])}
        cid = _start(_podman_args(image, pod, env, ports), containers)
        started[name] = (cid, deployment, ports)
    assert {n for n in started if n.startswith("pushcore-worker-")} == {
        "pushcore-worker-apns", "pushcore-worker-fcm", "pushcore-worker-webpush",
        "pushcore-worker-plan",
    }  # fmt: skip

    deadline = time.monotonic() + READY_TIMEOUT
    waiting = dict(started)
    while waiting:
        for name, (_cid, deployment, ports) in list(waiting.items()):
            c = container(deployment)
            if _probe_ok(c["readinessProbe"], c, ports):
                assert _probe_ok(c["livenessProbe"], c, ports), name
                del waiting[name]
        if waiting and time.monotonic() > deadline:
            logs = {n: podman("logs", v[0]).stderr[-2000:] for n, v in waiting.items()}
            pytest.fail(f"never ready: {sorted(waiting)}\n{logs}")
        time.sleep(1)

    for name, (cid, deployment, _) in started.items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        t0 = time.monotonic()
        stopped = podman("stop", "--time", str(grace), cid, timeout=grace + 30)
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - t0 < grace, f"{name} ignored SIGTERM"
        code = podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip()
        assert code == "0", f"{name} exited {code}: {podman('logs', cid).stderr[-2000:]}"


def test_tcp_probe_fails_on_a_port_nothing_listens_on(image: str, containers: list[str]) -> None:
    """The TCP probe above is not fooled by slirp's forwarder, which accepts a published
    port's connections whether or not the container listens (so the test above means
    something)."""
    port = free_port()
    args = [
        "run", "--detach", *run_flags(), "--network", NETWORK,
        "--publish", f"127.0.0.1:{port}:9191", "--entrypoint", "sleep", image, "60",
    ]  # fmt: skip
    cid = _start(args, containers)
    assert podman("inspect", "--format", "{{.State.Running}}", cid).stdout.strip() == "true"
    c = {"ports": [{"name": "metrics", "containerPort": 9191}]}
    assert not _probe_ok({"tcpSocket": {"port": "metrics"}}, c, {9191: port})

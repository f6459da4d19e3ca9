"""The Kubernetes manifests: valid against the Kubernetes schemas (kubernetes-validate,
strict), consistent with one another and with the code (queues, settings, shutdown times),
and all listed in the kustomization."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from pushcore.config import Settings, declared, load_settings
from tests.deploy.manifests import (
    KUBERNETES,
    Doc,
    container,
    deployments,
    is_worker,
    load_yaml,
    manifest_files,
    objects,
    of_kind,
    option,
    worker_queues,
)
from workers.broker import QUEUES

KEDA_API = "keda.sh/v1alpha1"
SECRET_SETTINGS = {
    "PUSHCORE_ADMIN_TOKEN",
    "PUSHCORE_DATABASE_URL",
    "PUSHCORE_REDIS_URL",
    "PUSHCORE_RABBITMQ_URL",
}
PROVIDER_QUEUES = ("pushcore.apns", "pushcore.fcm", "pushcore.webpush")
API_SHUTDOWN_SECONDS = 10.0  # pushcore.api.app.SHUTDOWN_TIMEOUT


def _k8s_version() -> str:
    version: str = kubernetes_validate.latest_version()
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (1, 30), f"kubernetes-validate ships only {version}"
    return version


def _kubernetes_objects() -> list[tuple[str, Doc]]:
    return [(name, d) for name, d in objects() if not d["apiVersion"].startswith("keda.sh/")]


def _settings_from_manifests() -> Settings:
    config = of_kind("ConfigMap")
    secrets = [s for s in of_kind("Secret") if s["metadata"]["name"] == "pushcore-secrets"]
    assert len(config) == 1
    assert len(secrets) == 1
    env = {**config[0]["data"], **secrets[0]["stringData"]}
    return load_settings(environ=env)


def worker_shutdown_seconds(settings: Settings) -> float:
    """The longest a worker thread needs to finish its batch after SIGTERM: the batch's
    requests (send timeout) plus its claim and its write-back statements."""
    return settings.send_timeout_seconds + 2 * settings.db_command_timeout


@pytest.mark.parametrize(
    ("name", "obj"),
    _kubernetes_objects(),
    ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in _kubernetes_objects()],
)
def test_manifest_is_valid_kubernetes(name: str, obj: Doc) -> None:
    try:
        kubernetes_validate.validate(obj, _k8s_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']}: {exc}")


def test_strict_validation_rejects_unknown_fields() -> None:
    """The validator really is strict: a misspelt field fails (so the test above means
    something)."""
    api = copy.deepcopy(deployments()["pushcore-api"])
    container(api)["readinessProbes"] = container(api).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, _k8s_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == {p.name for p in manifest_files()}
    images = {i["name"]: i for i in kustomization["images"]}
    assert set(images) == {"pushcore"}
    assert images["pushcore"]["newName"]
    assert images["pushcore"]["newTag"]
    pod_specs = [d["spec"]["template"]["spec"] for d in of_kind("Deployment")]
    pod_specs += [j["spec"]["template"]["spec"] for j in of_kind("Job")]
    for spec in pod_specs:
        for c in spec["containers"]:
            assert c["image"] == "pushcore", "images are set by the kustomization's images:"


def test_settings_come_from_configmap_and_secret() -> None:
    config = of_kind("ConfigMap")[0]["data"]
    secret = next(s for s in of_kind("Secret") if s["metadata"]["name"] == "pushcore-secrets")
    secret_keys = set(secret["stringData"])
    assert secret_keys == SECRET_SETTINGS
    assert set(config) | secret_keys == {name for name, _, _ in declared()}
    assert not set(config) & secret_keys
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} is not a marked placeholder"
    _settings_from_manifests()  # every value parses, relations hold
    for deployment in deployments().values():
        refs = container(deployment)["envFrom"]
        assert {"configMapRef": {"name": "pushcore-config"}} in refs
        assert {"secretRef": {"name": "pushcore-secrets"}} in refs


def _resources_set(c: Doc) -> None:
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][part]), f"{c['name']}: {part}"


def test_api_deployment_service_and_pdb() -> None:
    api = deployments()["pushcore-api"]
    spec = api["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    c = container(api)
    argv = c["command"]
    assert argv[:2] == ["pushcore", "api"]
    assert option(argv, "--host") == "0.0.0.0"
    assert option(argv, "--port") == "8080"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pre_stop + API_SHUTDOWN_SECONDS < pod["terminationGracePeriodSeconds"]
    _resources_set(c)
    labels = spec["template"]["metadata"]["labels"]
    (service,) = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {"http", 8080}
    (pdb,) = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < spec["replicas"]


def test_worker_deployments() -> None:
    settings = _settings_from_manifests()
    workers = [d for d in deployments().values() if is_worker(d)]
    served: dict[str, str] = {}
    for deployment in workers:
        name = deployment["metadata"]["name"]
        c = container(deployment)
        argv: list[str] = c["command"]
        assert argv[:2] == ["pushcore", "worker"]
        assert int(option(argv, "--processes")) >= 1
        assert int(option(argv, "--threads")) >= 1
        port = int(option(argv, "--metrics-port"))
        for queue in worker_queues(deployment):
            assert queue in QUEUES, f"{name}: unknown queue {queue}"
            assert queue not in served, f"{queue} served by {served.get(queue)} and {name}"
            served[queue] = name
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > worker_shutdown_seconds(settings), name
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            target = c[probe]["tcpSocket"]["port"]
            assert ports.get(target, target) == port, f"{name}: {probe} on {target}"
        _resources_set(c)
    assert set(served) == set(QUEUES), "every queue has its workers"
    for queue in PROVIDER_QUEUES:
        owner = next(d for d in workers if d["metadata"]["name"] == served[queue])
        assert worker_queues(owner) == [queue], f"{queue} has a Deployment of its own"
    assert served["pushcore.plan"] == served["pushcore.maintenance"]


def test_migration_job() -> None:
    (job,) = of_kind("Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["pushcore", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def _keda(kind: str) -> list[Doc]:
    found = of_kind(kind)
    for d in found:
        assert d["apiVersion"] == KEDA_API, f"{kind} {d['metadata']['name']}"
    return found


def test_scaled_objects_target_worker_queues() -> None:
    """One ScaledObject per worker Deployment, each scaling on the Redis lists
    (``dramatiq:<queue>``) of exactly the queues that Deployment serves."""
    workers = {n: d for n, d in deployments().items() if is_worker(d)}
    auths = {a["metadata"]["name"] for a in _keda("TriggerAuthentication")}
    scaled = _keda("ScaledObject")
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    assert sorted(targets) == sorted(workers), "one ScaledObject per worker Deployment"
    for obj in scaled:
        spec: dict[str, Any] = obj["spec"]
        ref = spec["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment"
        deployment = workers[ref["name"]]
        assert spec["minReplicaCount"] >= 1, "the reaper must keep running"
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        lists = []
        for trigger in spec["triggers"]:
            assert trigger["type"] == "redis"
            meta = trigger["metadata"]
            assert int(meta["listLength"]) > 0
            assert meta.get("address") or meta.get("addressFromEnv") or meta.get("host")
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auths
            lists.append(meta["listName"])
        assert sorted(lists) == sorted(f"dramatiq:{q}" for q in worker_queues(deployment))

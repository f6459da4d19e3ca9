"""The Kubernetes manifests: valid against the Kubernetes schemas (kubernetes-validate,
strict), consistent with one another and with the code (queues, settings, shutdown times),
and all listed in the kustomization."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from pushcore.cli import build_parser
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
    yaml,
)
from tests.deploy.workercli import CONSUMER_STOP_MARGIN_SECONDS, dramatiq_run
from workers.broker import QUEUES

KEDA_API = "keda.sh/v1alpha1"
SECRET_SETTINGS = {
    "PUSHCORE_ADMIN_TOKEN",
    "PUSHCORE_DATABASE_URL",
    "PUSHCORE_REDIS_URL",
    "PUSHCORE_RABBITMQ_URL",
    "PUSHCORE_CONSOLE_SECRET",
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


def _manifest_environ() -> dict[str, str]:
    """The environment the pods get: the ConfigMap's and the Secret's values."""
    config = of_kind("ConfigMap")
    secrets = [s for s in of_kind("Secret") if s["metadata"]["name"] == "pushcore-secrets"]
    assert len(config) == 1
    assert len(secrets) == 1
    return {**config[0]["data"], **secrets[0]["stringData"]}


def _settings_from_manifests() -> Settings:
    return load_settings(environ=_manifest_environ())


def batch_finish_seconds(settings: Settings) -> float:
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


def test_manifests_are_namespace_agnostic() -> None:
    """No object names a namespace and none is created: the namespace is the deployer's
    choice (an overlay's `namespace:` or `kubectl apply -k ... -n`)."""
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    assert "namespace" not in kustomization
    for name, obj in objects():
        assert obj["kind"] != "Namespace", name
        assert "namespace" not in obj["metadata"], f"{name}: {obj['metadata']['name']}"
    for path in manifest_files():
        assert ".pushcore.svc" not in path.read_text(), f"{path.name} names a namespace"


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
    assert build_parser().parse_args(argv[1:]).command == "api"
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


def test_worker_deployments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each worker command, run through the real `pushcore worker` up to its exec of
    Dramatiq: explicit counts, known queues each served once, probes on the metrics port,
    and a grace period above Dramatiq's worker shutdown timeout (what `pushcore worker`
    passes, else Dramatiq's default) and above the time a batch needs to finish."""
    settings = _settings_from_manifests()
    workers = [d for d in deployments().values() if is_worker(d)]
    served: dict[str, str] = {}
    for deployment in workers:
        name = deployment["metadata"]["name"]
        c = container(deployment)
        argv: list[str] = c["command"]
        assert argv[:2] == ["pushcore", "worker"]
        run = dramatiq_run(argv, _manifest_environ(), monkeypatch, tmp_path)
        assert run.processes == int(option(argv, "--processes")) >= 1, name
        assert run.threads == int(option(argv, "--threads")) >= 1, name
        assert run.queues == worker_queues(deployment), name
        port = int(option(argv, "--metrics-port"))
        for queue in run.queues:
            assert queue in QUEUES, f"{name}: unknown queue {queue}"
            assert queue not in served, f"{queue} served by {served.get(queue)} and {name}"
            served[queue] = name
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > batch_finish_seconds(settings), name
        # the processes wait long enough for a batch to finish before closing connections
        assert run.shutdown_timeout_seconds >= batch_finish_seconds(settings), name
        assert grace >= run.shutdown_timeout_seconds + CONSUMER_STOP_MARGIN_SECONDS, (
            f"{name}: terminationGracePeriodSeconds {grace} is not above Dramatiq's worker "
            f"shutdown timeout ({run.shutdown_timeout_seconds:g} s) plus "
            f"{CONSUMER_STOP_MARGIN_SECONDS:g} s"
        )
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
    assert build_parser().parse_args(c["command"][1:]).command == "migrate"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def _keda(kind: str) -> list[Doc]:
    found = of_kind(kind)
    for d in found:
        assert d["apiVersion"] == KEDA_API, f"{kind} {d['metadata']['name']}"
    return found


def test_scaled_objects_target_worker_queues() -> None:
    """KEDA's CRDs are not in the Kubernetes schemas: checked here.  One ScaledObject per
    worker Deployment, each scaling on the Redis lists (``dramatiq:<queue>``) of exactly the
    queues that Deployment serves, with the Redis address and password coming from a Secret
    through a TriggerAuthentication (so no manifest names a host in a namespace)."""
    workers = {n: d for n, d in deployments().items() if is_worker(d)}
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    auths: dict[str, dict[str, str]] = {}
    for auth in _keda("TriggerAuthentication"):
        params = {}
        for ref in auth["spec"]["secretTargetRef"]:
            secret = secrets.get(ref["name"])
            assert secret is not None, f"{auth['metadata']['name']}: no Secret {ref['name']}"
            params[ref["parameter"]] = secret["stringData"][ref["key"]]
        auths[auth["metadata"]["name"]] = params
    scaled = _keda("ScaledObject")
    assert {s["kind"] for s in scaled} == {"ScaledObject"}
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    assert sorted(targets) == sorted(workers), "one ScaledObject per worker Deployment"
    for obj in scaled:
        spec: dict[str, Any] = obj["spec"]
        assert set(spec) <= {
            "scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
            "cooldownPeriod", "idleReplicaCount", "fallback", "advanced", "triggers",
            "initialCooldownPeriod",
        }, obj["metadata"]["name"]  # fmt: skip
        ref = spec["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment"
        assert ref.get("apiVersion", "apps/v1") == "apps/v1"
        deployment = workers[ref["name"]]
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
        assert spec["minReplicaCount"] >= 1, "the reaper must keep running"
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        lists = []
        for trigger in spec["triggers"]:
            assert trigger["type"] == "redis"
            meta = trigger["metadata"]
            assert int(meta["listLength"]) > 0
            assert int(meta.get("activationListLength", "0")) >= 0
            assert int(meta.get("databaseIndex", "0")) == 0, "the database of PUSHCORE_REDIS_URL"
            assert not {"address", "host", "port"} & set(meta), "the address is in the Secret"
            params = auths[trigger["authenticationRef"]["name"]]
            assert {"address", "password"} <= set(params)
            host, _, port = params["address"].rpartition(":")
            assert host, "KEDA wants host:port"
            assert port.isdigit(), "KEDA wants host:port"
            assert "CHANGE-ME" in host, "the address is a marked placeholder"
            lists.append(meta["listName"])
        assert sorted(lists) == sorted(f"dramatiq:{q}" for q in worker_queues(deployment))


def test_kustomize_build(tmp_path: Path) -> None:
    """`kubectl kustomize` (when kubectl is installed; it needs no cluster) builds every
    object with the image set, and an overlay's `namespace:` lands on all of them."""
    kubectl = shutil.which("kubectl")
    # no Debian package: this machine's image carries it; elsewhere install it by hand
    assert kubectl is not None, "kubectl is needed for this test (kubernetes.io/docs/tasks/tools)"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        # kustomize takes a directory only by a relative path
        f"namespace: push-test\nresources:\n  - {os.path.relpath(KUBERNETES, overlay)}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    key = [(d["kind"], d["metadata"]["name"]) for d in built]
    assert sorted(key) == sorted((d["kind"], d["metadata"]["name"]) for _, d in objects())
    image = load_yaml(KUBERNETES / "kustomization.yaml")["images"][0]
    for d in built:
        assert d["metadata"]["namespace"] == "push-test", d["metadata"]["name"]
        if d["kind"] in {"Deployment", "Job"}:
            for c in d["spec"]["template"]["spec"]["containers"]:
                assert c["image"] == f"{image['newName']}:{image['newTag']}"

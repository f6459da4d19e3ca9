"""Loading the files under deploy/ for the tests."""

from __future__ import annotations

import importlib
import shlex
from functools import cache
from pathlib import Path
from typing import Any

# PyYAML has no type stubs installed here; it is used only to read the files.
yaml: Any = importlib.import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"

Doc = dict[str, Any]


def load_yaml_documents(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def load_yaml(path: Path) -> Doc:
    docs = load_yaml_documents(path)
    assert len(docs) == 1, f"{path.name}: expected one document"
    return docs[0]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest (the kustomization itself excluded)."""
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _all_objects() -> tuple[tuple[str, Doc], ...]:
    return tuple((p.name, d) for p in manifest_files() for d in load_yaml_documents(p))


def objects() -> list[tuple[str, Doc]]:
    """(file name, object) of every document in every manifest."""
    return list(_all_objects())


def of_kind(kind: str) -> list[Doc]:
    return [d for _, d in objects() if d.get("kind") == kind]


def deployments() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in of_kind("Deployment")}


def container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv`` (fails the test when absent)."""
    assert name in argv, f"{name} missing from {shlex.join(argv)}"
    i = argv.index(name)
    assert i + 1 < len(argv), f"{name} has no value in {shlex.join(argv)}"
    return argv[i + 1]


def worker_queues(deployment: Doc) -> list[str]:
    return option(container(deployment)["command"], "--queues").split(",")


def is_worker(deployment: Doc) -> bool:
    return "worker" in container(deployment)["command"][:2]

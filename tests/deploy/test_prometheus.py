"""Prometheus and Grafana files: promtool accepts the rules and the scrape configuration,
the alerts asked for exist and say what to do, and every metric that the rules and the
dashboard name is one the code (or Dramatiq, or Prometheus) exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import (
    GRAFANA,
    PROMETHEUS,
    ROOT,
    SYSTEMD,
    container,
    deployments,
    load_yaml,
    yaml,
)
from tests.deploy.metrics_names import (
    ALL_METRICS,
    EXTERNAL_METRICS,
    PUSHCORE_METRICS,
    base_name,
)
from tests.deploy.promql import selected_names

REQUIRED_ALERTS = {
    "PushcoreBacklogGrowing": "pushcore_queue_depth",
    "PushcoreSendsFailing": "pushcore_notifications_total",
    "PushcoreDeadRegistrationSpike": "pushcore_registrations_deleted_total",
    "PushcoreSenderErrors": "pushcore_sender_errors_total",
    "PushcoreWorkersDown": "up",
    "PushcoreApnsCertificateExpiring": "pushcore_apns_credentials_expiry_seconds",
    "PushcoreProviderPausedRepeatedly": "pushcore_provider_pauses_total",
    "PushcoreWriteBacksDropped": "pushcore_write_back_failures_total",
    "PushcoreWebhookBacklogGrowing": "pushcore_webhook_outbox_backlog",
}
# Debian's prometheus package is built without Kubernetes service discovery.
_NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's `prometheus` package "
            "(apt-get install -y prometheus)"
        )
    return path


def _run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_alert_rules_pass_promtool(promtool: str) -> None:
    result = _run(promtool, "rules", "alerts.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_when_they_should(promtool: str, tmp_path: Path) -> None:
    """`promtool test rules` (tests/deploy/alerts_test.yml): each required alert fires on a
    series that should page and not on its look-alike (flat backlog, 1% failures, a big
    campaign at the usual dead share, a short scrape gap, a far expiry).  promtool compares
    annotations verbatim, so the rules are tested from a copy without them."""
    rules: dict[str, Any] = load_yaml(PROMETHEUS / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(Path(__file__).with_name("alerts_test.yml"), tmp_path / "alerts_test.yml")
    cases: dict[str, Any] = load_yaml(tmp_path / "alerts_test.yml")
    tested = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"]}
    assert set(REQUIRED_ALERTS) <= tested, f"untested: {sorted(set(REQUIRED_ALERTS) - tested)}"
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """`promtool check config prometheus.yml` (which also checks alerts.yml).  Debian's
    promtool has no Kubernetes discovery: then the Kubernetes jobs are checked with their
    discovery swapped for a static target (relabelling and the rest still checked) and the
    discovery blocks are checked here."""
    result = _run(promtool, "config", "prometheus.yml", cwd=PROMETHEUS)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    assert _NO_KUBERNETES_SD in output, output
    config: dict[str, Any] = load_yaml(PROMETHEUS / "prometheus.yml")
    for job in config["scrape_configs"]:
        sd = job.pop("kubernetes_sd_configs", None)
        if sd is None:
            continue
        for block in sd:
            assert block["role"] in {"pod", "endpoints", "service", "endpointslice"}, block
            assert all(isinstance(n, str) for n in block.get("namespaces", {}).get("names", []))
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    result = _run(promtool, "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_match_alerts() -> None:
    """Whatever the discovery, targets end up as job="pushcore-api"/"pushcore-worker"."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    jobs: dict[str, set[str]] = {"pushcore-api": set(), "pushcore-worker": set()}
    for job in config["scrape_configs"]:
        name = job["job_name"]
        for rule in job.get("relabel_configs", []):
            if rule.get("target_label") == "job":
                name = rule["replacement"]
        jobs[name].add("kubernetes" if "kubernetes_sd_configs" in job else "static")
        assert job["metrics_path"] == {"pushcore-api": "/metrics", "pushcore-worker": "/"}[name]
    assert jobs == {
        "pushcore-api": {"static", "kubernetes"},
        "pushcore-worker": jobs["pushcore-api"],
    }


def test_scrape_targets_match_the_deployments() -> None:
    """The static worker targets use the systemd examples' metrics ports; the Kubernetes
    jobs keep the container ports named as in the manifests, with the labels they carry."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    static_ports = {
        int(target.rsplit(":", 1)[1])
        for group in jobs["pushcore-worker"]["static_configs"]
        for target in group["targets"]
    }
    example_ports = set()
    for path in SYSTEMD.glob("worker-*.env"):
        port = re.search(r"^WORKER_METRICS_PORT=(\d+)$", path.read_text(), re.MULTILINE)
        assert port, path.name
        example_ports.add(int(port[1]))
    assert static_ports == example_ports
    for job_name, component, port_name in (
        ("pushcore-api-kubernetes", "api", "http"),
        ("pushcore-worker-kubernetes", "worker", "metrics"),
    ):
        keep = {
            r["source_labels"][0]: r["regex"]
            for r in jobs[job_name]["relabel_configs"]
            if r.get("action") == "keep"
        }
        assert keep["__meta_kubernetes_pod_label_app_kubernetes_io_component"] == component
        assert keep["__meta_kubernetes_pod_container_port_name"] == port_name
        matching = [
            d
            for d in deployments().values()
            if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            == component
        ]
        assert matching, component
        for deployment in matching:
            names = {p["name"] for p in container(deployment)["ports"]}
            assert port_name in names, deployment["metadata"]["name"]


def _rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"]]


def test_required_alerts_exist_and_explain() -> None:
    rules = {r["alert"]: r for r in _rules()}
    for alert, metric in REQUIRED_ALERTS.items():
        assert alert in rules, f"missing alert {alert}"
        assert metric in selected_names(rules[alert]["expr"]), alert
    for name, rule in rules.items():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert len(annotations["description"]) > 80, f"{name}: say what to do"
        assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rules["PushcoreWorkersDown"]["expr"].strip() == 'up{job="pushcore-worker"} == 0'
    assert "14 * 86400" in rules["PushcoreApnsCertificateExpiring"]["expr"]
    assert 'outcome="failed"' in rules["PushcoreSendsFailing"]["expr"]
    assert "0.05" in rules["PushcoreSendsFailing"]["expr"]
    assert rules["PushcoreSendsFailing"]["for"] == "10m"
    spike = rules["PushcoreDeadRegistrationSpike"]["expr"]
    assert "pushcore_registrations_deleted_total[1d]" in spike, "baseline: the 1-day average"
    assert rules["PushcoreBacklogGrowing"]["for"] == "10m"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "pushcore.json").read_text())
    return data


def _dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> list[str]:
        found = []
        for panel in panels:
            found += [t["expr"] for t in panel.get("targets", [])]
            found += walk(panel.get("panels", []))
        return found

    return walk(_dashboard()["panels"])


def test_dashboard_structure() -> None:
    dash = _dashboard()
    assert dash["uid"]
    assert dash["title"]
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in (
        "platform and outcome",
        "batch latency",
        "backlog",
        "status",
        "deleted",
        "sender errors",
        "api requests",
        "api latency",
    ):
        assert topic in titles, f"no panel about {topic}"
    variables = {v["name"] for v in dash["templating"]["list"]}
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    assert "datasource" in variables
    exprs = " ".join(_dashboard_exprs())
    for q in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({q}, sum by (le, platform) (rate(pushcore_batch_seconds_bucket"
            in exprs
        )


@pytest.mark.parametrize(
    ("where", "expr"),
    [(f"alert {r['alert']}", r["expr"]) for r in _rules()]
    + [("dashboard", e) for e in _dashboard_exprs()],
)
def test_named_metrics_are_known(where: str, expr: str) -> None:
    names = {base_name(n) for n in selected_names(expr)}
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - ALL_METRICS
    assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)} in {expr!r}"


def test_pushcore_metrics_are_exported_by_the_code() -> None:
    """Each name in PUSHCORE_METRICS is a string literal in pushcore/ or workers/, and every
    pushcore_* metric the code declares is known to the tests."""
    sources = [p for d in ("pushcore", "workers") for p in sorted((ROOT / d).rglob("*.py"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    literals = set(re.findall(r"""["'](pushcore_[a-z0-9_]+)["']""", text))
    missing = PUSHCORE_METRICS - literals
    assert not missing, f"not in the code: {sorted(missing)}"
    declared = set(
        re.findall(
            r"""(?:Counter|Gauge|Histogram|Summary)\(\s*["'](pushcore_[a-z0-9_]+)["']""", text
        )
    )
    assert declared == PUSHCORE_METRICS
    assert not {m for m in EXTERNAL_METRICS if m.startswith("pushcore_")}


def test_dramatiq_metrics_are_exported_by_dramatiq() -> None:
    """The dramatiq_* names are those of the installed Dramatiq's Prometheus middleware."""
    import dramatiq.middleware.prometheus as middleware

    source = Path(middleware.__file__).read_text(encoding="utf-8")
    for name in EXTERNAL_METRICS - {"up"}:
        assert f'"{name}"' in source, name

"""docs/operations.md against what it describes: the measured sizing rows are the benchmark
results they cite, and every alert rule has its row in the failure-mode table."""

from __future__ import annotations

import json
import re

from tests.deploy.manifests import PROMETHEUS, ROOT, load_yaml

GUIDE = ROOT / "docs" / "operations.md"
SIZING = "## How many workers for X notifications per minute"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def _number(cell: str) -> int:
    return int(cell.replace(",", "").strip())


def test_measured_sizing_rows_match_benchmark_results() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert SIZING in text
    section = _section(text, SIZING)
    assert "make bench" in section
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| measured |")
    ]
    assert rows, "no measured row"
    for row in rows:
        devices, nps, result = _number(row[1]), _number(row[3]), row[6].strip("`")
        data = json.loads((ROOT / result).read_text(encoding="utf-8"))
        assert data["benchmark"] == "fanout", result
        assert data["config"]["devices"] == devices, result
        assert data["notifications_per_second"] == nps, result
        assert f"{data['wall_seconds_to_done']:.1f} s" == row[2], result
        assert f"{data['cpu_seconds_per_1000']['workers']:.3f}" == row[5], result
        per_process = nps / data["config"]["processes"]
        assert abs(_number(row[4].lstrip("~")) - per_process) <= 0.05 * per_process, result


def test_every_alert_is_explained() -> None:
    table = _section(GUIDE.read_text(encoding="utf-8"), "## Failure modes and alerts")
    documented = set(re.findall(r"^\| `(Pushcore\w+)` \|", table, re.MULTILINE))
    rules = load_yaml(PROMETHEUS / "alerts.yml")
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert documented == alerts

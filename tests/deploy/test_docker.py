"""Container images: hadolint, then the properties the deployment relies on.

No Docker engine runs here, so the images are never built; the Dockerfiles are linted by
hadolint and read instruction by instruction for what lint does not check.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.deploy.support import DEPLOY, container_config, run_tool

DOCKERFILES = {
    "cpu": DEPLOY / "docker" / "cpu.Dockerfile",
    "cuda": DEPLOY / "docker" / "cuda.Dockerfile",
}
# A tag that names a release: digits, not a moving tag such as latest or 3.11-slim.
PINNED_TAG = re.compile(r"^\d+\.\d+\.\d+[\w.-]*$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(path: Path) -> list[list[Instruction]]:
    """Stages of a Dockerfile, each a list of instructions (continuations joined)."""
    stages: list[list[Instruction]] = []
    logical = ""
    for line in path.read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).strip().partition(" ")
        logical = ""
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def test_hadolint_finds_nothing() -> None:
    run_tool("hadolint", "--no-color", "--failure-threshold", "style", *DOCKERFILES.values())


@pytest.mark.parametrize("variant", sorted(DOCKERFILES))
def test_multi_stage_non_root_with_healthcheck(variant: str) -> None:
    build, runtime = parse(DOCKERFILES[variant])
    config = container_config((DEPLOY / "config" / "alignwatch.yaml").read_text())

    for stage in (build, runtime):
        image = stage[0].arguments.split()[0]
        tag = image.partition(":")[2]
        assert PINNED_TAG.match(tag), f"{variant}: base image {image} is not pinned to a release"
    assert build[0].arguments.endswith("AS build")
    assert build[0].arguments.split()[0] == runtime[0].arguments.split()[0]

    installs = " && ".join(arguments(build, "RUN"))
    assert "pip install ." in installs
    assert "pip install --no-deps toxic-comment-classifier==0.3.0" in installs
    assert "COPY --from=build /opt/alignwatch /opt/alignwatch" in [
        f"COPY {a}" for a in arguments(runtime, "COPY")
    ]

    user = arguments(runtime, "USER")[-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) >= 1000, user
    assert json.loads(arguments(runtime, "ENTRYPOINT")[0]) == ["alignwatch"]
    command = json.loads(arguments(runtime, "CMD")[0])
    assert command == ["run", "--config", "/etc/alignwatch/alignwatch.yaml"]
    assert "deploy/config/alignwatch.yaml /etc/alignwatch/alignwatch.yaml" in arguments(
        runtime, "COPY"
    )

    (healthcheck,) = arguments(runtime, "HEALTHCHECK")
    assert f"http://127.0.0.1:{config.api.port}/healthz" in healthcheck
    exposed = {int(port) for port in " ".join(arguments(runtime, "EXPOSE")).split()}
    assert exposed == {config.api.port, config.metrics.port}

    environment = " ".join(arguments(runtime, "ENV"))
    for offline in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1"):
        assert offline in environment, f"{variant}: models load from the image only"
    if variant == "cuda":
        assert "NVIDIA_VISIBLE_DEVICES=all" in environment


@pytest.mark.parametrize("variant", sorted(DOCKERFILES))
def test_build_context_holds_what_the_build_copies(variant: str) -> None:
    """Every COPY source exists and passes the BuildKit ignore file beside the Dockerfile."""
    dockerfile = DOCKERFILES[variant]
    patterns = [
        line
        for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def sent(path: str) -> bool:
        included = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(f"{bare}/"):
                included = negated
        return included

    for stage in parse(dockerfile):
        for copy in arguments(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{variant}: COPY {source}: no such path"
                assert sent(source.rstrip("/")), f"{variant}: {source} is not in the context"

"""The systemd unit, by `systemd-analyze verify` (works without systemd running as init)."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from tests.deploy.support import DEPLOY, container_config, run_tool

UNIT = DEPLOY / "systemd" / "alignwatch.service"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verify in a scratch root: the unit as installed, the executable it names (a stub, the
    venv is not installed here) and the host's own units for the default dependencies.
    systemd-analyze reports bad settings on stderr and still exits 0, so any output fails."""
    executable = shlex.split(unit()["ExecStart"])[0]
    stub = tmp_path / executable.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    (units / UNIT.name).write_bytes(UNIT.read_bytes())
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "systemd" / "system").symlink_to("/lib/systemd/system")
    result = run_tool("systemd-analyze", "verify", f"--root={tmp_path}", "--man=no", UNIT.name)
    assert not result.stdout.strip() and not result.stderr.strip(), result.stderr


def unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_daemon_runs_as_documented() -> None:
    service = unit()
    config = container_config((DEPLOY / "config" / "alignwatch.yaml").read_text())
    assert shlex.split(service["ExecStart"])[1:] == [
        "run",
        "--config",
        "/etc/alignwatch/alignwatch.yaml",
    ]
    assert service["DynamicUser"] == "yes" and service["StateDirectory"] == "alignwatch"
    assert config.store.path.parent == Path("/var/lib/", service["StateDirectory"])
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > config.runtime.shutdown_timeout
    assert service["RestartPreventExitStatus"] == "2"  # config errors do not restart
    assert service["EnvironmentFile"] == "-/etc/alignwatch/alignwatch.env"

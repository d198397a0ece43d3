"""Alerts from window evaluation to real HTTP receivers and a real Alertmanager."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from monitor.alerting.payloads import sign, verify_signature
from monitor.cli import main
from tests.conftest import SAMPLE
from tests.daemon_process import DaemonProcess
from tests.net import free_port
from tests.receivers import Receiver

SECRET = "s3cret-hmac-key"
RULE = {
    "name": "refusals_high",
    "metric": "refusal_mean",
    "op": ">",
    "threshold": 0.06,
    "for": 1,
    "severity": "warning",
    "labels": {"team": "safety"},
}

TRAFFIC = {
    "name": "traffic_present",
    "metric": "count",
    "op": ">=",
    "threshold": 1,
    "for": 1,
    "severity": "info",
}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, (
        "Alertmanager is missing: `apt-get install prometheus-alertmanager` (make test does)"
    )
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, "Alertmanager did not become ready"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def _config(
    write_config: Callable[..., Path],
    sinks: list[dict],
    rules: list[dict] | None = None,
    **extra: object,
) -> Path:
    return write_config(
        {
            "source": {"file": {"path": str(SAMPLE)}},
            "alerts": {
                "rules": rules or [RULE],
                "sinks": sinks,
                "delivery": {
                    "initial_backoff": "50ms",
                    "max_backoff": "200ms",
                    "poll_interval": "50ms",
                },
            },
            **extra,
        }
    )


def _replay(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["replay", "--config", str(config), str(SAMPLE), "--json", "--quiet", *extra])
    return code, orjson.loads(capsys.readouterr().out)


def test_replay_lists_alerts_but_sends_nothing_unless_asked(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ALIGNWATCH_WEBHOOK_SECRET", SECRET)
    with Receiver().running() as receiver:
        config = _config(
            write_config,
            [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": receiver.url,
                    "secret_env": "ALIGNWATCH_WEBHOOK_SECRET",
                }
            ],
        )
        code, document = _replay(config, capsys)
    assert code == 0
    listed = [a for w in document["windows"] for a in w["alerts"]]
    assert {a["state"] for a in listed} == {"firing", "resolved"}
    assert all(set(a) == {"rule", "severity", "state", "value", "threshold"} for a in listed)
    firing = [a for a in listed if a["state"] == "firing"]
    assert all(a["value"] > 0.06 and a["threshold"] == 0.06 for a in firing)
    assert receiver.received == []


def test_deliver_retries_through_500s_signs_and_reaches_every_sink(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    alertmanager: str,
):
    monkeypatch.setenv("ALIGNWATCH_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("PD_KEY", "routing-key-123")
    with (
        Receiver(fail_first=5).running() as hook,
        Receiver().running() as slack,
        Receiver().running() as pagerduty,
    ):
        config = _config(
            write_config,
            [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": hook.url,
                    "secret_env": "ALIGNWATCH_WEBHOOK_SECRET",
                },
                {"name": "slack", "type": "slack", "url": slack.url},
                {
                    "name": "pd",
                    "type": "pagerduty",
                    "url": pagerduty.url,
                    "routing_key_env": "PD_KEY",
                },
                {"name": "am", "type": "alertmanager", "url": alertmanager},
            ],
            rules=[RULE, TRAFFIC],
        )
        code, document = _replay(config, capsys, "--deliver", "--deliver-timeout", "30")
    assert code == 0
    assert any(w["alerts"] for w in document["windows"])
    assert hook.answered >= 5 + len(hook.received)  # the 500s were retried, not dropped
    ids = set()
    for request in hook.received:
        assert request.signed_with(SECRET)
        message = orjson.loads(request.body)
        assert message["kind"] == "alert"
        assert message["event"]["rule"] in {"refusals_high", "traffic_present"}
        ids.add(message["id"])
    assert len(ids) == len(slack.received) == len(pagerduty.received) > 0
    assert any(b"[RESOLVED] refusals_high" in r.body for r in slack.received)
    events = [orjson.loads(r.body) for r in pagerduty.received]
    assert {e["event_action"] for e in events} == {"trigger", "resolve"}
    assert all(e["routing_key"] == "routing-key-123" for e in events)
    # Read back from Alertmanager's own API; the refusal alert has resolved by the last
    # window, so the never-resolving one is what Alertmanager still lists as active.
    alerts = orjson.loads(urllib.request.urlopen(f"{alertmanager}/api/v2/alerts").read())
    present = [a for a in alerts if a["labels"]["alertname"] == "traffic_present"]
    assert present and present[0]["labels"]["severity"] == "info"
    assert present[0]["annotations"]["threshold"] == ">= 1.0"


def test_signatures_verify_only_with_the_key_the_body_and_a_fresh_timestamp():
    now = str(int(time.time()))
    signature = sign(b"k", now, b'{"a":1}')
    assert verify_signature(b"k", now, b'{"a":1}', signature)
    assert not verify_signature(b"other", now, b'{"a":1}', signature)  # wrong key
    assert not verify_signature(b"k", now, b'{"a":2}', signature)  # tampered body
    assert not verify_signature(b"k", now, b'{"a":1}', "sha256=00")  # forged signature
    stale = str(int(time.time()) - 301)
    assert not verify_signature(b"k", stale, b'{"a":1}', sign(b"k", stale, b'{"a":1}'))
    assert not verify_signature(b"k", "yesterday", b'{"a":1}', signature)


def test_pending_deliveries_survive_a_restart(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALIGNWATCH_WEBHOOK_SECRET", SECRET)
    port = free_port()  # nothing listens yet
    data = tmp_path / "input.jsonl"
    shutil.copy(SAMPLE, data)
    config = _config(
        write_config,
        [
            {
                "name": "hook",
                "type": "webhook",
                "url": f"http://127.0.0.1:{port}",
                "secret_env": "ALIGNWATCH_WEBHOOK_SECRET",
            }
        ],
        runtime={"shutdown_timeout": "2s"},
    )
    config.write_text(config.read_text().replace(str(SAMPLE), str(data)))
    first = DaemonProcess(config)
    assert first.wait(timeout=60) == 0, first.log_tail()
    assert "delivery failed; will retry" in first.log_tail(100_000)
    with Receiver(port=port).running() as receiver:
        second = DaemonProcess(config)
        assert second.wait(timeout=60) == 0, second.log_tail()
    assert receiver.received, "pending notifications were not resent after the restart"
    assert SECRET not in first.log_tail(1_000_000) + second.log_tail(1_000_000)

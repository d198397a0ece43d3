"""A Kafka password given through the environment stays out of the logs, even at DEBUG
and while the broker keeps refusing the authentication."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import DaemonProcess
from tests.monitor.test_kafka import _topic

pytestmark = pytest.mark.kafka

PASSWORD = "kafka-password-7f3a9c"


# The dead-letter producer connects first when it is a topic; with a file only the consumer.
@pytest.mark.parametrize("dead_letter", ["kafka", "file"])
def test_kafka_password_never_reaches_the_logs(
    dead_letter: str,
    kafka_broker: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    topic = _topic(kafka_broker, f"sasl-{uuid.uuid4().hex[:8]}")
    # The test broker speaks PLAINTEXT only, so every SASL handshake fails and is logged.
    config = write_config(
        {
            "source": {
                "type": "kafka",
                "kafka": {
                    "bootstrap_servers": [kafka_broker.bootstrap_servers],
                    "topics": [topic],
                    "client_options": {
                        "security_protocol": "SASL_PLAINTEXT",
                        "sasl_mechanism": "PLAIN",
                        "sasl_plain_username": "alignwatch",
                    },
                    "client_options_env": {"sasl_plain_password": "KAFKA_SASL_PASSWORD"},
                },
            },
            "dead_letter": {"type": dead_letter},
            "logging": {"level": "DEBUG"},
        }
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(
            lambda: daemon.log_tail(1_000_000).count("SaslHandshake failed") >= 2,
            60,
            "failed SASL handshakes in the log",
        )
    finally:
        daemon.kill()
    log = daemon.log_tail(10_000_000)
    assert PASSWORD not in log

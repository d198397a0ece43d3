"""What each sink receives: Alertmanager API v2, a signed generic webhook, Slack incoming
webhooks and PagerDuty Events API v2.

Secrets are read from the environment when a request is built, never stored in the outbox.
Webhook receivers verify ``X-Alignwatch-Signature`` as shown in ``verify_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.config import SinkConfig
from monitor.errors import AlignwatchError
from monitor.windows import iso

SIGNATURE_HEADER = "X-Alignwatch-Signature"
TIMESTAMP_HEADER = "X-Alignwatch-Timestamp"
DELIVERY_HEADER = "X-Alignwatch-Delivery"


@dataclass(frozen=True)
class HttpRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, max_age_s: float = 300
) -> bool:
    """The receiver's side: a valid signature on a fresh timestamp (replay protection)."""
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def render(sink: SinkConfig, delivery_id: str, message: dict[str, Any]) -> HttpRequest:
    """The request for one outbox message: ``{"kind": "alert"|"trigger", "event": {...}}``."""
    if sink.type == "webhook":
        return _webhook(sink, delivery_id, message)
    if message["kind"] != "alert":
        raise AlignwatchError(f"sink {sink.name!r} ({sink.type}) takes alerts only")
    event = message["event"]
    if sink.type == "alertmanager":
        return _json(f"{sink.url.rstrip('/')}/api/v2/alerts", [_alertmanager(event)])
    if sink.type == "slack":
        return _json(sink.url, {"text": _headline(event)})
    return _json(sink.url, _pagerduty(sink, event))


def _json(url: str, document: Any, headers: dict[str, str] | None = None) -> HttpRequest:
    return HttpRequest(
        url, {"Content-Type": "application/json", **(headers or {})}, orjson.dumps(document)
    )


def _webhook(sink: SinkConfig, delivery_id: str, message: dict[str, Any]) -> HttpRequest:
    body = orjson.dumps({"id": delivery_id, **message})
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(_secret(sink, sink.secret_env), timestamp, body),
    }
    return HttpRequest(sink.url, headers, body)


def _secret(sink: SinkConfig, variable: str | None) -> bytes:
    value = os.environ.get(variable or "")
    if not value:
        # Name the variable, never its value.
        raise AlignwatchError(f"sink {sink.name!r}: environment variable {variable} is not set")
    return value.encode()


def _headline(event: dict[str, Any]) -> str:
    state = "RESOLVED" if event["state"] == "resolved" else event["severity"].upper()
    return (
        f"[{state}] {event['rule']}: {event['metric']} = {event['value']} "
        f"({event['op']} {event['threshold']}) in window {iso(event['window_start_ms'])}"
        f" .. {iso(event['window_end_ms'])}"
    )


def _alertmanager(event: dict[str, Any]) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {
            "alertname": event["rule"],
            "severity": event["severity"],
            "metric": event["metric"],
            "source": "alignwatch",
            **event["labels"],
        },
        "annotations": {
            "summary": event["summary"] or _headline(event),
            "value": str(event["value"]),
            "threshold": f"{event['op']} {event['threshold']}",
            "window": f"{iso(event['window_start_ms'])}/{iso(event['window_end_ms'])}",
        },
        "startsAt": iso(event["since_ms"] or event["window_end_ms"]),
    }
    if event["state"] == "resolved":
        alert["endsAt"] = iso(event["window_end_ms"])
    return alert


def _pagerduty(sink: SinkConfig, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "routing_key": _secret(sink, sink.routing_key_env).decode(),
        "event_action": "resolve" if event["state"] == "resolved" else "trigger",
        "dedup_key": f"alignwatch-{event['rule']}",
        "payload": {
            "summary": event["summary"] or _headline(event),
            "source": "alignwatch",
            "severity": event["severity"],
            "custom_details": event,
        },
    }

"""Alert rules in window evaluation: what each window lists, and what goes to the outbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from monitor.alerting.rules import TRIGGER_STATE_PREFIX, RuleState, evaluate_rules
from monitor.config import AlertsConfig
from monitor.metrics import Metrics
from monitor.store import OutboxItem
from monitor.windows import Window


@dataclass(frozen=True)
class AlertDecision:
    listed: list[dict[str, Any]]
    rule_states: dict[str, dict[str, Any]]
    outbox: list[OutboxItem]


class AlertStage:
    """Keeps rule state across windows. With ``enqueue`` off (a replay without
    ``--deliver``) alerts are listed but nothing is queued for delivery."""

    def __init__(self, config: AlertsConfig, metrics: Metrics, *, enqueue: bool):
        self._config = config
        self._metrics = metrics
        self._enqueue = enqueue
        self._states: dict[str, RuleState] = {}

    def restore(self, saved_states: Mapping[str, Mapping[str, Any]]) -> None:
        """Rule states as the store holds them (trigger states, kept beside them, skipped)."""
        self._states = {
            rule: RuleState(**dict(state))
            for rule, state in saved_states.items()
            if not rule.startswith(TRIGGER_STATE_PREFIX)
        }

    def decide(self, window: Window, values: Mapping[str, float | None]) -> AlertDecision:
        outcome = evaluate_rules(
            self._config.rules,
            values,
            self._states,
            window,
            int(self._config.renotify_after * 1000),
        )
        self._states = outcome.states
        for rule in self._config.rules:
            firing = outcome.states[rule.name].firing
            self._metrics.alerts_firing.labels(rule=rule.name, severity=rule.severity).set(firing)
        outbox: list[OutboxItem] = []
        if self._enqueue:
            now = int(time.time() * 1000)
            for event in outcome.notify:
                message = orjson.dumps({"kind": "alert", "event": event.to_dict()})
                key = f"alert:{event.rule}:{event.window_start_ms}:{event.state}"
                outbox.extend(
                    OutboxItem(key, sink.name, message, now) for sink in self._config.sinks
                )
        return AlertDecision(
            listed=[event.listing() for event in outcome.listed],
            rule_states={rule: asdict(state) for rule, state in outcome.states.items()},
            outbox=outbox,
        )

"""Retraining triggers: threshold rules held for N windows, at most one per rule per
cooldown (event time), each with a dataset export and a signed webhook via the outbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from monitor.alerting.export import export_dataset
from monitor.alerting.rules import COMPARATORS, TRIGGER_STATE_PREFIX
from monitor.config import TriggersConfig
from monitor.metrics import Metrics
from monitor.store import OutboxItem, Store
from monitor.windows import Window


@dataclass
class TriggerState:
    consecutive: int = 0
    fired_ms: int | None = None  # window end of the last trigger


@dataclass(frozen=True)
class TriggerDecision:
    listed: list[dict[str, Any]]
    rule_states: dict[str, dict[str, Any]]
    outbox: list[OutboxItem]


class TriggerStage:
    def __init__(
        self,
        config: TriggersConfig,
        store: Store,
        metrics: Metrics,
        *,
        enqueue: bool,
    ):
        self._config = config
        self._store = store
        self._metrics = metrics
        self._enqueue = enqueue
        self._states: dict[str, TriggerState] = {}

    def restore(self, saved_states: Mapping[str, Mapping[str, Any]]) -> None:
        """Trigger states as the store holds them (beside the alert rules' states)."""
        self._states = {
            rule.removeprefix(TRIGGER_STATE_PREFIX): TriggerState(**dict(state))
            for rule, state in saved_states.items()
            if rule.startswith(TRIGGER_STATE_PREFIX)
        }

    def decide(
        self, window: Window, values: Mapping[str, float | None], drift: Mapping[str, Any]
    ) -> TriggerDecision:
        cooldown_ms = int(self._config.cooldown * 1000)
        fired: list[tuple[str, float]] = []
        for rule in self._config.rules:
            state = self._states.setdefault(rule.name, TriggerState())
            value = values.get(rule.metric)
            if value is None:
                continue
            state.consecutive = (
                state.consecutive + 1 if COMPARATORS[rule.op](value, rule.threshold) else 0
            )
            cooled = state.fired_ms is None or window.end_ms - state.fired_ms >= cooldown_ms
            if state.consecutive >= rule.for_windows and cooled:
                state.fired_ms = window.end_ms
                fired.append((rule.name, value))
        listed: list[dict[str, Any]] = []
        outbox: list[OutboxItem] = []
        if fired:
            trigger_id = f"trigger:{window.start_ms}:{'+'.join(name for name, _ in fired)}"
            message = self._message(trigger_id, window, fired, values, drift)
            listed.append({"id": trigger_id, "reasons": message["reasons"], **message["export"]})
            for name, _ in fired:
                self._metrics.triggers.labels(trigger=name).inc()
            if self._enqueue:
                payload = orjson.dumps({"kind": "trigger", "event": message})
                now = int(time.time() * 1000)
                outbox = [
                    OutboxItem(trigger_id, sink.name, payload, now) for sink in self._config.sinks
                ]
        states = {f"{TRIGGER_STATE_PREFIX}{name}": asdict(s) for name, s in self._states.items()}
        return TriggerDecision(listed, states, outbox)

    def _message(
        self,
        trigger_id: str,
        window: Window,
        fired: list[tuple[str, float]],
        values: Mapping[str, float | None],
        drift: Mapping[str, Any],
    ) -> dict[str, Any]:
        span = self._config.export.windows
        earlier = self._store.evaluated_windows(
            before_ms=window.start_ms, limit=span - 1, newest_first=True
        )
        windows = [window, *earlier]
        drift_results = [drift] + [
            result["drift"] for _, result in self._store.results_for(earlier) if result["drift"]
        ]
        export = export_dataset(
            self._store,
            self._config.export,
            trigger_id,
            [w.start_ms for w in windows],
            [d for d in drift_results if d.get("drifted")],
        )
        rules = {rule.name: rule for rule in self._config.rules}
        return {
            "id": trigger_id,
            "reasons": [
                {
                    "rule": name,
                    "metric": rules[name].metric,
                    "value": value,
                    "op": rules[name].op,
                    "threshold": rules[name].threshold,
                    "windows": rules[name].for_windows,
                }
                for name, value in fired
            ],
            "windows": [{"start": w.iso_start(), "end": w.iso_end()} for w in sorted(windows)],
            "metrics": {k: v for k, v in values.items() if v is not None},
            "export": export,
        }

"""Threshold rules over window metrics: pure state transitions, no I/O.

A rule fires once its condition has held for ``for`` consecutive windows and resolves on
the first window where it does not hold. A window without the metric (``None``) leaves
the rule's state as it was: no data is not evidence either way.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from monitor.config import AlertRuleConfig
from monitor.windows import Window

# Trigger states are kept beside the rules' states, under this prefix.
TRIGGER_STATE_PREFIX = "trigger:"

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass
class RuleState:
    consecutive: int = 0
    firing: bool = False
    since_ms: int | None = None  # window end at which it started firing
    notified_ms: int | None = None  # window end of the last notification


@dataclass(frozen=True)
class AlertEvent:
    """One rule's state in one window, as listed in results and sent to sinks."""

    rule: str
    severity: str
    state: str  # firing | resolved
    value: float | None
    threshold: float
    op: str
    metric: str
    window_start_ms: int
    window_end_ms: int
    since_ms: int | None
    labels: Mapping[str, str] = field(default_factory=dict)
    summary: str | None = None

    def listing(self) -> dict[str, Any]:
        """The entry in a window's ``alerts`` list."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "labels": dict(self.labels)}


@dataclass(frozen=True)
class RuleOutcome:
    listed: list[AlertEvent]  # firing now, or resolved in this window
    notify: list[AlertEvent]  # what must reach the sinks (fired, resolved, re-notified)
    states: dict[str, RuleState]


def evaluate_rules(
    rules: Sequence[AlertRuleConfig],
    values: Mapping[str, float | None],
    states: Mapping[str, RuleState],
    window: Window,
    renotify_ms: int,
) -> RuleOutcome:
    listed: list[AlertEvent] = []
    notify: list[AlertEvent] = []
    new_states: dict[str, RuleState] = {}
    for rule in rules:
        state = RuleState(**asdict(states.get(rule.name, RuleState())))
        new_states[rule.name] = state
        value = values.get(rule.metric)
        if value is None:
            if state.firing:
                listed.append(_event(rule, "firing", None, window, state))
            continue
        holds = COMPARATORS[rule.op](value, rule.threshold)
        state.consecutive = state.consecutive + 1 if holds else 0
        if holds and (state.firing or state.consecutive >= rule.for_windows):
            if not state.firing:
                state.firing, state.since_ms = True, window.end_ms
            event = _event(rule, "firing", value, window, state)
            listed.append(event)
            if state.notified_ms is None or window.end_ms - state.notified_ms >= renotify_ms:
                state.notified_ms = window.end_ms
                notify.append(event)
        elif state.firing and not holds:
            event = _event(rule, "resolved", value, window, state)
            listed.append(event)
            notify.append(event)
            state.firing, state.since_ms, state.notified_ms = False, None, None
    return RuleOutcome(listed, notify, new_states)


def _event(
    rule: AlertRuleConfig, state: str, value: float | None, window: Window, rule_state: RuleState
) -> AlertEvent:
    return AlertEvent(
        rule=rule.name,
        severity=rule.severity,
        state=state,
        value=value,
        threshold=rule.threshold,
        op=rule.op,
        metric=rule.metric,
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
        since_ms=rule_state.since_ms,
        labels=rule.labels,
        summary=rule.summary,
    )

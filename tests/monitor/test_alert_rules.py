from __future__ import annotations

from monitor.alerting.rules import RuleState, evaluate_rules
from monitor.config import AlertRuleConfig
from monitor.windows import Window

RULE = AlertRuleConfig.model_validate(
    {
        "name": "toxic",
        "metric": "toxicity_mean",
        "op": ">",
        "threshold": 0.1,
        "for": 2,
        "severity": "critical",
    }
)
HOUR = 3_600_000


def _run(values: list[float | None], renotify_ms: int = HOUR):
    states: dict[str, RuleState] = {}
    timeline = []
    for index, value in enumerate(values):
        window = Window(index * 300_000, (index + 1) * 300_000)
        outcome = evaluate_rules([RULE], {"toxicity_mean": value}, states, window, renotify_ms)
        states = outcome.states
        timeline.append(([e.state for e in outcome.listed], [e.state for e in outcome.notify]))
    return timeline


def test_fires_after_for_windows_and_resolves_once():
    timeline = _run([0.2, 0.3, 0.4, 0.05, 0.01])
    assert timeline == [
        ([], []),
        (["firing"], ["firing"]),
        (["firing"], []),  # still firing: listed, not re-sent
        (["resolved"], ["resolved"]),
        ([], []),
    ]


def test_a_break_resets_the_count():
    assert [notify for _, notify in _run([0.2, 0.0, 0.2, 0.0])] == [[], [], [], []]


def test_missing_metric_keeps_state():
    timeline = _run([0.2, None, 0.2])
    assert timeline[1] == ([], []) and timeline[2] == (["firing"], ["firing"])


def test_renotify_after_interval_of_event_time():
    timeline = _run([0.2] * 8, renotify_ms=900_000)
    sent = [i for i, (_, notify) in enumerate(timeline) if notify]
    assert sent == [1, 4, 7]


def test_listing_has_the_documented_fields():
    window = Window(0, 300_000)
    rule = RULE.model_copy(update={"for_windows": 1})
    outcome = evaluate_rules([rule], {"toxicity_mean": 0.5}, {}, window, HOUR)
    assert outcome.listed[0].listing() == {
        "rule": "toxic",
        "severity": "critical",
        "state": "firing",
        "value": 0.5,
        "threshold": 0.1,
    }


def test_rule_states_restored_from_the_store_skip_trigger_states():
    """Alert rule and trigger states share one table; an evaluator (a new lease holder, or a
    restart) restores the rules' and carries on where the previous one stopped."""
    from prometheus_client import CollectorRegistry

    from monitor.alerting.stage import AlertStage
    from monitor.config import AlertsConfig
    from monitor.metrics import Metrics

    stage = AlertStage(AlertsConfig(rules=[RULE]), Metrics(CollectorRegistry()), enqueue=False)
    stage.restore(
        {
            "toxic": {"consecutive": 1, "firing": False, "since_ms": None, "notified_ms": None},
            "trigger:retrain": {"consecutive": 4, "fired_ms": 600_000},
        }
    )
    decision = stage.decide(Window(300_000, 600_000), {"toxicity_mean": 0.5})
    assert [alert["state"] for alert in decision.listed] == ["firing"], "the second window fires"
    assert set(decision.rule_states) == {"toxic"}

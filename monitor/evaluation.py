"""Evaluation of closed windows: aggregates now; drift tests and alert rules plug in here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.errors import AlreadyEvaluated
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.windows import Window, WindowContents

if TYPE_CHECKING:
    from monitor.alerting.stage import AlertStage
    from monitor.alerting.triggers import TriggerStage
    from monitor.bias import BiasStage
    from monitor.drift import DriftStage

log = logging.getLogger(__name__)


def quantile_label(q: float) -> str:
    """0.5 -> ``p50``, 0.999 -> ``p99_9``."""
    return "p" + f"{q * 100:.10g}".replace(".", "_")


def aggregate(contents: WindowContents, quantiles: Sequence[float]) -> dict[str, float | None]:
    """Count, invalid count and rate, late count, and mean and quantiles of every score.

    A score with no finite value in the window reports ``None`` rather than a made-up 0.
    """
    invalid = sum(contents.invalid_by_reason.values())
    seen = contents.count + invalid
    metrics: dict[str, float | None] = {
        "count": contents.count,
        "invalid_count": invalid,
        "invalid_rate": invalid / seen if seen else None,
        "late_count": contents.late_count,
    }
    for name in sorted(contents.scores):
        values = np.asarray(contents.scores[name], dtype=np.float64)
        finite = values[np.isfinite(values)]
        metrics[f"{name}_mean"] = float(finite.mean()) if finite.size else None
        points = np.quantile(finite, quantiles) if finite.size else [None] * len(quantiles)
        for q, value in zip(quantiles, points, strict=True):
            metrics[f"{name}_{quantile_label(q)}"] = None if value is None else float(value)
    return metrics


class Evaluator:
    """Evaluates every closed, not yet evaluated window, oldest first."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        quantiles: Sequence[float],
        *,
        drift: DriftStage | None = None,
        alerts: AlertStage | None = None,
        triggers: TriggerStage | None = None,
        bias: BiasStage | None = None,
        live_values: Callable[[], Mapping[str, float | None]] | None = None,
        feedback_labels: Sequence[str] = (),
    ):
        self._feedback_labels = tuple(feedback_labels)
        self._store = store
        self._metrics = metrics
        self._quantiles = tuple(quantiles)
        self._drift = drift
        self._alerts = alerts
        self._triggers = triggers
        self._bias = bias
        self._live_values = live_values
        self.failures = 0

    def evaluate_pending(self) -> list[Window]:
        """A window that fails stays pending for the next run; later windows still proceed.

        Rule states are read back from the store first: with several workers the previous
        window may have been evaluated by another one.
        """
        done: list[Window] = []
        self._restore_rule_states()
        for window in self._store.pending_windows():
            try:
                contents = self._store.window_contents(window)
                result = self.evaluate(contents)
                rule_states: dict[str, Any] = {}
                outbox: list[Any] = []
                values = self._rule_values(result)
                if self._alerts is not None:
                    alerts = self._alerts.decide(window, values)
                    result["alerts"] = alerts.listed
                    rule_states |= alerts.rule_states
                    outbox += alerts.outbox
                if self._triggers is not None:
                    triggers = self._triggers.decide(window, values, result["drift"])
                    result["triggers"] = triggers.listed
                    rule_states |= triggers.rule_states
                    outbox += triggers.outbox
                self._store.save_result(window, result, rule_states=rule_states, outbox=outbox)
            except AlreadyEvaluated:
                log.warning(
                    "window evaluated by another worker", extra={"window_start": window.iso_start()}
                )
                self._restore_rule_states()
                continue
            except Exception:
                self.failures += 1
                self._metrics.evaluation_errors.inc()
                log.exception(
                    "window evaluation failed", extra={"window_start": window.iso_start()}
                )
                continue
            self._metrics.windows_evaluated.inc()
            if contents.missing_partitions:
                self._metrics.windows_partial.inc()
            self._metrics.set_window(window.end_ms, result["metrics"])
            log.info(
                "window evaluated",
                extra={"window_start": window.iso_start(), "count": result["metrics"]["count"]},
            )
            done.append(window)
        return done

    def _restore_rule_states(self) -> None:
        states = self._store.rule_states()
        for stage in (self._alerts, self._triggers):
            if stage is not None:
                stage.restore(states)

    def _rule_values(self, result: Mapping[str, Any]) -> dict[str, float | None]:
        """What alert rules can name: the window's metrics, ``drift_drifted`` (1/0 when drift
        was tested) and live values such as ``consumer_lag``."""
        values: dict[str, float | None] = dict(result["metrics"])
        drift = result["drift"]
        values["drift_drifted"] = float(drift["drifted"]) if drift.get("tests") else None
        if self._live_values is not None:
            values.update(self._live_values())
        return values

    def evaluate(self, contents: WindowContents) -> dict[str, Any]:
        metrics = aggregate(contents, self._quantiles)
        flags = self._store.feedback_counts(contents.window)
        for label in self._feedback_labels:
            metrics[f"feedback_{label}_count"] = flags.get(label, 0)
            metrics[f"feedback_{label}_rate"] = (
                flags.get(label, 0) / contents.count if contents.count else None
            )
        bias: dict[str, Any] = {}
        if self._bias is not None:
            bias, headlines = self._bias.evaluate(contents)
            metrics.update(headlines)
        return {
            "metrics": metrics,
            "bias": bias,
            "drift": self._drift.evaluate(contents) if self._drift is not None else {},
            "alerts": [],
            "triggers": [],
            "missing_partitions": list(contents.missing_partitions),
        }

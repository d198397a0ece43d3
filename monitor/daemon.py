"""The daemon: ``startup()``, ``main_loop()``, ``shutdown()`` (the uvicorn shape).

Per micro-batch, in this order:
  1. collect raw messages from the source (max size, max wait);
  2. drop messages of partitions a rebalance took away (their next owner re-reads them);
  3. parse, score and assign windows (nothing persisted yet);
  4. write everything to the store in one transaction (records, dead letters, watermark,
     positions, closed windows), retrying while the store fails;
  5. deliver the batch's dead letters and wait until they are durable, retrying likewise;
  6. only then commit the source positions.
A crash anywhere before 6 re-delivers the batch; the store counts re-delivered records
as duplicates, so windows are neither short nor double-counted. A partition the source is
given starts at the store's position for it, which the commits in 6 only trail.

On a schedule, the holder of the store's evaluation lease (always this process with
SQLite; one worker of the group with a shared PostgreSQL store) closes, evaluates and
prunes windows and delivers the outbox.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server

from monitor.alerting.delivery import Deliverer
from monitor.alerting.export import notable
from monitor.alerting.stage import AlertStage
from monitor.alerting.triggers import TriggerStage
from monitor.config import Config
from monitor.errors import AlignwatchError, ConfigError, Unavailable
from monitor.evaluation import Evaluator
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline, Totals
from monitor.records import RawMessage
from monitor.scoring import ScoringStage, build_scorers
from monitor.sinks.dead_letter import DeadLetterSink, open_dead_letter_sink
from monitor.sources import Source, open_source
from monitor.store import BatchOutcome, Store, open_store
from monitor.windows import Window

if TYPE_CHECKING:
    from monitor.bias import BiasStage

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_RETRY_DELAY = 30.0
_READY_HEARTBEAT_S = 60.0


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        registry: CollectorRegistry | None = None,
        scheduled: bool = True,
        serve_metrics: bool = True,
        deliver: bool = True,
        drain_timeout: float = 0.0,
        on_batch: Callable[[Totals], None] | None = None,
    ):
        self.config = config
        self.metrics = Metrics(registry or CollectorRegistry())
        self._scheduled = scheduled
        self._serve_metrics = serve_metrics
        self._deliver_alerts = deliver
        self._drain_timeout = drain_timeout
        self.undelivered = 0
        self._lag_total: int | None = None
        self._started = False
        self._degraded = False
        self._heartbeat = time.monotonic()
        self.deliverer: Deliverer | None = None
        self._on_batch = on_batch
        self.should_exit = threading.Event()
        self.end_of_input = False
        self._signals_seen = 0
        self._watermark_ms: int | None = None
        self._idle_since = time.monotonic()
        self._resources: list[Callable[[], Any]] = []
        # Every evaluated window, read back once the input has ended (replay and finite runs).
        self.final_results: list[tuple[Window, dict[str, Any]]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Run until the input ends or a signal asks to stop; 0 on a clean stop."""
        try:
            self.startup()
            self.main_loop()
        except Unavailable:
            if not self.should_exit.is_set():
                raise
            log.warning("stopped while waiting for Kafka")
        finally:
            self.shutdown()
        return 0 if self.evaluator.failures == 0 else 1

    def startup(self) -> None:
        config = self.config
        scorers = build_scorers(config.scorers)
        self.store: Store = open_store(config.store, config.windows)
        self._resources.append(self.store.close)
        self.metrics.watch_scorers({named.name: named.scorer for named in scorers})
        scoring_lock = threading.Lock()
        bias = None
        if config.bias.enabled:
            from monitor.bias import BiasStage

            bias = BiasStage(config.bias, scorers, self.store, scoring_lock)
        self.pipeline = Pipeline(
            scoring=ScoringStage(scorers, self.metrics, scoring_lock),
            metrics=self.metrics,
            window_ms=int(config.windows.size * 1000),
            lateness_ms=int(config.windows.allowed_lateness * 1000),
            max_bytes=config.records.max_bytes,
            max_future_ms=int(config.records.max_future * 1000),
            keep_text=_keep_text(config, bias),
        )
        drift = None
        if config.drift.enabled:
            from monitor.drift import DriftStage  # statistics libraries load only when used

            drift = DriftStage(config.drift, self.store, self.metrics)
        alerts = triggers = None
        if config.alerts.rules:
            alerts = AlertStage(config.alerts, self.metrics, enqueue=self._deliver_alerts)
        if config.triggers.rules:
            triggers = TriggerStage(
                config.triggers, self.store, self.metrics, enqueue=self._deliver_alerts
            )
        sinks = [*config.alerts.sinks, *config.triggers.sinks]
        if self._deliver_alerts and sinks:
            self.deliverer = Deliverer(self.store, sinks, config.alerts.delivery, self.metrics)
            self._resources.append(self.deliverer.close)
        self.evaluator = Evaluator(
            self.store,
            self.metrics,
            config.evaluation.quantiles,
            drift=drift,
            alerts=alerts,
            triggers=triggers,
            bias=bias,
            live_values=lambda: {"consumer_lag": self._lag_total},
            feedback_labels=config.api.labels,
        )
        # Probes, metrics and signals first: while Kafka is unreachable at start-up the
        # daemon waits for it, alive but not ready, instead of exiting into a crash loop.
        if self._serve_metrics and config.metrics.port:
            server, _ = start_http_server(
                config.metrics.port, config.metrics.host, registry=self.metrics.registry
            )
            self._resources.append(server.shutdown)
        if self._serve_metrics and config.api.port:
            self._start_api()
        self._install_signal_handlers()
        self.dead_letters: DeadLetterSink = self._retry(
            "connecting the dead-letter sink", lambda: open_dead_letter_sink(config), Unavailable
        )
        self._resources.append(self.dead_letters.close)
        self.source: Source = self._retry(
            "connecting the source",
            lambda: open_source(config, self._stored_positions),
            Unavailable,
        )
        self._resources.append(self.source.close)
        if self._scheduled:
            self._start_scheduler()
        self._started = True
        log.info(
            "alignwatch started",
            extra={"source": config.source.type, "scorers": [s.name for s in scorers]},
        )

    def _stored_positions(self, partitions: set[str]) -> dict[str, int]:
        """Where the source seeks partitions it is given: the store's positions, which were
        written with the data, not Kafka's commits, which trail them."""
        return dict(self.store.claim_partitions(partitions).positions)

    def _start_api(self) -> None:
        import uvicorn

        from monitor.api import create_app

        api = self.config.api
        token = os.environ.get(api.token_env)
        if not token:
            raise ConfigError(
                f"api.token_env: environment variable {api.token_env} is not set "
                "(the feedback API needs a bearer token; set api.port to 0 to turn it off)"
            )
        app = create_app(
            self.store,
            self.metrics,
            token=token,
            labels=api.labels,
            max_body_bytes=api.max_body_bytes,
            ready=self.ready,
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host=api.host, port=api.port, log_config=None, access_log=False)
        )
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()

        def stop_api() -> None:
            server.should_exit = True
            thread.join(timeout=5)

        self._resources.append(stop_api)

    def ready(self) -> bool:
        """Started, source reachable, not stuck retrying a failed write, loop turning."""
        return (
            self._started
            and not self._degraded
            and self.source.healthy()
            and time.monotonic() - self._heartbeat < _READY_HEARTBEAT_S
        )

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._scheduled_evaluation,
            "interval",
            seconds=self.config.evaluation.interval,
            max_instances=1,
            coalesce=True,
            id="evaluate-closed-windows",
        )
        if self.deliverer is not None:
            scheduler.add_job(
                self._scheduled_delivery,
                "interval",
                seconds=self.config.alerts.delivery.poll_interval,
                max_instances=1,
                coalesce=True,
                id="deliver-outbox",
            )
        scheduler.start()
        self._scheduler = scheduler

    def _leading(self) -> bool:
        """Closing, evaluating, pruning and delivering are the lease holder's: with a shared
        store one worker does them; with SQLite this worker always does."""
        leading = self.store.evaluation_lease()
        self.metrics.evaluation_lease.set(leading)
        return leading

    def _scheduled_delivery(self) -> None:
        if self.deliverer is not None and self._leading():
            self.deliverer.deliver_due()

    def _scheduled_evaluation(self) -> None:
        if not self._leading():
            return
        self.evaluator.evaluate_pending()
        retention_ms = int(self.config.store.retention * 1000)
        watermark = self._watermark_ms  # set by the main thread after each batch
        if watermark is not None:
            self.store.prune(watermark - retention_ms, int(time.time() * 1000) - retention_ms)

    def main_loop(self) -> None:
        self._idle_since = time.monotonic()
        while not self.should_exit.is_set():
            self._heartbeat = time.monotonic()
            messages = self._collect()
            if messages:
                self._process(messages)
                self._idle_since = time.monotonic()
            elif self.source.exhausted:
                self.end_of_input = True
                break
            elif self._close_idle_windows():
                self._idle_since = time.monotonic()
            lag = self.source.lag()
            self.metrics.set_lag(lag)
            self._lag_total = sum(lag.values()) if lag else None

    def shutdown(self) -> None:
        """Stop the scheduler, evaluate what the end of input closed, release everything."""
        watchdog = threading.Timer(
            self.config.runtime.shutdown_timeout + self._drain_timeout, self._force_exit
        )
        watchdog.daemon = True
        watchdog.start()
        try:
            scheduler = getattr(self, "_scheduler", None)
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            leading = hasattr(self, "evaluator") and self._leading()
            if self.end_of_input:
                self.store.close_all_open()
            if leading:
                self.evaluator.evaluate_pending()
            if self.deliverer is not None and leading:
                # At the end of input wait for delivery; otherwise one last try, and the rest
                # waits in the store for the next start.
                if self.end_of_input and self._drain_timeout > 0:
                    self.deliverer.drain(self._drain_timeout)
                else:
                    self.deliverer.deliver_due()
                self.undelivered = self.store.outbox_counts()["pending"]
            if self.end_of_input:
                self.final_results = self.store.results()
        finally:
            for release in reversed(self._resources):
                try:
                    release()
                except Exception:
                    log.exception("error while releasing a resource at shutdown")
            self._resources.clear()
            watchdog.cancel()
            self._restore_signal_handlers()
        if hasattr(self, "pipeline"):
            log.info("alignwatch stopped", extra=self.pipeline.totals.summary())

    # -- one batch -------------------------------------------------------------------------

    def _collect(self) -> list[RawMessage]:
        batch = self.config.batch
        deadline = time.monotonic() + batch.max_wait
        messages: list[RawMessage] = []
        while len(messages) < batch.max_size and not self.should_exit.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self.source.poll(batch.max_size - len(messages), remaining)
            # A rebalance runs inside poll(): what was collected before it from a revoked
            # partition is dropped (its next owner re-reads it); what this poll returned
            # already comes from the new assignment.
            revoked = self.source.take_revoked()
            if revoked:
                self.pipeline.forget(revoked)
                messages = [m for m in messages if m.position.partition not in revoked]
            self._adopt(self.source.take_assigned())
            messages.extend(polled)
            if not polled and self.source.exhausted:
                break
        return messages

    def _adopt(self, assigned: set[str]) -> None:
        if assigned:
            state = self._retry("store read", lambda: self.store.claim_partitions(assigned))
            self.pipeline.adopt(state)
            # Partitions just taken over are not idle: their backlog has yet to arrive.
            self._idle_since = time.monotonic()

    def _process(self, messages: list[RawMessage]) -> None:
        started = time.perf_counter()
        write = self.pipeline.prepare(messages)
        outcome: BatchOutcome = self._retry("store write", lambda: self.store.write_batch(write))
        letters = [letter for letter, _ in write.dead_letters] + list(outcome.late)
        if letters:
            self._retry("dead-letter delivery", lambda: self._deliver(letters))
        self.source.commit(write.positions)
        self.pipeline.record_outcome(outcome)
        self._watermark_ms = self.pipeline.watermark.value
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(messages))
        if self._on_batch is not None:
            self._on_batch(self.pipeline.totals)

    def _deliver(self, letters: list[Any]) -> None:
        self.dead_letters.add(letters)
        self.dead_letters.flush()

    def _retry(
        self,
        what: str,
        action: Callable[[], T],
        retry_on: type[AlignwatchError] = AlignwatchError,
    ) -> T:
        """Repeat ``action`` with capped backoff: stopping beats losing data."""
        delay = 0.5
        while True:
            try:
                result = action()
            except retry_on as exc:
                if self.should_exit.is_set():
                    raise
                self._degraded = True
                log.error("%s failed; retrying", what, extra={"error": str(exc), "retry_in": delay})
                self.should_exit.wait(delay)
                self._heartbeat = time.monotonic()
                delay = min(delay * 2, _MAX_RETRY_DELAY)
            else:
                self._degraded = False
                return result

    def _close_idle_windows(self) -> bool:
        """With ``windows.idle_close_after`` set, a quiet source lets event time follow the
        wall clock, so the last window of a burst still closes."""
        idle_after = self.config.windows.idle_close_after
        if idle_after is None or time.monotonic() - self._idle_since < idle_after:
            return False
        self.pipeline.watermark.advance_to(int(time.time() * 1000))
        write = self.pipeline.prepare([])
        self._retry("store write", lambda: self.store.write_batch(write))
        return True

    # -- signals ---------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_handlers = {
            sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _restore_signal_handlers(self) -> None:
        for sig, handler in getattr(self, "_previous_handlers", {}).items():
            signal.signal(sig, handler)

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            self._force_exit()
        log.info("stop requested; draining", extra={"signal": signal.Signals(signum).name})
        self.should_exit.set()

    def _force_exit(self) -> None:
        """Second signal or a drain past runtime.shutdown_timeout: uncommitted work is re-read."""
        log.error("forced exit before the drain finished")
        os._exit(1)


def _keep_text(config: Config, bias: BiasStage | None) -> Callable[[Mapping[str, float]], bool]:
    """Which records' texts the store keeps (``store.keep_texts``): with "notable", those
    past the export thresholds and, with bias enabled, those mentioning an identity group."""
    if config.store.keep_texts != "notable":
        keep = config.store.keep_texts == "all"
        return lambda scores: keep
    exported = notable(config.triggers.export)
    if bias is None:
        return exported
    return lambda scores: exported(scores) or bias.keeps_text(scores)
